"""Home Assistant MQTT discovery and the collector's Prometheus endpoint on two bridged halls: the collector
publishes one device per hall and two sensors per topic, each payload valid against Home Assistant's documented
MQTT sensor schema (transcribed below from https://www.home-assistant.io/integrations/sensor.mqtt/), whose
templates (Jinja, as Home Assistant renders them) give the queue's numbers from the halls' retained state; the
metrics endpoint parses with prometheus-client's own parser."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import jinja2
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.config import load_hall
from city.account import load_account
from city.collector import Collector
from city.homeassistant import Discovery
from city.metrics import serve_metrics
from tests.support.brokers import free_port
from tests.support.city import Account, City, running_city
from tests.support.postgres import city_dsn, postgres  # noqa: F401 -- fixtures
from tests.support.wait import CONNECT_S, REPLY_S, wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

HALLS = ["north", "south"]
BRIDGE_S = 10.0 + CONNECT_S
_STR = {"type": "string"}
DEVICE = {"type": "object", "additionalProperties": False, "properties": {
    "configuration_url": _STR, "connections": {"type": "array"}, "hw_version": _STR,
    "identifiers": {"oneOf": [_STR, {"type": "array", "items": _STR, "minItems": 1}]}, "manufacturer": _STR,
    "model": _STR, "model_id": _STR, "name": _STR, "serial_number": _STR, "suggested_area": _STR,
    "sw_version": _STR, "via_device": _STR}}
# Home Assistant's MQTT sensor: every documented option (abbreviations aside), nothing else
SENSOR = {
    "type": "object", "additionalProperties": False, "required": ["state_topic"],
    "properties": {
        "availability": {"type": "array"}, "availability_mode": {"enum": ["all", "any", "latest"]},
        "availability_template": _STR, "availability_topic": _STR, "device": DEVICE,
        "device_class": {"enum": ["duration", "enum", "timestamp", "date", "monetary", "temperature", "power",
                                  "energy", "humidity", "data_size", "distance", "speed", "weight", "volume"]},
        "enabled_by_default": {"type": "boolean"}, "encoding": _STR,
        "entity_category": {"enum": ["diagnostic", "config"]}, "entity_picture": _STR,
        "expire_after": {"type": "integer"}, "force_update": {"type": "boolean"}, "icon": _STR,
        "json_attributes_template": _STR, "json_attributes_topic": _STR, "last_reset_value_template": _STR,
        "name": {"type": ["string", "null"]}, "object_id": _STR, "default_entity_id": _STR,
        "options": {"type": "array"}, "payload_available": _STR, "payload_not_available": _STR,
        "platform": {"const": "mqtt"}, "qos": {"enum": [0, 1, 2]},
        "state_class": {"enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
        "state_topic": _STR, "suggested_display_precision": {"type": "integer"}, "unique_id": _STR,
        "unit_of_measurement": _STR, "value_template": _STR,
        "origin": {"type": "object", "required": ["name"], "additionalProperties": False,
                   "properties": {"name": _STR, "sw_version": _STR, "support_url": _STR}},
    },
    # a device needs a unique id; a duration is in one of the units Home Assistant converts
    "allOf": [{"if": {"required": ["device"]}, "then": {"required": ["unique_id"]}},
              {"if": {"properties": {"device_class": {"const": "duration"}}, "required": ["device_class"]},
               "then": {"properties": {"unit_of_measurement": {"enum": ["d", "h", "min", "s", "ms"]}}}}],
}


@pytest.fixture
def city() -> Iterator[City]:
    with running_city(list(HALLS)) as town:
        yield town


def render(template: str, payload: bytes) -> str:
    return jinja2.Template(template).render(value_json=json.loads(payload))


def test_discovery_and_metrics(city: City, city_dsn: str) -> None:  # noqa: F811
    address = load_account(city.account("collector")).address(city.central_address)
    collector = Collector(address, city_dsn)
    Discovery(collector).attach()
    port = free_port()
    server = serve_metrics(collector, "127.0.0.1", port)
    home = Account.of_file(city.central_address, city.account("homeassistant"))
    try:
        assert collector.start(CONNECT_S)
        assert home.subscribe("homeassistant/#", "vuoro/+/state/#", "vuoro/+/server") < 128

        def configs() -> dict[str, bytes]:
            collector.step(0.05)
            return {t: b for t, b, _ in home.got("homeassistant/sensor/+/config") if b}

        # the waiting count and the wait of every topic of every hall
        wanted = sum(2 * len(load_hall(h.file).topics) for h in city.halls.values())
        found: dict[str, bytes] = wait_until(lambda: configs() if len(configs()) == wanted else None, BRIDGE_S,
                           lambda: f"discovery configs: {sorted(configs())}")
        for topic, raw in found.items():
            config = json.loads(raw)
            jsonschema.validate(config, SENSOR)
            assert topic == f"homeassistant/sensor/{config['unique_id']}/config"
            state = [b for t, b, _ in home.got(config["state_topic"]) if b]
            server_up = [b for t, b, _ in home.got(config["availability_topic"]) if b]
            assert state and server_up, f"Home Assistant can read {config['state_topic']}"
            value = render(config["value_template"], state[-1])
            assert float(value) >= 0
            assert render(config["availability_template"], server_up[-1]) == config["payload_available"]
        north_general = json.loads(found["homeassistant/sensor/vuoro_north_general_waiting/config"])
        assert north_general["device"]["identifiers"] == ["vuoro_north"]

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=REPLY_S) as response:
            text = response.read().decode()
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("vuoro_hall_server_up", (("hall", "north"),))] == 1.0
        assert ("vuoro_queue_waiting", (("hall", "south"), ("topic", "general"))) in samples
        assert samples[("vuoro_collector_written_total", ())] == collector.counts.written
    finally:
        server.shutdown()
        server.server_close()
        home.close()
        collector.stop()
