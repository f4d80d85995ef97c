"""docs/asyncapi.yaml cannot drift from broker/protocol.py: its topics are Topics' topics, its roles, ops,
fields, error codes, event types and states are protocol.py's, every field's schema accepts exactly what
parse_command accepts, and every message a real hall server sends validates against its schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from broker import protocol as p
from broker.client import CommandError, HallClient
from broker.config import HallConfig
from broker.engine import Engine
from tests.support.brokers import ROOT
from tests.support.mqtt_probe import Probe

DOC_PATH = ROOT / "docs" / "asyncapi.yaml"
BASE = "urn:vuoro:asyncapi"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def registry(doc: dict[str, Any]) -> Registry:
    return Registry().with_resource(BASE, Resource.from_contents(doc, default_specification=DRAFT7))


def validator(registry: Registry, pointer: str) -> Draft7Validator:
    return Draft7Validator({"$ref": f"{BASE}#{pointer}"}, registry=registry)


def valid(registry: Registry, pointer: str, value: Any) -> bool:
    return validator(registry, pointer).is_valid(value)


def message_pointer(name: str) -> str:
    return f"/components/messages/{name.replace('~', '~0').replace('/', '~1')}/payload"


def node_path(ref: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in ref.removeprefix("#/").split("/")]


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node_path(node["$ref"]):
            target = target[part]
        node = target
    return node


def roles_of(message: dict[str, Any]) -> list[str]:
    """Who may send a command message: x-vuoro-role is one role, or a list (replay: admin and web)."""
    role = message["x-vuoro-role"]
    return [role] if isinstance(role, str) else list(role)


def command_fields(doc: dict[str, Any], message: dict[str, Any]) -> tuple[set[str], set[str], dict[str, Any]]:
    """(required, all) fields of a command message beyond v, id, op and hall, and their schemas."""
    required: set[str] = set()
    properties: dict[str, Any] = {}
    for part in message["payload"]["allOf"]:
        part = deref(doc, part)
        required |= set(part.get("required", []))
        properties.update(part.get("properties", {}))
    base = {"v", "id", "op", "hall"}
    return required - base, set(properties) - base, {k: v for k, v in properties.items() if k not in base}


# ---------------------------------------------------------------- topics

CHANNEL_TOPICS = {
    "command": ("cmd", lambda t, a: t.cmd(a["role"], a["device"])),
    "reply": ("reply", lambda t, a: t.reply(a["role"], a["device"])),
    "event": ("event", lambda t, a: t.event(a["type"])),
    "stateHall": ("state", lambda t, a: t.state_hall()),
    "stateQueue": ("state", lambda t, a: t.state_queue(a["topic"])),
    "stateCounter": ("state", lambda t, a: t.state_counter(a["counter"])),
    "stateCalls": ("state", lambda t, a: t.state_calls()),
    "stateStats": ("state", lambda t, a: t.state_stats()),
    "device": ("device", lambda t, a: t.device(a["role"], a["device"])),
    "server": ("server", lambda t, a: t.server()),
}


def _examples(doc: dict[str, Any], channel: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Parameter values to fill a channel's address with: every enum value, else a sample."""
    params = {name: deref(doc, ref) for name, ref in channel.get("parameters", {}).items()}
    samples = {"hall": "kvarnby", "device": "K1", "topic": "general", "counter": "4"}
    enums = {name: spec.get("enum", [samples.get(name, "x")]) for name, spec in params.items()}
    longest = max((len(v) for v in enums.values()), default=1)
    for i in range(longest):
        yield {name: values[i % len(values)] for name, values in enums.items()}


def test_every_channel_address_is_the_topic_protocol_py_builds(doc):
    assert set(doc["channels"]) == set(CHANNEL_TOPICS)
    kinds = set()
    for name, channel in doc["channels"].items():
        kind, build = CHANNEL_TOPICS[name]
        kinds.add(kind)
        for args in _examples(doc, channel):
            address = channel["address"].format(**args)
            assert address == build(p.Topics(args["hall"]), args), name
            assert p.Topics(args["hall"]).parse(address).kind == kind
    assert kinds == {"cmd", "reply", "event", "state", "device", "server"}


def test_roles_event_types_and_states_are_protocol_py_s(doc):
    params = doc["components"]["parameters"]
    assert tuple(params["commandRole"]["enum"]) == p.COMMAND_ROLES
    assert tuple(params["deviceRole"]["enum"]) == p.DEVICE_ROLES
    assert tuple(params["eventType"]["enum"]) == p.EVENT_TYPES
    assert set(doc["channels"]["event"]["messages"]) == set(p.EVENT_TYPES)
    assert p.DEVICE_RE.pattern.strip("^$") in params["device"]["description"]
    schemas = doc["components"]["schemas"]
    assert tuple(schemas["TicketState"]["enum"]) == p.TICKET_STATES
    assert set(schemas["CounterStatus"]["enum"]) == {p.CLOSED, p.OPEN, p.PAUSED}
    assert set(schemas["PresenceStatus"]["enum"]) == {p.ONLINE, p.OFFLINE, p.STOPPED}
    assert tuple(schemas["Outcome"]["enum"]) == p.OUTCOMES
    errors = {v for k, v in vars(p.Err).items() if k.isupper()}
    assert set(schemas["ErrorCode"]["enum"]) == errors
    assert schemas["Command"]["properties"]["id"]["maxLength"] == p.COMMAND_ID_MAX
    assert doc["asyncapi"].startswith("3.") and doc["info"]["version"] == str(p.VERSION)
    for name in ("Command", "Event", "State"):
        assert schemas[name]["properties"]["v"] == {"const": p.VERSION}


# ---------------------------------------------------------------- commands

def test_the_commands_are_exactly_protocol_py_s_ops_with_their_fields(doc):
    channel = doc["channels"]["command"]["messages"]
    documented = {}
    for name, ref in channel.items():
        message = deref(doc, ref)
        op = deref(doc, message["payload"]["allOf"][1])["properties"]["op"]["const"]
        assert op == name
        for role in roles_of(message):
            documented[(role, op)] = message
    assert set(documented) == {(role, op) for role, ops in p.OPS.items() for op in ops}
    for (role, op), message in documented.items():
        required, fields, _ = command_fields(doc, message)
        spec = p.OPS[role][op]
        assert required == set(spec.required), (role, op)
        assert fields == set(spec.required) | set(spec.optional), (role, op)


# Values thrown at each field's schema and at protocol.py's check of it: both must agree on each.
CANDIDATES: list[Any] = [None, True, False, 0, 7, 1.5, "", "a", "x" * 8, "x" * 9, "x" * 32, "x" * 33, "x" * 100,
                         "x" * 101, "x" * 200, "x" * 201, [], ["a"], [1], ["a"] * 20, ["a"] * 21, {}, {"a": 1},
                         "resolved", "handed_on", "Resolved", "sideways"]


def test_every_field_schema_accepts_exactly_what_parse_command_accepts(doc, registry):
    checked = 0
    for name, ref in doc["channels"]["command"]["messages"].items():
        message = deref(doc, ref)
        for role in roles_of(message):
            checked += _check_fields(doc, registry, message, role, name)
    assert checked > 200


def _check_fields(doc: dict[str, Any], registry: Registry, message: dict[str, Any], role: str, name: str) -> int:
    checked = 0
    spec = p.OPS[role][name]
    _, _, schemas = command_fields(doc, message)
    pointer = message_pointer(name)
    for field, schema in schemas.items():
        check = {**spec.required, **spec.optional}[field]
        for value in CANDIDATES:
            if value is None:
                continue  # null means "not given": parse_command drops it, and so should a sender
            ours = Draft7Validator(deref(doc, schema), registry=registry).is_valid(value)
            theirs = check(value) is None
            assert ours == theirs, f"{role} {name}.{field} = {value!r}: schema says {ours}, protocol.py {theirs}"
            checked += 1
    for example in message.get("examples", []):
        payload = example["payload"]
        assert valid(registry, pointer, payload)
        command = p.parse_command(json.dumps(payload).encode(), role, "K1" if role == "kiosk" else "1",
                                  hall="kvarnby", max_bytes=65536)
        assert command.op == name
    return checked


def test_a_command_the_server_refuses_is_not_valid_by_the_schema_either(registry):
    for payload in ({"v": 1, "id": "", "op": "issue", "topic": "general"},            # empty id
                    {"v": 1, "id": "x" * 65, "op": "issue", "topic": "general"},      # id too long
                    {"v": 2, "id": "a", "op": "issue", "topic": "general"},            # other version
                    {"v": 1, "id": "a", "op": "issue"}):                               # no topic
        assert not valid(registry, message_pointer("issue"), payload)
        with pytest.raises(p.ProtocolError):
            p.parse_command(json.dumps(payload).encode(), "kiosk", "K1", hall="kvarnby", max_bytes=65536)


# ---------------------------------------------------------------- everything a real server says

def _channel_of(doc: dict[str, Any], topic: str) -> str:
    for name, channel in doc["channels"].items():
        pattern = re.sub(r"\\\{[a-z]+\\\}", "[^/]+", re.escape(channel["address"]))
        if re.fullmatch(pattern, topic):
            return name
    raise AssertionError(f"{topic} is in no channel of the AsyncAPI document")


def _pointer_for(doc: dict[str, Any], channel: str, payload: dict[str, Any]) -> str:
    if channel == "command":
        return message_pointer(payload["op"])
    if channel == "event":
        return message_pointer(payload["type"])
    if channel == "reply":
        return message_pointer("replyOk" if payload.get("ok") else "replyError")
    return message_pointer(next(iter(doc["channels"][channel]["messages"])))


def test_every_message_of_a_real_hall_validates(doc, registry, amqtt_broker, make_service, hall: HallConfig):
    make_service(amqtt_broker)
    probe = Probe(amqtt_broker.address, "vuoro/#")
    printer = {"state": "paper_out", "paper": "out", "message": "the roll is empty"}
    devices = {"kiosk": ("kiosk", "K1"), "c1": ("counter", "1"), "c4": ("counter", "4"), "it": ("admin", "it"),
               "web": ("web", "web")}
    clients = {name: HallClient(amqtt_broker.address, hall.id, role, device, watch=role == "kiosk",
                                presence_fields={"printer": printer} if role == "kiosk" else None)
               for name, (role, device) in devices.items()}
    try:
        for client in clients.values():
            assert client.start(timeout=10)
        kiosk, c1, c4, it = clients["kiosk"], clients["c1"], clients["c4"], clients["it"]
        kiosk.request("issue", topic="general", lang="fi")
        kiosk.request("issue", topic="permits", priority=True)
        with pytest.raises(CommandError):
            c1.request("next")  # counter_closed: an error reply
        c1.request("open")
        c1.request("next", topic="general")
        c1.request("recall")
        c1.request("recall")
        c1.request("noshow")
        visitor = kiosk.request("issue", topic="general", lang="en")["ticket"]
        c1.request("next", topic="general")
        c4.request("open")
        c1.request("forward", counter="4", note="see the specialist")
        c4.request("next")
        c4.request("done", outcome="handed_on", matters=["general"])
        clients["web"].request("feedback", token=visitor["token"], score=4, comment="Quick and kind")
        with pytest.raises(CommandError):
            clients["web"].request("feedback", token=visitor["token"], score=5)  # already_rated
        clients["web"].request("replay", since=0)
        c1.request("pause", reason="lunch")
        c1.request("open")
        c1.request("close")
        it.request("ping")
        it.request("state")
        probe.client.publish(p.Topics(hall.id).cmd("kiosk", "K9"), b"not json", qos=1).wait_for_publish(5)
        assert probe.wait(p.Topics(hall.id).reply("kiosk", "K9"))
    finally:
        for client in clients.values():
            client.close()
    messages = list(probe.messages)
    probe.close()
    seen = set()
    garbage = p.Topics(hall.id).cmd("kiosk", "K9")
    for topic, body, _ in messages:
        if not body or topic == garbage:
            continue
        payload = json.loads(body)
        channel = _channel_of(doc, topic)
        pointer = _pointer_for(doc, channel, payload)
        errors = [e.message for e in validator(registry, pointer).iter_errors(payload)]
        assert not errors, f"{topic}: {payload}: {errors}"
        seen.add(pointer.split("/")[3])
    assert {"issue", "next", "replyOk", "replyError", "ticket.issued", "ticket.called", "ticket.noshow",
            "ticket.forwarded", "ticket.done", "counter.opened", "counter.paused", "counter.closed",
            "stateHall", "stateQueue", "stateCounter", "stateCalls", "presence", "server", "feedback", "replay",
            "ticket.feedback"} <= seen


def test_the_day_s_events_validate(doc, registry, hall: HallConfig):
    """day.started, ticket.expired (after closing, and at the day's end) and counter.closed at day's end, from
    the pure engine over two days."""
    engine = Engine(hall)
    monday = datetime(2026, 3, 2, 10, 0, tzinfo=hall.tz)
    events: list[p.Event] = []

    def handle(op: str, role: str, device: str, now: datetime, **fields: Any) -> None:
        command = p.parse_command(p.encode(p.command_payload(op, **fields)), role, device, hall=hall.id,
                                  max_bytes=65536)
        events.extend(engine.handle(command, now).events)

    handle("issue", "kiosk", "K1", monday, topic="general")
    handle("issue", "kiosk", "K1", monday, topic="general")
    handle("open", "counter", "1", monday)
    events.extend(engine.tick(monday.replace(hour=20)))
    handle("open", "counter", "1", monday.replace(hour=16))
    events.extend(engine.tick(monday + timedelta(days=1)))
    kinds = {e.type for e in events}
    assert {p.DAY_STARTED, p.TICKET_EXPIRED, p.COUNTER_CLOSED} <= kinds
    for event in events:
        payload = event.payload()
        errors = [e.message for e in validator(registry, message_pointer(event.type)).iter_errors(payload)]
        assert not errors, f"{payload}: {errors}"
