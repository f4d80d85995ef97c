"""Garbage on purpose: every bad message gets a clear error, the server runs on, the log does not change."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from broker import protocol as p
from broker.client import HallClient
from tests.support.mqtt_probe import Probe

ROOT = "vuoro/kvarnby/"


def _log(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT seq, type, body FROM events ORDER BY seq").fetchall()


@pytest.fixture
def hall_server(any_broker, hall, make_service, tmp_path):
    """A running server with one ticket called at counter 1, so forward and recall have something to act on."""
    service = make_service(any_broker)
    with HallClient(any_broker.address, hall.id, "kiosk", "K1") as kiosk, \
            HallClient(any_broker.address, hall.id, "counter", "1") as desk:
        assert kiosk.start(10) and desk.start(10)
        kiosk.request("issue", topic="general")
        desk.request("open")
        desk.request("next")
    probe = Probe(any_broker.address, ROOT + "reply/#")
    yield service, probe, tmp_path / "hall.sqlite"
    probe.close()


BAD_MESSAGES = [
    ("malformed JSON", "kiosk/K1", b'{"v":1,"id":"a1","op":"issue",', p.Err.BAD_JSON, None),
    ("not UTF-8", "kiosk/K1", b"\xff\xfe\x00garbage", p.Err.BAD_JSON, None),
    ("a JSON list", "kiosk/K1", b"[1,2,3]", p.Err.BAD_JSON, None),
    ("another version", "kiosk/K1", {"v": 2, "id": "a2", "op": "issue", "topic": "general"}, p.Err.BAD_VERSION, "a2"),
    ("no version", "kiosk/K1", {"id": "a3", "op": "issue", "topic": "general"}, p.Err.BAD_VERSION, "a3"),
    ("no id", "kiosk/K1", {"v": 1, "op": "issue", "topic": "general"}, p.Err.BAD_REQUEST, None),
    ("unknown op", "kiosk/K1", {"v": 1, "id": "a4", "op": "explode"}, p.Err.UNKNOWN_OP, "a4"),
    ("a counter op from a kiosk", "kiosk/K1", {"v": 1, "id": "a5", "op": "next"}, p.Err.UNKNOWN_OP, "a5"),
    ("unknown topic", "kiosk/K1", {"v": 1, "id": "a6", "op": "issue", "topic": "dragons"}, p.Err.UNKNOWN_TOPIC, "a6"),
    ("unknown language", "kiosk/K1", {"v": 1, "id": "a7", "op": "issue", "topic": "general", "lang": "xx"},
     p.Err.UNKNOWN_LANG, "a7"),
    ("topic of the wrong type", "kiosk/K1", {"v": 1, "id": "a8", "op": "issue", "topic": 7}, p.Err.BAD_FIELD, "a8"),
    ("priority of the wrong type", "kiosk/K1",
     {"v": 1, "id": "a9", "op": "issue", "topic": "general", "priority": "yes"}, p.Err.BAD_FIELD, "a9"),
    ("payload of another hall", "kiosk/K1", {"v": 1, "id": "b1", "op": "issue", "topic": "general", "hall": "other"},
     p.Err.WRONG_HALL, "b1"),
    ("a counter that does not exist", "counter/99", {"v": 1, "id": "b2", "op": "next"}, p.Err.UNKNOWN_COUNTER, "b2"),
    ("a counter acting as another", "counter/1", {"v": 1, "id": "b3", "op": "done", "outcome": "resolved",
                                                  "counter": "2"}, p.Err.WRONG_DEVICE, "b3"),
    ("a done without outcome", "counter/1", {"v": 1, "id": "b4", "op": "done"}, p.Err.BAD_FIELD, "b4"),
    ("forward to a topic that does not exist", "counter/1", {"v": 1, "id": "b5", "op": "forward", "topic": "nope"},
     p.Err.UNKNOWN_TOPIC, "b5"),
    ("forward to a counter that does not exist", "counter/1",
     {"v": 1, "id": "b6", "op": "forward", "counter": "77"}, p.Err.UNKNOWN_COUNTER, "b6"),
    ("next on a closed counter", "counter/2", {"v": 1, "id": "b7", "op": "next"}, p.Err.COUNTER_CLOSED, "b7"),
    ("recall with nobody called", "counter/3", {"v": 1, "id": "b8", "op": "recall"}, p.Err.NO_TICKET, "b8"),
    ("a 1 MB payload", "kiosk/K1", b'{"v":1,"id":"big","op":"issue","topic":"' + b"x" * (1 << 20) + b'"}',
     p.Err.TOO_LARGE, None),
]


@pytest.mark.parametrize(("what", "device", "payload", "code", "command_id"), BAD_MESSAGES,
                         ids=[m[0] for m in BAD_MESSAGES])
def test_bad_message_gets_error_reply_and_changes_nothing(hall_server, hall, any_broker, what, device, payload,
                                                          code, command_id):
    service, probe, db = hall_server
    before = _log(db)
    probe.publish(ROOT + "cmd/" + device, payload)
    replies = probe.wait(ROOT + "reply/" + device)
    assert replies, f"no reply to {what}"
    reply = replies[-1]
    assert reply["ok"] is False and reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    assert reply["id"] == command_id
    assert _log(db) == before
    # the server runs on and serves the next good command
    with HallClient(any_broker.address, hall.id, "kiosk", "K2") as kiosk:
        assert kiosk.start(10)
        assert kiosk.request("issue", topic="parking")["ticket"]["number"] == "C001"
    assert service.fatal is None


def test_other_halls_and_unknown_topics_are_ignored(hall_server, any_broker, hall):
    service, probe, db = hall_server
    before = _log(db)
    other = Probe(any_broker.address, "vuoro/otherhall/reply/#")
    other.publish("vuoro/otherhall/cmd/kiosk/K1", {"v": 1, "id": "c1", "op": "issue", "topic": "general"})
    probe.publish(ROOT + "cmd/janitor/J1", {"v": 1, "id": "c2", "op": "issue", "topic": "general"})
    probe.publish(ROOT + "cmd/kiosk/K1/extra", {"v": 1, "id": "c3", "op": "issue", "topic": "general"})
    with HallClient(any_broker.address, hall.id, "admin", "a1", presence=False) as admin:
        assert admin.start(10)
        assert admin.request("ping")["pong"] is True  # processed after the garbage: the server is alive
    assert other.received("vuoro/otherhall/reply/kiosk/K1") == []
    assert _log(db) == before
    assert service.stats.malformed >= 2
    other.close()


def test_refused_command_repeated_gets_the_same_refusal(hall_server):
    _, probe, _ = hall_server
    command = {"v": 1, "id": "same-bad", "op": "next"}
    probe.publish(ROOT + "cmd/counter/3", command)
    probe.publish(ROOT + "cmd/counter/3", command)
    replies = probe.wait(ROOT + "reply/counter/3", 2)
    assert len(replies) == 2 and replies[0] == replies[1]
    assert replies[0]["error"]["code"] == p.Err.COUNTER_CLOSED


def test_error_replies_are_valid_protocol_messages(hall_server):
    _, probe, _ = hall_server
    probe.publish(ROOT + "cmd/kiosk/K9", b"nonsense")
    reply = probe.wait(ROOT + "reply/kiosk/K9")[-1]
    assert reply["v"] == p.VERSION and set(reply) == {"v", "id", "ok", "error"}
    assert json.dumps(reply)  # plain JSON all the way down
