"""The city's PostgreSQL: every hall's events exactly once by (hall, seq), written in batches, and read back
for the city report (the same `days / events_between / daily_rows` that analytics/report.py reads a hall's
SQLite log through: stats.EventSource).

A batch goes in with COPY into a temporary table and one INSERT ... ON CONFLICT DO NOTHING: an event that
came twice (live over the bridge and again in a catch-up) is kept once. Each batch also moves every hall's
`contiguous` mark, the seq up to which the hall's log is complete here, in the same transaction: what the
collector asks a hall for after any outage starts there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from broker import protocol as p
from city.migrate import migrate

CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Row:
    """One event of one hall as it goes into the table."""

    hall: str
    seq: int
    body: Mapping[str, Any]  # the whole payload: v, seq, at, type and the event's own fields


def row_of(hall: str, payload: Mapping[str, Any]) -> Row:
    """A payload from the bridge or a replay page; ValueError when it is no event (a hostile or broken message
    must not stop the collector nor poison a batch)."""
    seq, at, kind = payload.get("seq"), payload.get("at"), payload.get("type")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or seq > 2**62:
        raise ValueError(f"event without a valid seq: {str(payload)[:80]}")
    if not isinstance(kind, str) or kind not in p.EVENT_TYPES:
        raise ValueError(f"event {seq}: unknown type {kind!r}")
    if not isinstance(at, str):
        raise ValueError(f"event {seq}: no time")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(f"event {seq}: time {at!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise ValueError(f"event {seq}: time {at!r} has no offset")
    if not p.HALL_ID_RE.match(hall):
        raise ValueError(f"invalid hall id {hall!r}")
    return Row(hall, seq, payload)


class CityStore:
    """One connection to the city database; not shared between threads."""

    def __init__(self, dsn: str, *, migrate_schema: bool = True) -> None:
        self.dsn = dsn
        # autocommit: every write is its own explicit transaction() block, and a read never holds one open
        self.conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        if migrate_schema:
            migrate(self.conn)

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------ writing

    def write(self, rows: Iterable[Row], contiguous: Mapping[str, int] | None = None) -> int:
        """Keep a batch (duplicates dropped) and the halls' new contiguous marks in one transaction; returns the
        number of events that were new."""
        rows = list(rows)
        halls = sorted({r.hall for r in rows} | set(contiguous or {}))
        with self.conn.transaction():
            if halls:
                with self.conn.cursor() as cur:
                    cur.executemany("INSERT INTO halls (hall) VALUES (%s) ON CONFLICT DO NOTHING",
                                    [(h,) for h in halls])
            inserted = 0
            if rows:
                self.conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS incoming (hall text, seq bigint, "
                                  "at timestamptz, type text, body jsonb) ON COMMIT DELETE ROWS")
                with self.conn.cursor() as cur:
                    with cur.copy("COPY incoming (hall, seq, at, type, body) FROM STDIN") as copy:
                        for r in rows:
                            copy.write_row((r.hall, r.seq, r.body["at"], r.body["type"],
                                            json.dumps(r.body, ensure_ascii=False, separators=(",", ":"))))
                    cur.execute("INSERT INTO events (hall, seq, at, type, body) SELECT "
                                "hall, seq, at, type, body FROM incoming ON CONFLICT DO NOTHING")
                    inserted = cur.rowcount
            for hall, mark in (contiguous or {}).items():
                self.conn.execute("UPDATE halls SET contiguous = %s WHERE hall = %s AND contiguous < %s",
                                  (mark, hall, mark))
        return max(0, inserted)

    # ------------------------------------------------------------ what is here

    def contiguous(self) -> dict[str, int]:
        return {str(h): int(c) for h, c in self.conn.execute("SELECT hall, contiguous FROM halls")}

    def seqs_after(self, hall: str, seq: int) -> list[int]:
        """The seqs of a hall kept beyond its contiguous mark (live events that came past a gap)."""
        return [int(s) for (s,) in self.conn.execute(
            "SELECT seq FROM events WHERE hall = %s AND seq > %s ORDER BY seq", (hall, seq))]

    def halls(self) -> list[str]:
        return [str(h) for (h,) in self.conn.execute("SELECT hall FROM halls ORDER BY hall")]

    def count(self, hall: str | None = None) -> int:
        if hall is None:
            return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]
        return int(self.conn.execute("SELECT count(*) FROM events WHERE hall = %s",
                                     (hall,)).fetchone()[0])  # type: ignore[index]

    def rows(self, hall: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, body) of every event of a hall, in order: for checks and exports."""
        return [(int(s), dict(b)) for s, b in self.conn.execute(
            "SELECT seq, body FROM events WHERE hall = %s ORDER BY seq", (hall,))]

    def source(self, hall: str) -> HallEvents:
        return HallEvents(self, hall)


class HallEvents:
    """One hall's events in the city database, read as analytics/report.py reads a hall's own log
    (stats.EventSource). The centre keeps every event, so there are no purged days' figures."""

    def __init__(self, store: CityStore, hall: str) -> None:
        self.store, self.hall = store, hall

    def days(self) -> list[tuple[str, int, int]]:
        conn = self.store.conn
        starts = [(str(day), int(seq)) for seq, day in conn.execute(
            "SELECT seq, body->>'day' FROM events WHERE hall = %s AND type = 'day.started' ORDER BY seq",
            (self.hall,))]
        row = conn.execute("SELECT max(seq) FROM events WHERE hall = %s", (self.hall,)).fetchone()
        last = int(row[0] or 0) if row else 0
        return [(day, seq, (starts[i + 1][1] - 1) if i + 1 < len(starts) else last)
                for i, (day, seq) in enumerate(starts)]

    def events_between(self, first_seq: int, last_seq: int) -> Iterator[p.Event]:
        conn = self.store.conn
        with conn.transaction(), conn.cursor(name=f"events_{self.hall}") as cur:  # server-side: a day streams
            cur.itersize = 5000
            cur.execute("SELECT body FROM events WHERE hall = %s AND seq BETWEEN %s AND %s ORDER BY seq",
                        (self.hall, first_seq, last_seq))
            for (body,) in cur:
                yield p.Event.from_payload(body)

    def daily_rows(self, first_day: str, last_day: str) -> Iterator[tuple[str, str, str, int, dict[str, Any]]]:
        return iter(())
