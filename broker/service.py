"""The hall server: MQTT <-> engine <-> store.

One thread does it all: it reads every command that has arrived together from the
broker, runs them through the engine, commits all of it in one transaction (group
commit), and only then publishes events, replies and the changed retained state.
One thread owns the network, the engine and the database, so no two counters can ever
be handed the same visitor, and no message waits for a hand-over between threads.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broker import __version__
from broker import protocol as p
from broker.batch import Answer, Batch, Clock, Handling, Stats, storage_code, storage_reply
from broker.config import HallConfig
from broker.engine import Engine
from broker.live_stats import live_figures
from broker.mqtt import BrokerAddress, Delivery, MqttLink
from broker.replay import ReplayDesk
from broker.stats import Collector, day_rows
from broker.store import CommandRecord, StorageFault, Store, StoreError

log = logging.getLogger(__name__)

TICK_S = 5.0
BATCH_MAX = 2000
RECENT_REPLIES = 20000
POLL_MAX_S = 0.25  # how soon a stop request is noticed
STATE_MIN_S = 0.1  # retained state at most ten times a second: a display needs no more, a burst saves much
STATS_MIN_S = 2.0  # today's figures at most every two seconds: a panel needs no more, and they cost a few ms
TOKEN_BYTES = 16  # a ticket page's token: 128 random bits
STORAGE_RETRY_S = (1.0, 60.0)  # a refusing disk is tried again after 1 s, then twice as long each time, up to 60
# Test hook (tests/test_ack_after_commit.py): hold each received batch this long before its commit, so that a
# test can kill the server inside the window in which a command is received but not yet kept.
COMMIT_DELAY_S = float(os.environ.get("VUORO_TEST_COMMIT_DELAY_S") or 0)


class HallService:
    def __init__(self, hall: HallConfig, db_path: str | Path, address: BrokerAddress, *,
                 always_open: bool = False, version: str = "3.1.1", clock: Any = None) -> None:
        """Raises StoreError when the log can never be this hall's (another hall's, damaged, written by a newer
        Vuoro). A disk that refuses now (full, read-only, failing) does not stop it: the server comes up,
        answers storage_full/storage_failed, says why in its presence, and tries the disk again with backoff."""
        self.hall = hall
        self.topics = p.Topics(hall.id)
        self.clock = clock or Clock(hall.tz)
        self.db_path = Path(db_path)
        self.always_open = always_open
        self.store: Store | None = None
        self.engine = Engine(hall, always_open=always_open)
        self.stats = Stats()
        self.live = Collector(hall, today_only=True)  # today's figures for the retained state/stats
        self._purged_on: str | None = None  # the day old ticket rows were last purged
        self._stats_sent_at = 0.0
        self._arrived: list[Delivery] = []  # acknowledged to the broker only once their batch is committed
        self._recent: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._known: set[tuple[str, str, str]] = set()  # commands of the current day, answered from the log
        self._republish_all = threading.Event()
        self._last_state: dict[str, bytes] = {}
        self._replay_desk = ReplayDesk()  # the read-only `replay` op, rate-limited per device
        self._state_sent_at = 0.0
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self.fatal: BaseException | None = None
        # The disk: `storage` says why it refuses now (None: it takes writes); `_engine_current` says the engine
        # holds exactly what the log holds. Until both are fine, commands are answered with the storage error.
        self.storage: StorageFault | None = None
        self._engine_current = False
        self._storage_delay = STORAGE_RETRY_S[0]
        self._storage_retry_at = 0.0
        self._presence_due = False
        # Ready means: connected, subscribed, and the broker has taken our `online` presence (its PUBACK), so
        # that whoever is told "ready" (systemd, a test, IT) finds the hall online on the broker
        self.online = threading.Event()
        self._online_sent: Any = None  # the MQTTMessageInfo of the last online presence, until acknowledged
        self._try_storage(scheduled=True)
        self.link = MqttLink(
            address, client_id=f"vuoro-server-{hall.id}", version=version, persistent=True,
            will=(self.topics.server(), p.presence_payload(p.OFFLINE, version=__version__)),
            subscriptions=[self.topics.all_commands()], on_delivery=self._on_message,
            on_connected=self._on_connected, driven=True)

    @property
    def serving(self) -> bool:
        """True while commands are handled and kept; False while the server waits for its disk."""
        return self.storage is None and self._engine_current

    # ------------------------------------------------------------ the log, and a disk that refuses

    def _replay(self, store: Store) -> None:
        """A new engine and today's figures, from the log: what the hall is, as committed."""
        engine = Engine(self.hall, always_open=self.always_open)
        live = Collector(self.hall, today_only=True)
        start = store.replay_start()
        engine.state.seq = start - 1
        count = 0
        for event in store.events(start):
            try:
                engine.apply(event)
                live.add(event)
            except (KeyError, ValueError) as exc:
                raise StoreError(
                    f"{store.path}: event {event.seq} ({event.type}) does not fit this hall config "
                    f"({type(exc).__name__}: {exc}). Was a topic or counter removed while tickets for it were "
                    "open today? Put it back until tomorrow, or start with a new --db.") from None
            count += 1
        engine.state.dirty.clear()
        self._known = store.command_keys(start)
        self.engine, self.live, self._engine_current = engine, live, True
        self._republish_all.set()  # what devices hold may be from before: all of it goes out again
        log.info("replayed %d events (from seq %d); day %s, seq %d", count, start, self.engine.state.day,
                 self.engine.state.seq)

    def _try_storage(self, *, scheduled: bool) -> bool:
        """Open the log, replay it, and make one small write: True when all of that worked. A StorageFault
        sets the waiting state (logged once per scheduled try, with a growing delay); StoreError goes up."""
        try:
            if self.store is None:
                self.store = Store(self.db_path, self.hall.id)
            if not self._engine_current:
                self._replay(self.store)
            self.store.probe()
        except StorageFault as fault:
            self._storage_refused(fault, scheduled=scheduled)
            return False
        if self.storage is not None:
            log.warning("storage works again (%s); serving", self.db_path)
            self._presence_due = True
        self.storage = None
        self._storage_delay, self._storage_retry_at = STORAGE_RETRY_S[0], 0.0
        return True

    def _storage_refused(self, fault: StorageFault, *, scheduled: bool = False) -> None:
        """The disk refused: say so in the presence, and plan the next try (sooner if commands come)."""
        if self.storage is None or self.storage.message != fault.message:
            self._presence_due = True
            if self.storage is None and not scheduled:
                log.error("the hall log refused a write: %s. Commands are answered %s until it takes writes "
                          "again; nothing acknowledged is lost", fault.message, storage_code(fault))
        first = self.storage is None
        self.storage = fault
        if scheduled or first:
            delay = self._storage_delay
            self._storage_retry_at = time.monotonic() + delay
            self._storage_delay = min(delay * 2, STORAGE_RETRY_S[1])
            log.warning("waiting for storage: %s; next try in %.0f s", fault.message, delay)

    def _storage_ready(self, commands_waiting: bool) -> bool:
        """Whether this batch may go to the engine and the log: tries a refusing disk again when a try is
        due on its backoff, or when commands wait."""
        if self.serving:
            return True
        clock = time.monotonic()
        if clock >= self._storage_retry_at:
            return self._try_storage(scheduled=True)
        if commands_waiting:  # one small write per batch: the first command after the disk is mended is served
            return self._try_storage(scheduled=False)
        return False

    def _storage_reply(self, command_id: str | None) -> bytes:
        return storage_reply(command_id, self.storage)

    # ------------------------------------------------------------ start and stop

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
        if self.store is not None:
            self.store.close()

    def _server_status(self, status: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"version": __version__, "hall": self.hall.id, "protocol": p.VERSION,
                                  "storage": "ok" if self.storage is None else self.storage.kind}
        if self._engine_current:
            fields["seq"] = self.engine.state.seq
        if self.storage is not None:
            fields["message"] = "waiting for storage: " + self.storage.message[:300]
        return p.presence_payload(status, **fields)

    # ------------------------------------------------------------ the worker

    def _on_connected(self) -> None:
        """After every (re)connect: the broker may have lost retained state, so publish it all."""
        self._republish_all.set()

    def _publish_online(self) -> None:
        self._online_sent = self.link.publish(self.topics.server(), self._server_status(p.ONLINE), retain=True)

    def _note_online(self) -> None:
        """Keep `online` true exactly while the broker holds our online presence on this connection."""
        if not self.link.connected:
            self.online.clear()
        elif self._online_sent is not None and self._online_sent.is_published():
            self._online_sent = None
            self.online.set()

    def _on_message(self, delivery: Delivery) -> None:
        self._arrived.append(delivery)

    def _run(self) -> None:
        next_tick = 0.0
        state_due: float | None = None  # when withheld retained state must go out
        try:
            while not self._stopping.is_set():
                wake = next_tick if state_due is None else min(next_tick, state_due)
                if not self.serving:
                    wake = min(wake, self._storage_retry_at)
                self.link.poll(min(POLL_MAX_S, max(0.0, wake - time.monotonic())))
                self._note_online()
                batch, self._arrived = self._arrived[:BATCH_MAX], self._arrived[BATCH_MAX:]
                clock = time.monotonic()
                tick = clock >= next_tick
                if tick:
                    next_tick = clock + TICK_S
                if batch or tick or (not self.serving and clock >= self._storage_retry_at):
                    self._process(batch, tick)
                if self._presence_due and self.link.connected:
                    self._presence_due = False
                    self._publish_online()
                    self.link.flush()
                if self._republish_all.is_set() or (self.engine.state.dirty and
                                                    clock - self._state_sent_at >= STATE_MIN_S):
                    if self.link.connected:
                        self._publish_state(self.clock.now())
                    state_due = None
                elif self.engine.state.dirty:
                    state_due = self._state_sent_at + STATE_MIN_S
        except BaseException as exc:  # a commit failed in a way no retry mends: stop rather than run on a guess
            log.critical("hall server stopped: %s", exc, exc_info=True)
            self.fatal = exc
            self._stopping.set()
        # a clean disconnect suppresses the Last Will, so a failure says offline itself
        status = self._server_status(p.OFFLINE if self.fatal else p.STOPPED)
        if self.fatal:
            status["error"] = str(self.fatal)[:200]
        self.link.stop(last_words=(self.topics.server(), status))

    def _process(self, batch: list[Delivery], tick: bool) -> None:
        now = self.clock.now()
        work = Batch()
        ready = self._storage_ready(bool(batch))
        if tick and ready:
            ready = self._tick(now, work)
        for delivery in batch:
            self._handle(delivery.topic, delivery.payload, now, work, ready)
        encoded = [(event, p.encode(event.payload())) for event in work.events]
        if COMMIT_DELAY_S and batch:
            log.warning("test hook: holding %d received messages %.1f s before their commit", len(batch),
                        COMMIT_DELAY_S)
            time.sleep(COMMIT_DELAY_S)
        kept = self._commit(encoded, work)
        if kept and work.reread:
            log.error("reading the hall state again from the log, after an internal error")
            self._engine_current = False
            self._try_storage(scheduled=False)
        # The batch is committed, or refused and answered so: either way the broker may forget its messages
        # (a refused command is answered storage_full/storage_failed; its device decides whether to resend).
        for delivery in batch:
            self.link.ack(delivery)  # sent with the events and replies at the flush below
        if kept:
            for key, reply in work.pending.items():
                self._remember(key, reply)
            for event in work.events:
                self.live.add(event)
            if work.events or tick:  # a tick moves the counters' idle and serving minutes on
                self.engine.state.dirty.add(p.STATS_PART)
            for event, body in encoded:
                self.link.publish(self.topics.event(event.type), body)
        self.stats.batches += 1
        for answer in work.answers:
            reply = answer.reply if kept or answer.key is None else self._storage_reply(answer.command_id)
            # QoS 0: a device resends its command until answered, and the id brings back this very reply
            self.link.publish(answer.topic, reply, qos=0)
        self.link.flush()  # events and replies leave now, before any retained state is worked out
        if tick and kept and self.serving:
            self._purge(now)

    def _tick(self, now: datetime, work: Batch) -> bool:
        """The engine's clock work (day rollover, expiry after closing); False if the engine had to be read
        again from the log (a bug of ours in the middle of it) and that failed."""
        try:
            work.events += self.engine.tick(now)
            self.engine.state.dirty.add(p.HALL_PART)  # opening hours move with the clock
        except Exception:
            log.exception("internal error in the engine's tick; reading the hall state again from the log")
            self._engine_current = False
            return self._try_storage(scheduled=False)
        return True

    def _commit(self, encoded: list[tuple[p.Event, bytes]], work: Batch) -> bool:
        """Commit the batch: True when it is kept (or there was nothing to keep). A refusing disk leaves the
        log as it was; the engine, which already ran the batch, is read again from the log (if the log cannot
        be read either, commands wait for it). Any other failure to commit goes up and stops the server."""
        if not (encoded or work.records):
            return True
        assert self.store is not None  # handled commands mean an open store
        try:
            self.store.commit(encoded, work.records)
        except StorageFault as fault:
            self.stats.storage_refused += len(work.pending)
            self._storage_refused(fault)
            self._engine_current = False
            try:
                self._replay(self.store)
            except StorageFault as again:
                self._storage_refused(again)
            return False
        self.stats.events += len(work.events)
        self._known.update((r.role, r.device, r.id) for r in work.records)
        return True

    def _purge(self, now: datetime) -> None:
        """Once a day, ticket rows older than the hall's keep_ticket_days go; each day's figures stay.

        One day per tick, so that a first purge of a long log never holds up the hall for long.
        """
        keep = self.hall.statistics.keep_ticket_days
        today = now.date().isoformat()
        if not keep or self._purged_on == today or self.store is None:
            return
        first_kept = (now.date() - timedelta(days=keep)).isoformat()
        try:
            purged = self.store.purge_before(first_kept, lambda events: day_rows(events, self.hall), limit=1)
        except StorageFault as fault:  # rolled back whole: the day stays in the log until the disk takes it
            self._storage_refused(fault)
            return
        if purged:
            log.info("purged the ticket rows of %s (older than %d days); its figures stay", purged[0], keep)
        else:
            self._purged_on = today

    def _handle(self, topic: str, payload: bytes, now: datetime, work: Batch, ready: bool) -> None:
        """One message, answered whatever happens: an exception of ours becomes an `internal` reply."""
        step = Handling(seq_before=self.engine.state.seq)
        try:
            command = self._command_of(topic, payload, work, step)
            if command is not None:
                self._answer(command, now, work, ready, step)
        except StorageFault as fault:  # the log could not be read for a resent command's reply
            self._storage_refused(fault)
            if step.reply_topic is not None:
                command_id = step.command.id if step.command else None
                work.answers.append(Answer(step.reply_topic, self._storage_reply(command_id)))
        except Exception as exc:
            self._internal_error(exc, topic, work, step)

    def _command_of(self, topic: str, payload: bytes, work: Batch, step: Handling) -> p.Command | None:
        """The command a message holds, or None when it holds none (logged, and answered when it can be)."""
        try:
            parsed = self.topics.parse(topic)
        except p.ProtocolError as exc:
            self.stats.malformed += 1
            log.warning("ignored a message on %s: %s", topic, exc.message)
            return None
        if parsed.kind != "cmd" or parsed.role is None or parsed.device is None:
            self.stats.malformed += 1
            log.warning("ignored a message on %s: not a command topic", topic)
            return None
        step.reply_topic = self.topics.reply(parsed.role, parsed.device)
        try:
            step.command = p.parse_command(payload, parsed.role, parsed.device, hall=self.hall.id,
                                           max_bytes=self.hall.rules.max_payload_bytes)
        except p.ProtocolError as exc:
            self.stats.malformed += 1
            log.warning("refused a message from %s/%s: %s: %s", parsed.role, parsed.device, exc.code, exc.message)
            work.answers.append(Answer(step.reply_topic, p.encode(p.reply_error(exc.command_id, exc.code,
                                                                                 exc.message, exc.details))))
            return None
        return step.command

    def _answer(self, command: p.Command, now: datetime, work: Batch, ready: bool, step: Handling) -> None:
        """Answer a command: a read op from the log, a resend with its first reply, else through the engine."""
        assert step.reply_topic is not None
        if command.op in p.READ_OPS:
            work.answers.append(Answer(step.reply_topic, self._read_op(command)))
            return
        key = (command.role, command.device, command.id)
        if key in work.pending:  # twice in one batch: the same answer, kept or refused with the batch
            self.stats.duplicates += 1
            work.answers.append(Answer(step.reply_topic, work.pending[key], key, command.id))
            return
        known = self._recent.get(key)
        if known is None and key in self._known and self.store is not None:
            known = self.store.reply_for(*key)
        if known is not None:
            self.stats.duplicates += 1
            work.answers.append(Answer(step.reply_topic, known))
            return
        if not ready:
            self.stats.storage_refused += 1
            work.answers.append(Answer(step.reply_topic, self._storage_reply(command.id)))
            return
        self._through_engine(command, key, now, work, step)

    def _through_engine(self, command: p.Command, key: tuple[str, str, str], now: datetime, work: Batch,
             step: Handling) -> None:
        """A new command through the engine: its events and reply join the batch."""
        assert step.reply_topic is not None
        self.stats.commands += 1
        if command.op == "issue":  # the ticket page's secret; made here, as the engine draws no random numbers
            command = replace(command, args={**command.args, "token": secrets.token_urlsafe(TOKEN_BYTES)})
        outcome = self.engine.handle(command, now)
        work.events += outcome.events
        step.applied = bool(outcome.events)
        reply = p.encode(outcome.reply)
        if outcome.ok:
            work.records.append(CommandRecord(command.role, command.device, command.id, reply))
        else:
            self.stats.refused += 1
            error = outcome.reply["error"]
            level = logging.ERROR if error["code"] == p.Err.INTERNAL else logging.INFO
            log.log(level, "refused %s %s from %s: %s %s", command.role, command.op, command.device,
                    error["code"], error["message"] if level == logging.ERROR else "")
        work.pending[key] = reply
        work.answers.append(Answer(step.reply_topic, reply, key, command.id))

    def _internal_error(self, exc: Exception, topic: str, work: Batch, step: Handling) -> None:
        """A bug of ours met while handling a message: logged, answered `internal`, and the hall runs on."""
        self.stats.internal += 1
        log.exception("internal error while handling a message on %s", topic)
        if not step.applied and self.engine.state.seq != step.seq_before:
            work.reread = True  # changed, but what changed never came back to be logged
        if step.reply_topic is None:
            return
        command = step.command
        command_id = command.id if command is not None else None
        reply = p.encode(p.reply_error(command_id, p.Err.INTERNAL,
                                       f"internal error in the hall server: {type(exc).__name__}"))
        if command is not None and step.applied:  # the hall changed: keep this answer with it, for a resend
            key = (command.role, command.device, command.id)
            work.records.append(CommandRecord(command.role, command.device, command.id, reply))
            work.pending[key] = reply
            work.answers.append(Answer(step.reply_topic, reply, key, command_id))
        else:
            work.answers.append(Answer(step.reply_topic, reply))

    def _read_op(self, command: p.Command) -> bytes:
        """A read-only op (`replay`), answered from the log by broker/replay.py; refused while the disk is."""
        if self.store is None or self.storage is not None:
            return self._storage_reply(command.id)
        return self._replay_desk.answer(self.store, command, time.monotonic())

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
        if not self._engine_current:  # the engine holds what was never kept, or nothing yet: say only why
            if force:
                self._republish_all.clear()
                self._publish_online()
            return
        if force:  # after a (re)connect the broker may have lost every retained message
            self._republish_all.clear()
            parts = self.engine.all_parts()
            self._publish_online()
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
