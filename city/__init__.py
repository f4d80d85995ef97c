"""The city: every hall's events in the city's PostgreSQL (`vuoro collect`), the live overview of every hall
(`vuoro overview`), Home Assistant discovery and Prometheus metrics, all fed from the central broker that the
halls' Mosquittos bridge to (broker/bridge.py). Imports broker's vocabulary only, never a device package."""
