"""Home Assistant MQTT discovery: each hall's topics become sensors with no setup, two per topic (visitors
waiting, the wait a new ticket is told), one device per hall, available while its hall server is online.

The collector publishes, retained, on the central broker under Home Assistant's discovery prefix
`homeassistant/sensor/vuoro_<hall>_<topic>_<what>/config` (its account may write there); Home Assistant, logged in
with its own read-only account, reads the sensors' values straight from the halls' retained state
(vuoro/<hall>/state/queue/<topic>). A topic that leaves a hall has its sensors removed (an empty config). The
payloads follow https://www.home-assistant.io/integrations/sensor.mqtt/ and .../integrations/mqtt/#discovery."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from broker import protocol as p
from city.live import Hall
from ops.bridge import HA_PREFIX

ORIGIN = {"name": "Vuoro", "support_url": "https://github.com/vuoro/vuoro"}
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def object_id(hall: str, topic: str, what: str) -> str:
    """Home Assistant's node/object ids allow [a-zA-Z0-9_-] only."""
    return _UNSAFE.sub("_", f"vuoro_{hall}_{topic}_{what}")


def config_topic(hall: str, topic: str, what: str, prefix: str = HA_PREFIX) -> str:
    return f"{prefix}/sensor/{object_id(hall, topic, what)}/config"


def sensor_configs(hall: Hall, topic: str) -> dict[str, dict[str, Any]]:
    """Discovery topic -> config payload, for the two sensors of one topic of one hall."""
    t = p.Topics(hall.id)
    device = {"identifiers": [f"vuoro_{hall.id}"], "name": f"Vuoro {hall.id}", "manufacturer": "Vuoro",
              "model": "hall server"}
    common = {
        "state_topic": t.state_queue(topic), "availability_topic": t.server(),
        "availability_template": "{{ 'online' if value_json.status == 'online' else 'offline' }}",
        "payload_available": "online", "payload_not_available": "offline",
        "state_class": "measurement", "device": device, "origin": ORIGIN,
    }
    return {
        config_topic(hall.id, topic, "waiting"): {
            **common, "name": f"{topic} waiting", "unique_id": object_id(hall.id, topic, "waiting"),
            "value_template": "{{ value_json.waiting }}", "unit_of_measurement": "visitors",
            "icon": "mdi:account-multiple"},
        config_topic(hall.id, topic, "wait"): {
            **common, "name": f"{topic} wait", "unique_id": object_id(hall.id, topic, "wait"),
            "value_template": "{{ value_json.expected_wait_s }}", "unit_of_measurement": "s",
            "device_class": "duration", "icon": "mdi:timer-sand"},
    }


class Discovery:
    """Keeps Home Assistant's discovery in step with the halls' topics, as the collector learns them."""

    def __init__(self, collector: Any, prefix: str = HA_PREFIX) -> None:
        self.collector, self.prefix = collector, prefix
        self.published: dict[str, set[str]] = {}  # hall -> its discovery topics published

    def attach(self) -> Discovery:
        previous = self.collector.on_state

        def changed(hall: str) -> None:
            if previous is not None:
                previous(hall)
            self.update(hall)

        self.collector.on_state = changed
        return self

    def update(self, hall_id: str) -> list[tuple[str, bytes]]:
        """Publish what is new for a hall and clear what is gone; returns what was published."""
        with self.collector.city_lock:
            hall = self.collector.city.halls.get(hall_id)
            wanted = self.configs(hall) if hall is not None else {}
        had = self.published.get(hall_id, set())
        out = [(topic, json.dumps(body, separators=(",", ":")).encode()) for topic, body in wanted.items()
               if topic not in had]
        out += [(topic, b"") for topic in sorted(had - set(wanted))]
        for topic, payload in out:
            self.collector.link.publish(topic, payload, qos=1, retain=True)
        self.published[hall_id] = set(wanted)
        return out

    def configs(self, hall: Hall) -> Mapping[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for topic in sorted(hall.queues):
            if p.DEVICE_RE.match(topic):
                found.update(sensor_configs(hall, topic))
        return found
