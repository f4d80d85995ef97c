"""Vuoro counter panel: the staff's window at a counter (call, recall, serve, forward, pause, open, close).

model.py (+ model_types, model_state, model_panel: the pure panel), controller.py (model + hall client),
app.py, widgets.py, dialog_view.py (the Kivy window), keys.py (number pad keys), texts.py (catalogue
texts), cli.py (`vuoro counter`). The same actions from a terminal: `vuoro call` (broker/cli_actions.py).
"""
