"""No input stops the hall server (issue 11): the payloads found by checking from outside, a fuzz of
10,000 more over the wire, and the pure decoder under hypothesis.

Each message on a command topic is answered with an error code (with id null when no id can be read), the
server process runs on, and the event log does not change.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from broker import protocol as p
from broker.client import HallClient
from tests.support.brokers import ServerProcess
from tests.support.mqtt_probe import Probe
from tests.support.wait import CONNECT_S, REPLY_S, wait_until

HALL = "kvarnby"
TOPICS = p.Topics(HALL)
MAX_BYTES = 65536  # the demo hall's rules.max_payload_bytes
# One device of each role that sends commands, and the counter that is open with a visitor called (so that
# counter commands reach as far into the engine as they can).
DEVICES = [("kiosk", "K9"), ("counter", "1"), ("admin", "a1")]
REPLY_CODES = {v for k, v in vars(p.Err).items() if k.isupper()}


def _log(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq, type, body FROM events ORDER BY seq").fetchall()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# The exact findings (a 19-byte message stopped the server), and their neighbours: (what, payload, the id the
# reply must carry). A lone surrogate arrives as a JSON escape; as raw bytes (CESU) it is not UTF-8 at all.
HOSTILE: list[tuple[str, bytes, str | None]] = [
    ("a lone surrogate as the id", b'{"id":"\\ud800","v":1}', None),
    ("lone surrogate id with an op", b'{"v":1,"id":"\\ud800","op":"nope"}', None),
    ("lone low surrogate as the op", b'{"v":1,"id":"s1","op":"\\udc00"}', "s1"),
    ("lone surrogate as a pause reason", b'{"v":1,"id":"s2","op":"pause","reason":"lunch \\ud83d"}', "s2"),
    ("lone surrogate as a forward note", b'{"v":1,"id":"s3","op":"forward","topic":"permits","note":"\\udfff"}',
     "s3"),
    ("lone surrogate as a topic", b'{"v":1,"id":"s4","op":"issue","topic":"\\ud800"}', "s4"),
    ("lone surrogate as a key", b'{"v":1,"id":"s5","op":"issue","\\ud800":1}', "s5"),
    ("lone surrogate deep inside", b'{"v":1,"id":"s6","op":"done","outcome":"resolved","matters":["\\ud800"]}',
     "s6"),
    ("surrogate as raw bytes", b'{"v":1,"id":"s7","op":"issue","topic":"\xed\xa0\x80"}', None),
    ("nested 1,001 deep", _deep(1001), None),
    ("nested 1,001 deep in a field", b'{"v":1,"id":"d1","op":"issue","topic":' + _deep(1001) + b"}", None),
    ("nested 17 deep in a field", b'{"v":1,"id":"d2","op":"issue","topic":"general","x":' + _deep(16) + b"}", "d2"),
    ("nested 30,000 deep", _deep(30000), None),
    ("an integer of 5,000 digits", b'{"v":1,"id":"n1","op":"issue","topic":"general","priority":' +
     b"9" * 5000 + b"}", None),
    ("an integer of 4,301 digits as the version", b'{"v":' + b"1" * 4301 + b',"id":"n2","op":"ping"}', None),
    ("a negative integer of 30,000 digits", b'{"v":1,"id":"n3","op":"ping","x":-' + b"7" * 30000 + b"}", None),
    ("NaN", b'{"v":1,"id":"n4","op":"ping","x":NaN}', None),
    ("Infinity", b'{"v":1,"id":"n5","op":"ping","x":-Infinity}', None),
    ("a float that overflows", b'{"v":1,"id":"n6","op":"ping","x":1e999}', None),
    ("a float of 20,000 digits", b'{"v":1,"id":"n7","op":"ping","x":0.' + b"3" * 20000 + b"}", None),
]


@pytest.fixture
def server(any_broker, hall, tmp_path):
    """`vuoro server` as a process, with one visitor called at counter 1."""
    db = tmp_path / "hall.sqlite"
    process = ServerProcess(db, any_broker.address).start()
    with HallClient(any_broker.address, hall.id, "kiosk", "K1", presence=False) as kiosk, \
            HallClient(any_broker.address, hall.id, "counter", "1", presence=False) as desk:
        assert kiosk.start(CONNECT_S) and desk.start(CONNECT_S)
        kiosk.request("issue", topic="general")
        kiosk.request("issue", topic="general")
        desk.request("open")
        desk.request("next")
    yield process, db
    assert process.stop() == 0, process.log.read_text()[-3000:]


@pytest.mark.parametrize("role,device", DEVICES, ids=[r for r, _ in DEVICES])
def test_the_payloads_that_stopped_the_server_are_answered_and_change_nothing(server, any_broker, hall, role,
                                                                             device):
    process, db = server
    before = _log(db)
    reply_topic = TOPICS.reply(role, device)
    probe = Probe(any_broker.address, reply_topic)
    try:
        for _, payload, _ in HOSTILE:
            probe.publish(TOPICS.cmd(role, device), payload)
        wait_until(lambda: len(probe.received(reply_topic)) >= len(HOSTILE), REPLY_S * 2,
                   lambda: f"{len(HOSTILE)} replies, got {len(probe.received(reply_topic))}")
        replies = probe.received(reply_topic)
    finally:
        probe.close()
    assert len(replies) == len(HOSTILE)  # in order: one topic, one subscriber, QoS 1
    for (what, _, command_id), reply in zip(HOSTILE, replies, strict=True):
        assert reply["ok"] is False and reply["error"]["code"] in REPLY_CODES - {p.Err.INTERNAL}, (what, reply)
        assert reply["error"]["message"], what
        assert reply["id"] == command_id, (what, reply)
    assert process.proc is not None and process.proc.poll() is None, "the hall server exited"
    assert _log(db) == before
    with HallClient(any_broker.address, hall.id, "kiosk", "K2", presence=False) as kiosk:
        assert kiosk.start(CONNECT_S)
        assert kiosk.request("issue", topic="parking")["ticket"]["number"] == "C001"


# ---------------------------------------------------------------- 10,000 over the wire

FUZZ_COUNT = 10_000
FUZZ_SEED = 20261207
# Where the fuzz goes: every command role, a device of the hall and one it does not know, and topics that
# are no command topic at all (ignored with a log line: no reply topic can be known).
FUZZ_TARGETS = [("kiosk", "F1"), ("kiosk", "F2"), ("counter", "1"), ("counter", "2"), ("counter", "99"),
                ("admin", "F1")]
FUZZ_STRAY = ["vuoro/kvarnby/cmd/janitor/J1", "vuoro/kvarnby/cmd/kiosk/F1/extra", "vuoro/kvarnby/cmd/kiosk/bad id"]


class Fuzz:
    """Payloads that can never be a command the hall carries out (so the event log must not change), each
    one of a kind the protocol must refuse: random bytes, broken text, deep nests, huge numbers, wrong
    types and wrong fields in commands that look right."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.kinds = [self.random_bytes, self.invalid_utf8, self.surrogate, self.deep, self.huge_number,
                      self.not_an_object, self.wrong_version, self.bad_id, self.wrong_fields, self.unknown_op,
                      self.truncated, self.big]

    def __call__(self) -> bytes:
        return self.rng.choice(self.kinds)()

    def _id(self) -> str:
        return f"fz{self.rng.randrange(10 ** 9)}"

    def _json(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=self.rng.random() < 0.5).encode("utf-8")

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 1, 2, 7, 19, 100, 1000]))

    def invalid_utf8(self) -> bytes:
        good = self._json({"v": 1, "id": self._id(), "op": "issue", "topic": "general"})
        cut = self.rng.randrange(1, len(good))
        return good[:cut] + self.rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]) + \
            good[cut:]

    def surrogate(self) -> bytes:
        unit = f"\\u{self.rng.randrange(0xD800, 0xE000):04x}".encode()
        field = self.rng.choice([b"id", b"op", b"topic", b"reason", b"note", b"lang", b"hall"])
        return b'{"v":1,"id":"' + (unit if field == b"id" else b"su" + str(self.rng.random()).encode()) + \
            b'","op":"pause","' + field + b'":"x' + unit + b'"}'

    def deep(self) -> bytes:
        depth = self.rng.choice([17, 40, 999, 1001, 5000, 30000])
        opener, closer = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        nest = opener * depth + b"0" + closer * depth
        return nest if self.rng.random() < 0.3 else b'{"v":1,"id":"' + self._id().encode() + \
            b'","op":"issue","topic":' + nest + b"}"

    def huge_number(self) -> bytes:
        number = self.rng.choice([b"9" * self.rng.choice([20, 4301, 5000, 60000]), b"1e999", b"-1e400", b"NaN",
                                  b"Infinity", b"-Infinity", b"0." + b"1" * 50000])
        field = self.rng.choice([b"v", b"priority", b"topic", b"x"])
        return b'{"v":1,"id":"' + self._id().encode() + b'","op":"issue","' + field + b'":' + number + b"}"

    def not_an_object(self) -> bytes:
        return self._json(self.rng.choice([[1, 2], "issue", 42, None, True, 1.5, [{"v": 1}]]))

    def wrong_version(self) -> bytes:
        return self._json({"v": self.rng.choice([0, 2, "1", 1.0, None, [1], True]), "id": self._id(),
                           "op": "issue", "topic": "general"})

    def bad_id(self) -> bytes:
        command_id = self.rng.choice([None, 7, "", "x" * 65, ["a"], {"a": 1}, True])
        body = {"v": 1, "op": "issue", "topic": "general"}
        if command_id is not None or self.rng.random() < 0.5:
            body["id"] = command_id
        return self._json(body)

    def wrong_fields(self) -> bytes:
        bad: dict[str, Any] = self.rng.choice([
            {"op": "issue", "topic": self.rng.choice([7, None, [], {}, True, "dragons", "x" * 40])},
            {"op": "issue", "topic": "general", "lang": self.rng.choice(["xx", 5, "x" * 9])},
            {"op": "issue", "topic": "general", "priority": self.rng.choice(["yes", 1, "true", []])},
            {"op": "issue", "topic": "general", "hall": "otherhall"},
            {"op": "done", "outcome": self.rng.choice(["maybe", 1, None, ["resolved"]])},
            {"op": "done", "outcome": "resolved", "matters": self.rng.choice(["general", [1], ["a"] * 21])},
            {"op": "forward", "topic": "permits", "counter": "4"},
            {"op": "forward"},
            {"op": "forward", "topic": "nope"},
            {"op": "forward", "counter": "77"},
            {"op": "forward", "topic": "permits", "note": "n" * 201},
            {"op": "pause", "reason": self.rng.choice(["r" * 101, 5, ["lunch"]])},
            {"op": "next", "topic": self.rng.choice([5, "dragons", ["general"]])},
            {"op": "done", "outcome": "resolved", "counter": "2"},
            {"op": "recall", "counter": "3"},
        ])
        return self._json({"v": 1, "id": self._id(), **bad})

    def unknown_op(self) -> bytes:
        return self._json({"v": 1, "id": self._id(), "op": self.rng.choice(["explode", "", 5, None, "ISSUE",
                                                                            "__init__", "_op_next"])})

    def truncated(self) -> bytes:
        good = self._json({"v": 1, "id": self._id(), "op": "issue", "topic": "general", "lang": "fi"})
        return good[:self.rng.randrange(len(good))]

    def big(self) -> bytes:
        size = self.rng.choice([MAX_BYTES - 100, MAX_BYTES - 40, MAX_BYTES + 1, MAX_BYTES * 2])
        head = b'{"v":1,"id":"' + self._id().encode() + b'","op":"issue","topic":"'
        return head + b"x" * (size - len(head) - 2) + b'"}'


def test_ten_thousand_hostile_messages_are_all_answered_and_change_nothing(mosquitto, hall, tmp_path):
    db = tmp_path / "hall.sqlite"
    process = ServerProcess(db, mosquitto.address).start()
    fuzz = Fuzz(FUZZ_SEED)
    with HallClient(mosquitto.address, hall.id, "counter", "1", presence=False) as desk, \
            HallClient(mosquitto.address, hall.id, "kiosk", "K1", presence=False) as kiosk:
        assert desk.start(CONNECT_S) and kiosk.start(CONNECT_S)
        kiosk.request("issue", topic="general")
        desk.request("open")
        desk.request("next")
    before = _log(db)
    probe = Probe(mosquitto.address, TOPICS.all_replies(), TOPICS.server())  # after those: only fuzz replies
    sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    sender.max_inflight_messages_set(1000)  # a pipelining attacker, not one message per round trip
    sender.connect(mosquitto.address.host, mosquitto.address.port)
    sender.loop_start()
    sent: Counter[str] = Counter()
    try:
        kinds: Counter[str] = Counter()
        for start in range(0, FUZZ_COUNT, 500):
            pending = []
            for _ in range(500):
                if fuzz.rng.random() < 0.02:
                    topic = fuzz.rng.choice(FUZZ_STRAY)
                else:
                    role, device = fuzz.rng.choice(FUZZ_TARGETS)
                    topic = TOPICS.cmd(role, device)
                    sent[TOPICS.reply(role, device)] += 1
                kind = fuzz.rng.choice(fuzz.kinds)
                kinds[kind.__name__] += 1
                pending.append(sender.publish(topic, kind(), qos=1))
            for info in pending:
                info.wait_for_publish(REPLY_S * 4)
            assert process.proc is not None and process.proc.poll() is None, \
                f"the hall server exited after {start + 500} messages: {process.log.read_text()[-3000:]}"

        def answered() -> bool:
            return all(len(probe.received(topic)) >= count for topic, count in sent.items())

        wait_until(answered, 60, lambda: f"every message answered: sent {dict(sent)}, answered "
                   f"{ {t: len(probe.received(t)) for t in sent} }")
        codes: Counter[str] = Counter()
        for topic, count in sent.items():
            replies = probe.received(topic)
            assert len(replies) == count, f"{topic}: {len(replies)} replies to {count} messages"
            for reply in replies:
                assert reply["v"] == p.VERSION and reply["ok"] is False, reply
                assert reply["error"]["code"] in REPLY_CODES - {p.Err.INTERNAL}, reply
                assert reply["id"] is None or isinstance(reply["id"], str)
                codes[reply["error"]["code"]] += 1
        assert {p.Err.BAD_JSON, p.Err.BAD_FIELD, p.Err.BAD_VERSION, p.Err.BAD_REQUEST, p.Err.TOO_LARGE,
                p.Err.UNKNOWN_OP} <= set(codes), codes
        assert min(kinds.values()) > FUZZ_COUNT // (len(fuzz.kinds) * 2), kinds  # every kind was sent
        presence = [json.loads(m[1]) for m in probe.messages if m[0] == TOPICS.server()]
        assert presence and all(m["status"] == p.ONLINE and m["storage"] == "ok" for m in presence), presence
        assert _log(db) == before
        with HallClient(mosquitto.address, hall.id, "admin", "after", presence=False) as admin:
            assert admin.start(CONNECT_S)
            assert admin.request("ping")["pong"] is True
    finally:
        sender.disconnect()
        sender.loop_stop()
        probe.close()
        assert process.stop() == 0, process.log.read_text()[-3000:]


# ---------------------------------------------------------------- the decoder alone, under hypothesis

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | \
    st.text(st.characters(exclude_categories=()))  # lone surrogates included
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)
FIELDS = st.sampled_from(["v", "id", "op", "topic", "lang", "priority", "outcome", "matters", "counter", "note",
                          "reason", "hall"])
COMMANDS = st.dictionaries(FIELDS, JSON_VALUES | st.sampled_from([1, "general", "issue", "pause", "forward",
                                                                  "resolved", "fi", "1", "4"]), max_size=7)


def _as_wire(value: Any) -> bytes:
    """JSON as a device could send it: escapes for what UTF-8 cannot carry, NaN and Infinity as Python
    writes them."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def _decodes_or_refuses(raw: bytes, role: str, device: str) -> None:
    try:
        command = p.parse_command(raw, role, device, hall=HALL, max_bytes=MAX_BYTES)
    except p.ProtocolError as exc:
        assert exc.code in REPLY_CODES - {p.Err.INTERNAL}
        reply = p.encode(p.reply_error(exc.command_id, exc.code, exc.message, exc.details))
        assert json.loads(reply.decode("utf-8"))["error"]["code"] == exc.code
        return
    # accepted: everything in it is text that UTF-8 carries, so echoing any of it can never fail
    body = p.encode(p.reply_ok(command.id, {"args": dict(command.args), "op": command.op}))
    assert json.loads(body.decode("utf-8"))["id"] == command.id


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(DEVICES))
def test_any_bytes_decode_or_are_refused_with_a_code(raw, target):
    _decodes_or_refuses(raw, *target)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(COMMANDS, st.sampled_from(DEVICES))
def test_any_json_command_decodes_or_is_refused_with_a_code(body, target):
    _decodes_or_refuses(_as_wire(body), *target)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=40000), st.sampled_from([("[", "]"), ('{"a":', "}")]))
def test_any_depth_decodes_or_is_refused_with_a_code(depth, brackets):
    raw = ('{"v":1,"id":"d","op":"ping","x":' + brackets[0] * depth + "0" + brackets[1] * depth + "}").encode()
    if len(raw) <= MAX_BYTES:
        _decodes_or_refuses(raw, "admin", "a1")
        if depth >= p.JSON_DEPTH_MAX:
            with pytest.raises(p.ProtocolError, match="nested deeper"):
                p.parse_command(raw, "admin", "a1", hall=HALL, max_bytes=MAX_BYTES)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0xD800, max_value=0xDFFF).map(chr),
       st.sampled_from(["id", "op", "topic", "reason", "note", "lang", "hall", "v"]))
def test_a_lone_surrogate_anywhere_is_refused_naming_its_field(surrogate, field):
    body = {"v": 1, "id": "c1", "op": "pause", field: "x" + surrogate + "y"}
    with pytest.raises(p.ProtocolError) as refused:
        p.parse_command(_as_wire(body), "counter", "1", hall=HALL, max_bytes=MAX_BYTES)
    assert refused.value.code == p.Err.BAD_FIELD and f'"{field}"' in refused.value.message
    assert refused.value.command_id == (None if field == "id" else "c1")


def test_encode_never_fails_on_text_that_is_not_unicode():
    """The second line: a lone surrogate from anywhere goes out as an ASCII escape, not an exception."""
    body = p.encode({"note": "a\ud800b", "ok": "ä"})
    assert body.isascii() and json.loads(body) == {"note": "a\ud800b", "ok": "ä"}
    assert p.encode({"ok": "ä"}) == '{"ok":"ä"}'.encode()
