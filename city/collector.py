"""`vuoro collect`: every hall's events from the central broker into the city's PostgreSQL, exactly once by
(hall, seq), and complete after any outage.

Live events come over the halls' bridges (ops/bridge.py) and go into the database in batches. What the
bridge did not carry (the bridge, the centre or the collector was down, or a message was lost) is asked of
the hall server itself with the `replay` command on `vuoro/<hall>/cmd/admin/<collector>`, which the hall's
bridge carries in for this one account, and whose answer, pages of the hall's own log, comes back on
`reply/admin/<collector>`. The collector asks when it sees a gap in a hall's seq, when a hall's retained
state names a seq it does not have, after every (re)connect, at start, and every AUDIT_S for each hall.

One thread works: it drains what paho's thread queued, writes batches, and drives the catch-ups. The
database is the only memory: a killed collector loses its buffer, and its next start asks the halls again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker import protocol as p
from broker.mqtt import BrokerAddress, MqttLink
from city.live import CityState
from city.pgstore import CityStore, Row, row_of

log = logging.getLogger(__name__)

FLUSH_S = 0.2  # live events wait at most this long for their batch
BATCH_MAX = 20000  # rows in one write
BUFFER_MAX = 500_000  # rows held while the database is down; beyond, live events are dropped (catch-up refills)
GAP_GRACE_S = 1.0  # a seq gap this old is not a message still on its way: ask the hall
AUDIT_S = 10.0  # each hall is asked for what follows its contiguous mark this often, gap or not
REPLY_S = 10.0  # a replay question unanswered this long is asked again (the hall or its bridge is down)
DB_RETRY_S = (0.5, 10.0)
EVENT_BYTES_MAX = 64 * 1024


@dataclass
class Track:
    """What the collector knows of one hall's log."""

    contiguous: int = 0  # every seq up to here is in the database
    beyond: set[int] = field(default_factory=set)  # seqs in the database (or the batch) past a gap
    known: int = 0  # the highest seq the hall is known to have
    gap_at: float | None = None  # when contiguous < known was first seen
    asking: str | None = None  # the id of the replay question on its way
    asked_at: float = 0.0
    next_ask: float = 0.0  # not before (rate limit, a failed answer)
    audit_at: float = 0.0
    pages: int = 0
    replayed: int = 0

    def advance(self, seqs: set[int]) -> int:
        self.beyond |= {s for s in seqs if s > self.contiguous}
        while self.contiguous + 1 in self.beyond:
            self.contiguous += 1
            self.beyond.discard(self.contiguous)
        self.known = max(self.known, self.contiguous, max(self.beyond, default=0))
        return self.contiguous


@dataclass
class Counts:
    live: int = 0
    replayed: int = 0
    written: int = 0  # new rows in the database
    duplicates: int = 0
    refused: int = 0  # messages that were no event
    batches: int = 0
    replays: int = 0
    db_errors: int = 0


class Collector:
    def __init__(self, address: BrokerAddress, dsn: str, *, collector_id: str = "collector",
                 version: str = "3.1.1", on_state: Callable[[str], None] | None = None,
                 audit_s: float = AUDIT_S) -> None:
        if not p.DEVICE_RE.match(collector_id):
            raise ValueError(f"invalid collector id {collector_id!r}")
        self.address, self.dsn, self.id = address, dsn, collector_id
        self.audit_s = audit_s
        self.tracks: dict[str, Track] = {}
        self.counts = Counts()
        self.city = CityState()
        self.city_lock = threading.Lock()
        self.on_state = on_state  # told the hall whose live state changed (Home Assistant, the overview)
        self._inbox: queue.SimpleQueue[tuple[str, bytes, bool] | None] = queue.SimpleQueue()
        self._rows: list[Row] = []
        self._stop = threading.Event()
        self._reconnected = threading.Event()
        self._db: CityStore | None = None
        self._db_retry_at = 0.0
        self._db_delay = DB_RETRY_S[0]
        self.caught_up = threading.Event()  # set whenever every known hall is complete here (for tests, status)
        subscriptions = [p.every_hall("event", "#"), *p.CITY_WATCH, p.every_hall("reply", "admin", collector_id)]
        # a persistent session: while the collector restarts, the centre keeps the bridges' events for it (the
        # halls' replay covers whatever it had taken but not written when it died)
        self.link = MqttLink(address, client_id=f"vuoro-collector-{collector_id}", version=version, persistent=True,
                             subscriptions=subscriptions, on_message=self._arrived,
                             on_connected=self._reconnected.set)

    # ------------------------------------------------------------ running

    def start(self, timeout: float | None = 10.0) -> bool:
        self._open_db()
        return self.link.start(timeout)

    def run(self) -> None:
        while not self._stop.is_set():
            self.step(FLUSH_S)

    def stop(self) -> None:
        self._stop.set()
        self._inbox.put(None)
        self.link.stop()
        self._flush(force=True)
        if self._db is not None:
            self._db.close()

    def step(self, wait_s: float) -> None:
        """Take what arrived within wait_s, write a batch when due, and ask the halls what is missing."""
        deadline = time.monotonic() + wait_s
        while True:
            left = deadline - time.monotonic()
            try:
                item = self._inbox.get(timeout=max(0.0, left)) if left > 0 else self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is None:
                break
            self._take(*item)
            if len(self._rows) >= BATCH_MAX:
                break
        if self._reconnected.is_set():  # the centre may have dropped anything while we were away
            self._reconnected.clear()
            for track in self.tracks.values():
                track.audit_at = 0.0
                track.asking = None
        self._flush()
        self._ask()

    # ------------------------------------------------------------ what arrives

    def _arrived(self, topic: str, payload: bytes, retained: bool) -> None:
        self._inbox.put((topic, payload, retained))  # paho's thread does nothing else

    def _take(self, topic: str, payload: bytes, retained: bool) -> None:
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != p.ROOT or not p.HALL_ID_RE.match(parts[1]):
            self.counts.refused += 1
            return
        hall = parts[1]
        if parts[2] == "reply":
            self._answer(hall, payload)
            return
        with self.city_lock:
            changed = self.city.apply(topic, payload, datetime.now(UTC).isoformat(timespec="seconds"))
            seq = self.city.halls[hall].seq if hall in self.city.halls else 0
        track = self._track(hall)
        if parts[2] == "event":
            try:
                row = row_of(hall, p.decode_object(payload, max_bytes=EVENT_BYTES_MAX))
            except (p.ProtocolError, ValueError) as exc:
                self.counts.refused += 1
                log.warning("hall %s: dropped a message on %s: %s", hall, topic, exc)
                return
            self.counts.live += 1
            if row.seq > track.contiguous and row.seq not in track.beyond and len(self._rows) < BUFFER_MAX:
                self._rows.append(row)
        elif seq > track.known:  # retained state names a seq: the hall is at least that far
            track.known = seq
        if changed is not None and self.on_state is not None:
            self.on_state(changed)

    def _track(self, hall: str) -> Track:
        track = self.tracks.get(hall)
        if track is None:
            track = self.tracks[hall] = Track()
            log.info("hall %s: new here; asking for its whole log", hall)
        return track

    # ------------------------------------------------------------ the database

    def _open_db(self) -> bool:
        if self._db is not None:
            return True
        if time.monotonic() < self._db_retry_at:
            return False
        try:
            self._db = CityStore(self.dsn)
            for hall, mark in self._db.contiguous().items():
                track = self.tracks.get(hall) or self.tracks.setdefault(hall, Track())
                track.contiguous = max(track.contiguous, mark)
                track.beyond = set(self._db.seqs_after(hall, track.contiguous))
                track.advance(set())
                track.audit_at = 0.0  # at start: ask every hall
        except Exception as exc:  # psycopg.Error, OSError: the database is away; keep collecting, retry
            self._db_failed(exc)
            return False
        self._db_delay = DB_RETRY_S[0]
        return True

    def _db_failed(self, exc: BaseException) -> None:
        self.counts.db_errors += 1
        log.warning("city database %s: %s; trying again in %.1f s", _safe_dsn(self.dsn), exc, self._db_delay)
        if self._db is not None:
            try:
                self._db.close()
            except Exception:
                log.debug("closing a failed connection", exc_info=True)
        self._db = None
        self._db_retry_at = time.monotonic() + self._db_delay
        self._db_delay = min(self._db_delay * 2, DB_RETRY_S[1])

    def _flush(self, force: bool = False) -> None:
        if not self._rows or not self._open_db() or self._db is None:
            return
        rows, self._rows = self._rows[:BATCH_MAX], self._rows[BATCH_MAX:]
        by_hall: dict[str, set[int]] = {}
        for row in rows:
            by_hall.setdefault(row.hall, set()).add(row.seq)
        marks = {}
        saved = {hall: (self._track(hall).contiguous, set(self._track(hall).beyond)) for hall in by_hall}
        for hall, seqs in by_hall.items():
            marks[hall] = self._track(hall).advance(seqs)
        try:
            new = self._db.write(rows, marks)
        except Exception as exc:
            for hall, (mark, beyond) in saved.items():  # not kept: as it was before
                self.tracks[hall].contiguous, self.tracks[hall].beyond = mark, beyond
            self._rows[:0] = rows
            self._db_failed(exc)
            return
        self.counts.batches += 1
        self.counts.written += new
        self.counts.duplicates += len(rows) - new
        if self._rows and force:
            self._flush(force=True)

    # ------------------------------------------------------------ catching up

    def _ask(self) -> None:
        now = time.monotonic()
        complete = self._db is not None and not self._rows
        for hall, track in self.tracks.items():
            if track.known > track.contiguous:
                complete = False
                if track.gap_at is None:
                    track.gap_at = now
            else:
                track.gap_at = None
            if track.asking is not None:
                complete = False
                if now - track.asked_at < REPLY_S:
                    continue
                log.info("hall %s: no answer to replay since %d; asking again", hall, track.contiguous)
                track.asking = None
            due = (track.gap_at is not None and now - track.gap_at >= GAP_GRACE_S) or now >= track.audit_at
            if not due or now < track.next_ask or self._db is None:
                continue
            self._send_replay(hall, track, now)
        if complete and self.tracks:
            self.caught_up.set()
        else:
            self.caught_up.clear()

    def _send_replay(self, hall: str, track: Track, now: float) -> None:
        pending = {r.seq for r in self._rows if r.hall == hall}
        if pending:  # what is still in the buffer counts: write it first, then ask from there
            return
        command = p.command_payload("replay", since=track.contiguous)
        track.asking, track.asked_at = str(command["id"]), now
        track.audit_at = now + self.audit_s
        self.counts.replays += 1
        # QoS 0: a question asked while the hall's bridge is down must not wait in a queue to be answered later;
        # an unanswered one is asked again after REPLY_S
        self.link.publish(p.Topics(hall).cmd("admin", self.id), command, qos=0)

    def _answer(self, hall: str, payload: bytes) -> None:
        track = self.tracks.get(hall)
        try:
            reply = p.decode_object(payload, max_bytes=2 * 1024 * 1024)
        except p.ProtocolError:
            self.counts.refused += 1
            return
        if track is None or track.asking is None or reply.get("id") != track.asking:
            return  # an answer to a question given up on
        track.asking = None
        if not reply.get("ok"):
            self._refused(hall, track, _mapping(reply.get("error")))
            return
        result = _mapping(reply.get("result"))
        rows = self._replayed_rows(hall, result.get("events"))
        first, last = result.get("first"), result.get("seq")
        if rows and isinstance(first, int) and track.contiguous + 1 < rows[0].seq <= first:
            log.info("hall %s: seqs %d-%d were purged from the hall's log before they came here", hall,
                     track.contiguous + 1, rows[0].seq - 1)
            track.contiguous = rows[0].seq - 1
        if isinstance(last, int) and not isinstance(last, bool):
            track.known = max(track.known, last)
        track.pages += 1
        track.replayed += len(rows)
        self.counts.replayed += len(rows)
        self._rows.extend(r for r in rows if r.seq > track.contiguous and r.seq not in track.beyond)
        if result.get("more"):
            track.audit_at = 0.0  # the next page as soon as this one is written
        self._flush()

    def _refused(self, hall: str, track: Track, error: dict[str, Any]) -> None:
        """The hall said no (rate limited, storage down): ask again after the wait it names, within reason."""
        wait = error.get("retry_after_s")
        seconds = float(wait) if isinstance(wait, int | float) and not isinstance(wait, bool) else 1.0
        track.next_ask = time.monotonic() + min(max(seconds, 0.05), 60.0)
        if error.get("code") != p.Err.RATE_LIMITED:
            log.warning("hall %s refused replay: %s", hall, str(error)[:200])

    def _replayed_rows(self, hall: str, events: Any) -> list[Row]:
        rows = []
        for body in events if isinstance(events, list) else []:
            try:
                rows.append(row_of(hall, _mapping(body)))
            except ValueError as exc:
                self.counts.refused += 1
                log.warning("hall %s: a replayed event refused: %s", hall, exc)
        return rows

    # ------------------------------------------------------------ for a status line

    def status(self) -> dict[str, Any]:
        return {"halls": {h: {"contiguous": t.contiguous, "known": t.known, "pages": t.pages}
                          for h, t in sorted(self.tracks.items())},
                "counts": self.counts.__dict__.copy()}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _safe_dsn(dsn: str) -> str:
    """The database's address without a password, for a log line."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
    except Exception:
        return "(the --db address)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
