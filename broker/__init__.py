"""The hall server and the one shared vocabulary of Vuoro: the protocol (topics, payloads, errors), the hall file,
the engine and its state, the expected wait, the SQLite event log, the service that joins them over MQTT, the MQTT
client every device uses, finding the broker, and the broker the server starts. Imports no other Vuoro package:
everything else builds on it (pyproject's [tool.importlinter] checks it)."""

__version__ = "0.1.0"
