"""The append-only event log and the replies to processed commands, in one SQLite file.

A reply leaves the server only after the events it reports and the command's id are
committed together (WAL, synchronous FULL), so a crash can lose an unacknowledged
command but never an acknowledged ticket, and a redelivered command finds its reply.

What the disk or SQLite refuses comes out as one of two exceptions: StorageFault when it may
pass (a full disk, a read-only or failing one: the server answers storage_full/storage_failed
and tries again), StoreError when a person must decide (another hall's log, a corrupt file).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker import protocol as p

SCHEMA_VERSION = 1
# How long a write waits for another program's write lock (SQLite's busy timeout). The server is the log's only
# writer, so a lock held longer is a second writer or a stuck tool: better refused (storage_failed, retried)
# than the whole hall server held up.
BUSY_S = 1.0

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


FULL = "full"  # the disk (or the database's own size limit) is full
FAILED = "failed"  # read-only, an I/O error, locked by another program, or a corrupt page met while running

# SQLite's primary result codes (the low byte of an extended code) that a person must act on before this log
# can be opened at all: no waiting helps.
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_FULL_CODES = {sqlite3.SQLITE_FULL}


class StorageFault(StoreError):
    """The disk or the database refused a read or write that may work later: nothing of it was kept.

    `kind` is FULL or FAILED, the word the server's presence and error code carry.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path if path.is_dir() else path.parent).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def fault_of(exc: sqlite3.Error | OSError, path: Path, doing: str) -> StoreError:
    """The exception to raise for what SQLite or the OS said while `doing` something with the log at `path`."""
    if _read_only_mount(path):  # SQLite says only "unable to open" or "readonly": name the cause
        return StorageFault(FAILED, f"cannot {doing} {path}: its file system is mounted read-only ({exc}); "
                            "remount it read-write")
    if isinstance(exc, OSError):
        kind = FULL if exc.errno in (errno.ENOSPC, errno.EDQUOT) else FAILED
        return StorageFault(kind, f"cannot {doing} {path}: {exc.strerror or exc}")
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    if primary in _FULL_CODES or "full" in str(exc):
        return StorageFault(FULL, f"cannot {doing} {path}: the disk is full ({exc}); free some space")
    if primary in _CORRUPT_CODES or (primary is None and "malformed" in str(exc)):
        return StorageFault(FAILED, f"cannot {doing} {path}: the database is damaged ({exc}); restore it from a "
                            "backup, or move it away to start a new log")
    if primary == sqlite3.SQLITE_CONSTRAINT:  # a seq or command id that is already there: two writers, or a bug
        return StoreError(f"cannot {doing} {path}: {exc}; is another hall server writing this log?")
    if primary == sqlite3.SQLITE_READONLY:
        return StorageFault(FAILED, f"cannot {doing} {path}: the database is read-only ({exc}); check the "
                            "file's permissions and that its file system is mounted read-write")
    return StorageFault(FAILED, f"cannot {doing} {path}: {exc}")


def is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in _CORRUPT_CODES) or "malformed" in str(exc) \
        or "not a database" in str(exc)


@dataclass(frozen=True)
class CommandRecord:
    role: str
    device: str
    id: str
    reply: bytes  # the encoded reply, as sent


class Store:
    """Raises StoreError when this file cannot be this hall's log, StorageFault when the disk refuses now."""

    def __init__(self, path: str | Path, hall_id: str) -> None:
        self.path = Path(path)
        self._probes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fault_of(exc, self.path.parent, "create the folder of") from None
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_S)
        except sqlite3.Error as exc:
            raise fault_of(exc, self.path, "open") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            self._check_meta(hall_id)
        except sqlite3.Error as exc:
            self.db.close()
            if is_corrupt(exc):
                raise StoreError(f"{self.path}: not a usable Vuoro database ({exc}); restore it from a backup, "
                                 "or move it away to start a new log") from None
            raise fault_of(exc, self.path, "open") from None
        except StoreError:
            self.db.close()
            raise

    @contextmanager
    def _faults(self, doing: str) -> Iterator[None]:
        """SQLite's and the OS's errors as StorageFault or StoreError, saying what was being done."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise fault_of(exc, self.path, doing) from None

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
        with self._faults("read"):
            row = self.db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    def replay_start(self) -> int:
        """The seq to replay from: the last day.started (earlier days are closed and need no state)."""
        with self._faults("read"):
            row = self.db.execute("SELECT MAX(seq) FROM events WHERE type = 'day.started'").fetchone()
        return int(row[0] or 1)

    def events(self, from_seq: int = 1) -> Iterator[p.Event]:
        with self._faults("read the events of"):
            cursor = self.db.execute("SELECT seq, body FROM events WHERE seq >= ? ORDER BY seq", (from_seq,))
            rows = iter(cursor)
        while True:
            with self._faults("read the events of"):
                row = next(rows, None)
            if row is None:
                return
            seq, body = row
            try:
                yield p.Event.from_payload(json.loads(body))
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"{self.path}: event {seq} is not a Vuoro v{p.VERSION} event "
                                 f"({type(exc).__name__}: {exc}); this log cannot be replayed") from None

    def page_after(self, since: int, limit: int, max_bytes: int) -> tuple[list[str], int | None]:
        """Up to `limit` events after seq `since` as their stored JSON, at most about `max_bytes` of them (at least
        one), and the first seq the log still holds (older days may be purged), for a `replay` answer."""
        bodies: list[str] = []
        size = 0
        with self._faults("read the events of"):
            first = self.db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
            for (body,) in self.db.execute("SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                           (since, limit)):
                size += len(body)
                if bodies and size > max_bytes:
                    break
                bodies.append(str(body))
        return bodies, None if first is None else int(first)

    def reply_for(self, role: str, device: str, command_id: str) -> bytes | None:
        with self._faults("read"):
            row = self.db.execute("SELECT reply FROM commands WHERE role = ? AND device = ? AND id = ?",
                                  (role, device, command_id)).fetchone()
        return None if row is None else str(row[0]).encode("utf-8")

    # ------------------------------------------------------------ writing

    def commit(self, events: Iterable[tuple[p.Event, bytes]], commands: Iterable[CommandRecord]) -> None:
        """One transaction, one fsync, for everything a batch of commands did.

        Events come with their encoded MQTT payload, which is what the log keeps: encoded once, the
        same bytes are written here and published after the commit.

        Raises StorageFault (nothing of it kept: the transaction is rolled back) or StoreError.
        """
        with self._faults("write to"), self.transaction():
            self.db.executemany("INSERT INTO events (seq, at, type, body) VALUES (?, ?, ?, ?)",
                                [(e.seq, e.at, e.type, body.decode("utf-8")) for e, body in events])
            self.db.executemany(
                "INSERT INTO commands (role, device, id, seq, reply) VALUES (?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) FROM events), ?)",
                [(c.role, c.device, c.id, c.reply.decode("utf-8")) for c in commands])

    def probe(self) -> None:
        """Commit one small write: whether the disk takes writes again (StorageFault if not). A small write
        can pass where a big one fails; the caller learns that from the commit that follows."""
        self._probes += 1
        with self._faults("write to"), self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('written', ?)", (str(self._probes),))

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
        with self._faults("purge old days from"):
            return self._purge_before(first_kept, summarise, limit)

    def _purge_before(self, first_kept: str, summarise: Callable[[list[p.Event]], Mapping[tuple[str, str, str, int],
                                                                                          dict[str, Any]]],
                      limit: int | None) -> list[str]:
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
        with self._faults("read"):
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
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:  # a full disk can refuse the commit itself: then nothing of it may stay
                self._rollback()
                raise
        else:
            self._rollback()

    def _rollback(self) -> None:
        """Roll back if SQLite has not already (it does by itself on some errors, e.g. a full disk);
        a failing rollback must not hide the error that caused it."""
        if self.db.in_transaction:
            with suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
