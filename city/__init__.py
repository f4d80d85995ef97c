"""The city: every hall's events in the city's PostgreSQL (`vuoro collect`), the live overview of every hall
(`vuoro overview`), Home Assistant discovery and Prometheus metrics, all fed from the central broker that the
halls' Mosquittos bridge to (ops/bridge.py). May import broker, ops (the accounts and the
bridge's names) and analytics (the report); never a device package or Kivy."""
