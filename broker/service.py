"""The hall server: MQTT <-> engine <-> store.

One thread does it all: it reads every command that has arrived together from the
broker, runs them through the engine, commits all of it in one transaction (group
commit), and only then publishes events, replies and the changed retained state.
One thread owns the network, the engine and the database, so no two counters can ever
be handed the same visitor, and no message waits for a hand-over between threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import __version__
from . import protocol as p
from .config import HallConfig
from .engine import Engine
from .mqtt import BrokerAddress, MqttLink
from .stats import Collector, day_rows, live_figures
from .store import CommandRecord, Store, StoreError

log = logging.getLogger(__name__)

TICK_S = 5.0
BATCH_MAX = 2000
RECENT_REPLIES = 20000
POLL_MAX_S = 0.25  # how soon a stop request is noticed
STATE_MIN_S = 0.1  # retained state at most ten times a second: a display needs no more, a burst saves much
STATS_MIN_S = 2.0  # today's figures at most every two seconds: a panel needs no more, and they cost a few ms


class Clock:
    """Wall time in the hall's zone; tests pass their own object with a `now()` method."""

    def __init__(self, tz: Any) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)


@dataclass
class Stats:
    commands: int = 0
    refused: int = 0
    duplicates: int = 0
    malformed: int = 0
    batches: int = 0
    events: int = 0


class HallService:
    def __init__(self, hall: HallConfig, db_path: str | Path, address: BrokerAddress, *,
                 always_open: bool = False, version: str = "3.1.1", clock: Any = None) -> None:
        self.hall = hall
        self.topics = p.Topics(hall.id)
        self.clock = clock or Clock(hall.tz)
        self.store = Store(db_path, hall.id)
        self.engine = Engine(hall, always_open=always_open)
        self.stats = Stats()
        self.live = Collector(hall, today_only=True)  # today's figures for the retained state/stats
        self._purged_on: str | None = None  # the day old ticket rows were last purged
        self._stats_sent_at = 0.0
        self._arrived: list[tuple[str, bytes]] = []
        self._recent: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._known: set[tuple[str, str, str]] = set()  # commands of the current day, answered from the log
        self._republish_all = threading.Event()
        self._last_state: dict[str, bytes] = {}
        self._state_sent_at = 0.0
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self.fatal: BaseException | None = None
        self._replay()
        self.link = MqttLink(
            address, client_id=f"vuoro-server-{hall.id}", version=version, persistent=True,
            will=(self.topics.server(), p.presence_payload(p.OFFLINE, version=__version__)),
            subscriptions=[self.topics.all_commands()], on_message=self._on_message,
            on_connected=self._on_connected, driven=True)

    # ------------------------------------------------------------ start and stop

    def _replay(self) -> None:
        start = self.store.replay_start()
        self.engine.state.seq = start - 1
        count = 0
        for event in self.store.events(start):
            try:
                self.engine.apply(event)
                self.live.add(event)
            except (KeyError, ValueError) as exc:
                raise StoreError(
                    f"{self.store.path}: event {event.seq} ({event.type}) does not fit this hall config "
                    f"({type(exc).__name__}: {exc}). Was a topic or counter removed while tickets for it were "
                    "open today? Put it back until tomorrow, or start with a new --db.") from None
            count += 1
        self.engine.state.dirty.clear()
        self._known = self.store.command_keys(start)
        log.info("replayed %d events (from seq %d); day %s, seq %d", count, start, self.engine.state.day,
                 self.engine.state.seq)

    def start(self, timeout: float = 10.0) -> bool:
        """Start the server's thread; True once it listens for commands (it keeps trying if not)."""
        self.link.drive()
        self._worker = threading.Thread(target=self._run, name="vuoro-hall", daemon=True)
        self._worker.start()
        return self.link.wait_ready(timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout=15)
        self.store.close()

    def _server_status(self, status: str) -> dict[str, Any]:
        return p.presence_payload(status, version=__version__, hall=self.hall.id, seq=self.engine.state.seq,
                                  protocol=p.VERSION)

    # ------------------------------------------------------------ the worker

    def _on_connected(self) -> None:
        """After every (re)connect: the broker may have lost retained state, so publish it all."""
        self._republish_all.set()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self._arrived.append((topic, payload))

    def _run(self) -> None:
        next_tick = 0.0
        state_due: float | None = None  # when withheld retained state must go out
        try:
            while not self._stopping.is_set():
                wake = next_tick if state_due is None else min(next_tick, state_due)
                self.link.poll(min(POLL_MAX_S, max(0.0, wake - time.monotonic())))
                batch, self._arrived = self._arrived[:BATCH_MAX], self._arrived[BATCH_MAX:]
                clock = time.monotonic()
                tick = clock >= next_tick
                if tick:
                    next_tick = clock + TICK_S
                if batch or tick:
                    self._process(batch, tick)
                if self._republish_all.is_set() or (self.engine.state.dirty and
                                                    clock - self._state_sent_at >= STATE_MIN_S):
                    if self.link.connected:
                        self._publish_state(self.clock.now())
                    state_due = None
                elif self.engine.state.dirty:
                    state_due = self._state_sent_at + STATE_MIN_S
        except BaseException as exc:  # the database failed us: stop rather than run on a state we cannot keep
            log.critical("hall server stopped: %s", exc, exc_info=True)
            self.fatal = exc
            self._stopping.set()
        # a clean disconnect suppresses the Last Will, so a failure says offline itself
        status = self._server_status(p.OFFLINE if self.fatal else p.STOPPED)
        if self.fatal:
            status["error"] = str(self.fatal)[:200]
        self.link.stop(last_words=(self.topics.server(), status))

    def _process(self, batch: list[tuple[str, bytes]], tick: bool) -> None:
        now = self.clock.now()
        events: list[p.Event] = []
        records: list[CommandRecord] = []
        replies: list[tuple[str, bytes]] = []
        if tick:
            events += self.engine.tick(now)
            self.engine.state.dirty.add(p.HALL_PART)  # opening hours move with the clock
        for topic, payload in batch:
            self._handle(topic, payload, now, events, records, replies)
        encoded = [(event, p.encode(event.payload())) for event in events]
        if events or records:
            self.store.commit(encoded, records)
            self.stats.events += len(events)
            self._known.update((r.role, r.device, r.id) for r in records)
        for event in events:
            self.live.add(event)
        if events or tick:  # a tick moves the counters' idle and serving minutes on
            self.engine.state.dirty.add(p.STATS_PART)
        self.stats.batches += 1
        for event, body in encoded:
            self.link.publish(self.topics.event(event.type), body)
        for topic, reply in replies:
            # QoS 0: a device resends its command until answered, and the id brings back this very reply
            self.link.publish(topic, reply, qos=0)
        self.link.flush()  # events and replies leave now, before any retained state is worked out
        if tick:
            self._purge(now)

    def _purge(self, now: datetime) -> None:
        """Once a day, ticket rows older than the hall's keep_ticket_days go; each day's figures stay.

        One day per tick, so that a first purge of a long log never holds up the hall for long.
        """
        keep = self.hall.statistics.keep_ticket_days
        today = now.date().isoformat()
        if not keep or self._purged_on == today:
            return
        first_kept = (now.date() - timedelta(days=keep)).isoformat()
        purged = self.store.purge_before(first_kept, lambda events: day_rows(events, self.hall), limit=1)
        if purged:
            log.info("purged the ticket rows of %s (older than %d days); its figures stay", purged[0], keep)
        else:
            self._purged_on = today

    def _handle(self, topic: str, payload: bytes, now: datetime, events: list[p.Event],
                records: list[CommandRecord], replies: list[tuple[str, bytes]]) -> None:
        try:
            parsed = self.topics.parse(topic)
        except p.ProtocolError as exc:
            self.stats.malformed += 1
            log.warning("ignored a message on %s: %s", topic, exc.message)
            return
        if parsed.kind != "cmd" or parsed.role is None or parsed.device is None:
            self.stats.malformed += 1
            log.warning("ignored a message on %s: not a command topic", topic)
            return
        reply_topic = self.topics.reply(parsed.role, parsed.device)
        try:
            command = p.parse_command(payload, parsed.role, parsed.device, hall=self.hall.id,
                                      max_bytes=self.hall.rules.max_payload_bytes)
        except p.ProtocolError as exc:
            self.stats.malformed += 1
            log.warning("refused a message from %s/%s: %s: %s", parsed.role, parsed.device, exc.code, exc.message)
            replies.append((reply_topic, p.encode(p.reply_error(exc.command_id, exc.code, exc.message,
                                                                exc.details))))
            return
        key = (command.role, command.device, command.id)
        known = self._recent.get(key)
        if known is None and key in self._known:
            known = self.store.reply_for(*key)
        if known is not None:
            self.stats.duplicates += 1
            replies.append((reply_topic, known))
            return
        self.stats.commands += 1
        outcome = self.engine.handle(command, now)
        events += outcome.events
        reply = p.encode(outcome.reply)
        if outcome.ok:
            records.append(CommandRecord(command.role, command.device, command.id, reply))
        else:
            self.stats.refused += 1
            error = outcome.reply["error"]
            level = logging.ERROR if error["code"] == p.Err.INTERNAL else logging.INFO
            log.log(level, "refused %s %s from %s: %s %s", command.role, command.op, command.device, error["code"],
                    error["message"] if level == logging.ERROR else "")
        self._remember(key, reply)
        replies.append((reply_topic, reply))

    def _remember(self, key: tuple[str, str, str], reply: bytes) -> None:
        self._recent[key] = reply
        if len(self._recent) > RECENT_REPLIES:
            self._recent.popitem(last=False)

    def _publish_state(self, now: datetime) -> None:
        """Publish the retained state that changed; an unchanged payload is not sent again.

        QoS 0 is enough: the broker keeps the last one, and after any reconnect all of it is sent again.
        """
        self._state_sent_at = time.monotonic()
        parts = self.engine.state.dirty
        self.engine.state.dirty = set()
        force = self._republish_all.is_set()
        if force:  # after a (re)connect the broker may have lost every retained message
            self._republish_all.clear()
            parts = self.engine.all_parts()
            self.link.publish(self.topics.server(), self._server_status(p.ONLINE), retain=True)
        messages = self.engine.state_messages(parts, now)
        if p.STATS_PART in parts or force:
            if force or self._state_sent_at - self._stats_sent_at >= STATS_MIN_S:
                self._stats_sent_at = self._state_sent_at
                messages[p.STATS_PART] = p.state_payload(self.engine.state.seq, **live_figures(self.live, now))
            else:
                self.engine.state.dirty.add(p.STATS_PART)  # due later: the loop comes back for it
        for part, body in messages.items():
            payload = p.encode(body)
            if not force and self._last_state.get(part) == payload:
                continue
            self._last_state[part] = payload
            self.link.publish(self.topics.state(part), payload, retain=True, qos=0)
