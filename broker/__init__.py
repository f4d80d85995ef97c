"""The hall server and the one shared vocabulary of Vuoro."""

__version__ = "0.1.0"
