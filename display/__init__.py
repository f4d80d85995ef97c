"""Vuoro hall display: who is called, to which counter, and the way there from where the screen hangs.

model.py (pure board from retained state and events) and board.py (what it shows), arrow.py (the
direction signs as geometry), announce.py and audio.py (chime and spoken calls), controller.py (glue
to the hall server), window.py + widgets.py + app.py (the Kivy window), cli.py (`vuoro display`).
May import broker and ui; never another device. The board imports no Kivy, paho, sqlite3, time or random.
"""
