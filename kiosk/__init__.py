"""Vuoro kiosk: the touchscreen where a visitor draws a ticket, and its printer.

model.py (+ model_types, model_screen: the pure flow), ticket.py (the ticket's layout as data), escpos_render.py and
png_render.py (its two renderers), printer*.py (transports and status), fake_printer.py (an ESC/POS printer on a pty
or TCP socket for tests), controller.py (model + hall client + printer), app.py (the Kivy window), reach.py (where a
seated visitor can reach), cli.py (`vuoro kiosk`). May import broker and ui; never another device. The model imports
no Kivy, paho, sqlite3, serial, socket, time or random."""
