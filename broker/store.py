"""The append-only event log and the replies to processed commands, in one SQLite file.

A reply leaves the server only after the events it reports and the command's id are
committed together (WAL, synchronous FULL), so a crash can lose an unacknowledged
command but never an acknowledged ticket, and a redelivered command finds its reply.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import protocol as p

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,
    at   TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_day_started ON events(seq) WHERE type = 'day.started';
CREATE TABLE IF NOT EXISTS commands (
    role   TEXT NOT NULL,
    device TEXT NOT NULL,
    id     TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    reply  TEXT NOT NULL,
    PRIMARY KEY (role, device, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily (
    day     TEXT NOT NULL,
    topic   TEXT NOT NULL,
    counter TEXT NOT NULL,
    hour    INTEGER NOT NULL,
    tally   TEXT NOT NULL,
    PRIMARY KEY (day, topic, counter, hour)
) WITHOUT ROWID;
"""


class StoreError(RuntimeError):
    """The database cannot be used for this hall; str() tells IT what to do."""


@dataclass(frozen=True)
class CommandRecord:
    role: str
    device: str
    id: str
    reply: bytes  # the encoded reply, as sent


class Store:
    def __init__(self, path: str | Path, hall_id: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable Vuoro database ({exc})") from None
        self._check_meta(hall_id)

    def _check_meta(self, hall_id: str) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            with self.transaction():
                self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                                    [("hall", hall_id), ("schema", str(SCHEMA_VERSION))])
            return
        if meta.get("hall") != hall_id:
            raise StoreError(f"{self.path} holds the log of hall {meta.get('hall')!r}, not {hall_id!r}; "
                             "give each hall its own --db")
        if int(meta.get("schema", 0)) > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer Vuoro (schema {meta['schema']})")

    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # ------------------------------------------------------------ reading

    def last_seq(self) -> int:
        row = self.db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def replay_start(self) -> int:
        """The seq to replay from: the last day.started (earlier days are closed and need no state)."""
        row = self.db.execute("SELECT MAX(seq) FROM events WHERE type = 'day.started'").fetchone()
        return int(row[0] or 1)

    def events(self, from_seq: int = 1) -> Iterator[p.Event]:
        cursor = self.db.execute("SELECT seq, body FROM events WHERE seq >= ? ORDER BY seq", (from_seq,))
        for seq, body in cursor:
            try:
                yield p.Event.from_payload(json.loads(body))
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"{self.path}: event {seq} is not a Vuoro v{p.VERSION} event "
                                 f"({type(exc).__name__}: {exc}); this log cannot be replayed") from None

    def reply_for(self, role: str, device: str, command_id: str) -> bytes | None:
        row = self.db.execute("SELECT reply FROM commands WHERE role = ? AND device = ? AND id = ?",
                              (role, device, command_id)).fetchone()
        return None if row is None else str(row[0]).encode("utf-8")

    # ------------------------------------------------------------ writing

    def commit(self, events: Iterable[tuple[p.Event, bytes]], commands: Iterable[CommandRecord]) -> None:
        """One transaction, one fsync, for everything a batch of commands did.

        Events come with their encoded MQTT payload, which is what the log keeps: encoded once, the
        same bytes are written here and published after the commit.
        """
        with self.transaction():
            self.db.executemany("INSERT INTO events (seq, at, type, body) VALUES (?, ?, ?, ?)",
                                [(e.seq, e.at, e.type, body.decode("utf-8")) for e, body in events])
            self.db.executemany(
                "INSERT INTO commands (role, device, id, seq, reply) VALUES (?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) FROM events), ?)",
                [(c.role, c.device, c.id, c.reply.decode("utf-8")) for c in commands])

    # ------------------------------------------------------------ days, daily figures and the purge

    def days(self) -> list[tuple[str, int, int]]:
        """(day, first seq, last seq) of each day in the log, oldest first. A day runs from its day.started
        to the event before the next one, so the rollover events that end a day belong to it."""
        starts = []
        for seq, body in self.db.execute("SELECT seq, body FROM events WHERE type = 'day.started' ORDER BY seq"):
            starts.append((str(json.loads(body)["day"]), int(seq)))
        last = self.last_seq()
        return [(day, seq, (starts[i + 1][1] - 1) if i + 1 < len(starts) else last)
                for i, (day, seq) in enumerate(starts)]

    def events_between(self, first_seq: int, last_seq: int) -> Iterator[p.Event]:
        for event in self.events(first_seq):
            if event.seq > last_seq:
                return
            yield event

    def daily_rows(self, first_day: str, last_day: str) -> Iterator[tuple[str, str, str, int, dict[str, Any]]]:
        """The figures kept of purged days: (day, topic, counter, hour, tally as JSON)."""
        cursor = self.db.execute("SELECT day, topic, counter, hour, tally FROM daily WHERE day BETWEEN ? AND ? "
                                 "ORDER BY day, topic, counter, hour", (first_day, last_day))
        for day, topic, counter, hour, tally in cursor:
            yield str(day), str(topic), str(counter), int(hour), json.loads(tally)

    def purge_before(self, first_kept: str, summarise: Callable[[list[p.Event]], Mapping[tuple[str, str, str, int],
                                                                                      dict[str, Any]]],
                     limit: int | None = None) -> list[str]:
        """Purge the ticket rows of days before `first_kept` (never the last day of the log), oldest first.

        Each day's figures are worked out by `summarise` (its events -> {(day, topic, counter, hour): tally})
        and written in the same transaction that deletes the day's events and command replies, so a
        day is either whole in the log or kept as figures, never lost. Returns the days purged.
        """
        days = self.days()
        purged: list[str] = []
        for day, first, last in days[:-1]:
            if day >= first_kept or (limit is not None and len(purged) >= limit):
                break
            rows = summarise(list(self.events_between(first, last)))
            with self.transaction():
                self.db.executemany(
                    "INSERT OR REPLACE INTO daily (day, topic, counter, hour, tally) VALUES (?, ?, ?, ?, ?)",
                    [(d, t, c, h, json.dumps(tally, separators=(",", ":"))) for (d, t, c, h), tally in rows.items()])
                self.db.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", (first, last))
                self.db.execute("DELETE FROM commands WHERE seq BETWEEN ? AND ?", (first, last))
            purged.append(day)
        return purged

    def command_keys(self, from_seq: int) -> set[tuple[str, str, str]]:
        """Ids of the commands processed since from_seq: the ones a device may still resend."""
        rows = self.db.execute("SELECT role, device, id FROM commands WHERE seq >= ?", (from_seq - 1,))
        return {(role, device, command_id) for role, device, command_id in rows}

    def close(self) -> None:
        self.db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
