"""The SQLite event log: durable settings, one transaction per batch, replay, refusals."""

from __future__ import annotations

import json

import pytest

from broker import protocol as p
from broker.engine import Engine
from broker.hallstate import HallState
from broker.store import CommandRecord, StorageFault, Store, StoreError


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
    kept = reopened.reply_for(first.role, first.device, first.id)
    assert kept is not None
    reply = json.loads(kept)
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
    with pytest.raises(StoreError, match="another hall server") as refused:
        store.commit(_encoded(events), [])  # the same seqs again: the whole batch must roll back
    assert not isinstance(refused.value, StorageFault)  # no waiting mends two writers: the server must stop
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


# ---------------------------------------------------------------- a disk that refuses

def _fill(store: Store, hall, clock) -> tuple[Engine, int]:
    """Cap the log at the pages it has now (PRAGMA max_page_count: SQLite's own SQLITE_FULL, no root needed)
    and issue tickets until a commit is refused; the engine and the seq last kept."""
    engine = Engine(hall, always_open=True)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    kept = store.last_seq()
    for _ in range(200):
        outcome = engine.handle(_command("issue", topic="general"), clock.advance(seconds=5))
        try:
            store.commit(_encoded(outcome.events), [])
        except StorageFault:
            return engine, kept
        kept = outcome.events[-1].seq
    raise AssertionError("the capped log never refused a commit")


def test_a_full_disk_is_a_storage_fault_and_keeps_nothing_of_the_batch(tmp_path, hall, clock):
    store = Store(tmp_path / "h.sqlite", hall.id)
    engine, kept = _fill(store, hall, clock)
    with pytest.raises(StorageFault) as full:
        outcome = engine.handle(_command("issue", topic="general"), clock.advance(seconds=5))
        store.commit(_encoded(outcome.events), [CommandRecord("kiosk", "K1", "x1", b"{}")])
    assert full.value.kind == "full" and "disk is full" in str(full.value)
    assert store.last_seq() == kept and store.reply_for("kiosk", "K1", "x1") is None
    assert not store.db.in_transaction
    store.db.execute("PRAGMA max_page_count = 1000000")  # space comes back
    store.probe()
    replayed = HallState(hall)
    for event in store.events(store.replay_start()):
        replayed.apply(event)
    engine = Engine(hall, always_open=True, state=replayed)
    outcome = engine.handle(_command("issue", topic="general"), clock.advance(seconds=5))
    store.commit(_encoded(outcome.events), [])
    assert store.last_seq() == kept + 1
    store.close()


def test_a_read_only_database_is_a_storage_fault_that_says_so(tmp_path, hall, clock):
    store = Store(tmp_path / "h.sqlite", hall.id)
    store.db.execute("PRAGMA query_only = 1")  # what a read-only file or mount gives: SQLITE_READONLY
    events = Engine(hall).handle(_command("issue", topic="general"), clock.now()).events
    with pytest.raises(StorageFault, match="read-only") as refused:
        store.commit(_encoded(events), [])
    assert refused.value.kind == "failed" and store.last_seq() == 0
    store.close()


def test_a_damaged_page_met_while_running_is_a_storage_fault_that_says_what_to_do(tmp_path, hall, clock):
    path = tmp_path / "h.sqlite"
    store = Store(path, hall.id)
    engine = Engine(hall)
    for _ in range(300):  # enough events for the table to span pages past the first few
        store.commit(_encoded(engine.handle(_command("issue", topic="general"), clock.now()).events), [])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[3 * page:len(raw) - page] = b"\xa5" * (len(raw) - 4 * page)  # the table's pages, not the header
    path.write_bytes(bytes(raw))
    opened = Store(path, hall.id)  # its first pages are whole: the damage shows when the events are read
    with pytest.raises(StorageFault, match="damaged") as damaged:
        list(opened.events(1))
    assert damaged.value.kind == "failed" and "restore it from a backup" in str(damaged.value)
    opened.close()


def test_a_damaged_file_at_start_is_refused_for_good_with_what_to_do(tmp_path, hall):
    path = tmp_path / "h.sqlite"
    Store(path, hall.id).close()
    raw = bytearray(path.read_bytes())
    raw[100:4096] = b"\xa5" * (4096 - 100)  # the schema page, after the header
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="restore it from a backup") as refused:
        Store(path, hall.id)
    assert not isinstance(refused.value, StorageFault)  # no waiting mends it: `vuoro server` exits and says so


def test_a_folder_that_cannot_be_made_is_a_storage_fault_not_a_crash(tmp_path, hall):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    with pytest.raises(StorageFault, match="cannot create the folder"):
        Store(blocker / "h.sqlite", hall.id)
