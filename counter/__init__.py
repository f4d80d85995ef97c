"""Vuoro counter panel: the staff's window at a counter (call, recall, serve, forward, pause, open, close).

model.py (+ model_types, model_state, model_panel, model_keys, model_hall: the pure panel), controller.py (model +
hall client), app.py, widgets.py, dialog_view.py (the Kivy window), keys.py (number pad keys), texts.py (catalogue
texts), cli.py (`vuoro counter`). The same actions from a terminal: `vuoro call` (vuoro/cli_actions.py). May import
broker and ui; never another device. The model imports no Kivy, paho, sqlite3, serial, socket, time or random.
"""
