"""The SQLite event log: durable settings, one transaction per batch, replay, refusals."""

from __future__ import annotations

import json
import sqlite3

import pytest

from broker import protocol as p
from broker.engine import Engine
from broker.hallstate import HallState
from broker.store import CommandRecord, Store, StoreError


def _encoded(events: list[p.Event]) -> list[tuple[p.Event, bytes]]:
    return [(event, p.encode(event.payload())) for event in events]


def _command(op: str, role: str = "kiosk", device: str = "K1", **args) -> p.Command:
    return p.Command(id=p.new_command_id(), role=role, device=device, op=op, args=args)


def test_log_is_wal_with_full_sync(tmp_path, hall):
    store = Store(tmp_path / "h.sqlite", hall.id)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_events_and_command_replies_survive_reopen_and_replay_to_the_same_state(tmp_path, hall, clock):
    path = tmp_path / "h.sqlite"
    store = Store(path, hall.id)
    engine = Engine(hall)
    commands = [_command("issue", topic="general"), _command("issue", topic="permits", priority=True),
                _command("open", "counter", "1"), _command("next", "counter", "1")]
    for command in commands:
        outcome = engine.handle(command, clock.advance(minutes=1))
        assert outcome.ok, outcome.reply
        store.commit(_encoded(outcome.events),
                     [CommandRecord(command.role, command.device, command.id, p.encode(outcome.reply))])
    store.close()

    reopened = Store(path, hall.id)
    replayed = HallState(hall)
    for event in reopened.events(reopened.replay_start()):
        replayed.apply(event)
    assert replayed.seq == engine.state.seq == reopened.last_seq()
    assert {n: t.public() for n, t in replayed.tickets.items()} == \
        {n: t.public() for n, t in engine.state.tickets.items()}
    assert replayed.counters["1"].current == "A001"
    first = commands[0]
    reply = json.loads(reopened.reply_for(first.role, first.device, first.id))
    assert reply["result"]["ticket"]["number"] == "A001"
    assert reopened.command_keys(1) == {(c.role, c.device, c.id) for c in commands}
    assert reopened.reply_for("kiosk", "K2", first.id) is None  # ids are scoped per device
    reopened.close()


def test_replay_starts_at_the_last_day(tmp_path, hall, clock):
    store = Store(tmp_path / "h.sqlite", hall.id)
    engine = Engine(hall)
    store.commit(_encoded(engine.handle(_command("issue", topic="general"), clock.now()).events), [])
    store.commit(_encoded(engine.handle(_command("issue", topic="general"), clock.advance(days=1)).events), [])
    start = store.replay_start()
    types = [e.type for e in store.events(start)]
    assert types[0] == p.DAY_STARTED and types.count(p.DAY_STARTED) == 1
    state = HallState(hall)
    state.seq = start - 1
    for event in store.events(start):
        state.apply(event)
    assert list(state.tickets) == ["A001"] and state.day == engine.state.day
    store.close()


def test_a_failed_batch_writes_nothing(tmp_path, hall, clock):
    store = Store(tmp_path / "h.sqlite", hall.id)
    events = Engine(hall).handle(_command("issue", topic="general"), clock.now()).events
    store.commit(_encoded(events), [])
    with pytest.raises(sqlite3.IntegrityError):
        store.commit(_encoded(events), [])  # the same seqs again: the whole batch must roll back
    assert store.last_seq() == events[-1].seq
    store.close()


def test_database_of_another_hall_is_refused(tmp_path, hall):
    Store(tmp_path / "h.sqlite", "someotherhall").close()
    with pytest.raises(StoreError, match="someotherhall"):
        Store(tmp_path / "h.sqlite", hall.id)


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path, hall):
    path = tmp_path / "h.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a usable Vuoro database"):
        Store(path, hall.id)


def test_server_refuses_a_log_that_does_not_fit_the_hall_config(tmp_path, hall, clock):
    from dataclasses import replace

    from broker.mqtt import BrokerAddress
    from broker.service import HallService

    store = Store(tmp_path / "h.sqlite", hall.id)
    store.commit(_encoded(Engine(hall).handle(_command("issue", topic="permits"), clock.now()).events), [])
    store.close()
    smaller = replace(hall, topics={k: v for k, v in hall.topics.items() if k != "permits"})
    with pytest.raises(StoreError, match="does not fit this hall config"):
        HallService(smaller, tmp_path / "h.sqlite", BrokerAddress("127.0.0.1", 1))


def test_an_unreadable_event_in_the_log_is_a_clear_error(tmp_path, hall, clock):
    store = Store(tmp_path / "h.sqlite", hall.id)
    store.commit(_encoded(Engine(hall).handle(_command("issue", topic="general"), clock.now()).events), [])
    store.db.execute("UPDATE events SET body = '{\"ticket\": {}}' WHERE seq = 2")
    with pytest.raises(StoreError, match="event 2 is not a Vuoro v1 event"):
        list(store.events(1))
    store.close()
