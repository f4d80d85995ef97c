"""The city database on the machine's real PostgreSQL (a fresh database per test): versioned migrations applied
once, events kept exactly once by (hall, seq) in batches, each hall's contiguous mark, and hostile payloads
refused before they reach a batch."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from city.migrate import migrate, migrations
from city.pgstore import CityStore, Row, row_of
from tests.support.postgres import city_dsn, postgres  # noqa: F401 -- fixtures

AT = "2026-12-07T09:00:00+02:00"


def event(seq: int, kind: str = "ticket.issued", **fields: Any) -> dict[str, Any]:
    return {"v": 1, "seq": seq, "at": AT, "type": kind, **fields}


def test_migrations_apply_once_and_are_recorded(city_dsn: str) -> None:  # noqa: F811
    # two collectors starting at once on an empty database: the advisory lock lets one apply, the other waits
    counts: list[int] = []
    ready = threading.Barrier(2)

    def start() -> None:
        ready.wait(10)
        store = CityStore(city_dsn)
        row = store.conn.execute("SELECT count(*) FROM schema_versions").fetchone()
        counts.append(int(row[0]) if row else -1)
        store.close()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert counts == [len(migrations())] * 2
    store = CityStore(city_dsn)
    try:
        versions = [tuple(r) for r in store.conn.execute("SELECT version, name FROM schema_versions ORDER BY 1")]
        assert versions == [(m.version, m.name) for m in migrations()]
        assert migrate(store.conn) == []  # a later start applies nothing
    finally:
        store.close()


def test_a_batch_keeps_each_event_once_and_moves_the_mark(city_dsn: str) -> None:  # noqa: F811
    store = CityStore(city_dsn)
    try:
        rows = [row_of("north", event(s)) for s in (1, 2, 3)] + [row_of("south", event(1, "day.started",
                                                                                        day="2026-12-07"))]
        assert store.write(rows, {"north": 3, "south": 1}) == 4
        # live and replayed again, and twice in one batch: nothing new
        again = [row_of("north", event(s)) for s in (2, 3, 3, 4)]
        assert store.write(again, {"north": 4}) == 1
        assert store.count("north") == 4 and store.count() == 5
        assert store.contiguous() == {"north": 4, "south": 1}
        assert store.write([], {"north": 2}) == 0 and store.contiguous()["north"] == 4  # a mark never goes back
        assert [s for s, _ in store.rows("north")] == [1, 2, 3, 4]
        assert store.rows("south")[0][1] == event(1, "day.started", day="2026-12-07")
        assert store.seqs_after("north", 2) == [3, 4]
    finally:
        store.close()


@pytest.mark.parametrize("payload", [
    {}, {"seq": "1", "at": AT, "type": "ticket.issued"}, {"seq": True, "at": AT, "type": "ticket.issued"},
    {"seq": 0, "at": AT, "type": "ticket.issued"}, {"seq": 2**63, "at": AT, "type": "ticket.issued"},
    {"seq": 1, "at": AT, "type": "drop table"}, {"seq": 1, "at": "yesterday", "type": "ticket.issued"},
    {"seq": 1, "at": "2026-12-07T09:00:00", "type": "ticket.issued"}, {"seq": 1, "at": 5, "type": "ticket.issued"},
])
def test_what_is_no_event_never_reaches_a_batch(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        row_of("north", payload)


def test_a_hall_id_that_is_no_hall_is_refused() -> None:
    with pytest.raises(ValueError):
        row_of("../etc", event(1))
    assert isinstance(row_of("north", event(1)), Row)
