"""Vuoro display: arrives with its own issue; the package exists so the layout is fixed."""
