"""The hall server: MQTT <-> engine <-> store.

Commands arrive on paho's thread and are queued; one worker thread takes everything
that has arrived together, runs it through the engine, commits all of it in one
transaction (group commit), and only then publishes replies, events and the changed
retained state. One thread owns the engine and the database, so no two counters can
ever be handed the same visitor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from . import protocol as p
from .config import HallConfig
from .engine import Engine
from .mqtt import BrokerAddress, MqttLink
from .store import CommandRecord, Store, StoreError

log = logging.getLogger(__name__)

TICK_S = 5.0
BATCH_MAX = 2000
RECENT_REPLIES = 20000


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
        self._inbox: queue.SimpleQueue[tuple[str, bytes] | None] = queue.SimpleQueue()
        self._recent: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._republish_all = threading.Event()
        self._last_state: dict[str, bytes] = {}
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self.fatal: BaseException | None = None
        self._replay()
        self.link = MqttLink(
            address, client_id=f"vuoro-server-{hall.id}", version=version, persistent=True,
            will=(self.topics.server(), p.presence_payload(p.OFFLINE, version=__version__)),
            subscriptions=[self.topics.all_commands()], on_message=self._on_message,
            on_connected=self._on_connected)

    # ------------------------------------------------------------ start and stop

    def _replay(self) -> None:
        start = self.store.replay_start()
        self.engine.state.seq = start - 1
        count = 0
        for event in self.store.events(start):
            try:
                self.engine.apply(event)
            except (KeyError, ValueError) as exc:
                raise StoreError(
                    f"{self.store.path}: event {event.seq} ({event.type}) does not fit this hall config "
                    f"({type(exc).__name__}: {exc}). Was a topic or counter removed while tickets for it were "
                    "open today? Put it back until tomorrow, or start with a new --db.") from None
            count += 1
        self.engine.state.dirty.clear()
        log.info("replayed %d events (from seq %d); day %s, seq %d", count, start, self.engine.state.day,
                 self.engine.state.seq)

    def start(self, timeout: float = 10.0) -> bool:
        """Start the worker and connect; True once the server listens for commands."""
        self._worker = threading.Thread(target=self._run, name="vuoro-hall", daemon=True)
        self._worker.start()
        return self.link.start(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join(timeout=10)
        self.link.stop(last_words=(self.topics.server(), self._server_status(p.STOPPED)))
        self.store.close()

    def _server_status(self, status: str) -> dict[str, Any]:
        return p.presence_payload(status, version=__version__, hall=self.hall.id, seq=self.engine.state.seq,
                                  protocol=p.VERSION)

    # ------------------------------------------------------------ the worker

    def _on_connected(self) -> None:
        """After every (re)connect: the broker may have lost retained state, so publish it all."""
        self._republish_all.set()
        self._inbox.put(None)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self._inbox.put((topic, payload))

    def _run(self) -> None:
        next_tick = 0.0
        try:
            while not self._stopping.is_set():
                batch: list[tuple[str, bytes]] = []
                try:
                    item = self._inbox.get(timeout=max(0.0, next_tick - time.monotonic()))
                    while True:
                        if item is not None:
                            batch.append(item)
                        if len(batch) >= BATCH_MAX:
                            break
                        item = self._inbox.get_nowait()
                except queue.Empty:
                    pass
                tick = time.monotonic() >= next_tick
                if tick:
                    next_tick = time.monotonic() + TICK_S
                self._process(batch, tick)
        except BaseException as exc:  # the database failed us: stop rather than run on a state we cannot keep
            log.critical("hall server worker stopped: %s", exc, exc_info=True)
            self.fatal = exc
            self._stopping.set()

    def _process(self, batch: list[tuple[str, bytes]], tick: bool) -> None:
        now = self.clock.now()
        events: list[p.Event] = []
        records: list[CommandRecord] = []
        replies: list[tuple[str, dict[str, Any]]] = []
        if tick:
            events += self.engine.tick(now)
        for topic, payload in batch:
            self._handle(topic, payload, now, events, records, replies)
        if events or records:
            self.store.commit(events, records)
            self.stats.events += len(events)
        self.stats.batches += 1
        for event in events:
            self.link.publish(self.topics.event(event.type), event.payload())
        for topic, reply in replies:
            self.link.publish(topic, reply)
        self._publish_state(now, tick)

    def _handle(self, topic: str, payload: bytes, now: datetime, events: list[p.Event],
                records: list[CommandRecord], replies: list[tuple[str, dict[str, Any]]]) -> None:
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
            replies.append((reply_topic, p.reply_error(exc.command_id, exc.code, exc.message, exc.details)))
            return
        key = (command.role, command.device, command.id)
        known = self._recent.get(key) or self.store.reply_for(*key)
        if known is not None:
            self.stats.duplicates += 1
            replies.append((reply_topic, known))
            return
        self.stats.commands += 1
        outcome = self.engine.handle(command, now)
        events += outcome.events
        if outcome.ok:
            records.append(CommandRecord(command.role, command.device, command.id, outcome.reply))
        else:
            self.stats.refused += 1
            error = outcome.reply["error"]
            log.info("refused %s %s from %s: %s", command.role, command.op, command.device, error["code"])
        self._remember(key, outcome.reply)
        replies.append((reply_topic, outcome.reply))

    def _remember(self, key: tuple[str, str, str], reply: dict[str, Any]) -> None:
        self._recent[key] = reply
        if len(self._recent) > RECENT_REPLIES:
            self._recent.popitem(last=False)

    def _publish_state(self, now: datetime, tick: bool) -> None:
        """Publish the retained state that changed; an unchanged payload is not sent again."""
        parts = self.engine.state.dirty
        self.engine.state.dirty = set()
        force = self._republish_all.is_set()
        if force:  # after a (re)connect the broker may have lost every retained message
            self._republish_all.clear()
            parts = self.engine.all_parts()
            self.link.publish(self.topics.server(), self._server_status(p.ONLINE), retain=True)
        elif tick:
            parts = parts | {"hall"}  # opening hours move with the clock
        for part, body in self.engine.state_messages(parts, now).items():
            payload = p.encode(body)
            if not force and self._last_state.get(part) == payload:
                continue
            self._last_state[part] = payload
            self.link.publish(self.topics.root + "state/" + part, payload, retain=True)

def run_until(stop: Callable[[], bool], service: HallService, poll_s: float = 0.2) -> None:
    while not stop() and service.fatal is None:
        time.sleep(poll_s)
