"""`vuoro web`'s link to the hall: its broker account (role web), today's queue kept current, and the open pages.

The hall's events come in on paho's network thread and are handed to the asyncio loop, which owns
everything else: the Book (today's queue), the pages listening by Server-Sent Events, and the
commands the web may send (`replay`, to read what it missed from the server's log, and `feedback`).
A gap in the event seq (the web started late, or was cut off) is filled by replaying from the log;
events that arrive meanwhile wait and are applied in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker import protocol as p
from broker.client import HallClient
from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from web.book import Book

log = logging.getLogger(__name__)

REQUEST_S = 5.0  # how long a command to the hall server may take before it is sent again
REQUEST_TRIES = 3
RESYNC_PAUSE_S = 1.0  # after a failed replay, before the next try
BOARD_PREFIX = "display/"  # the listeners of a web hall display are keyed "display/<id>" beside the tokens


class HallUnavailable(Exception):
    """The hall server did not answer (or the broker is away): the page says "try again"."""


class Refused(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.details = code, message, details


@dataclass(eq=False)
class Listener:
    """One open page's event stream: it holds only the newest message, as nothing older matters to it."""

    key: str  # a token, or "display/<id>"
    lang: str
    last: bytes = b""
    pending: bytes | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    stale: bool = False  # its page may have changed: its own stream renders it when its turn comes

    def send(self, message: bytes) -> None:
        if message != self.last:
            self.last = self.pending = message
            self.wake.set()

    def mark_stale(self) -> None:
        self.stale = True
        self.wake.set()


# A listener's next message, or None to end its stream.
Render = Callable[[Listener], bytes | None]
# Whether a page's visit changed state (called, done...): such pages are rendered and sent before the rest.
Urgent = Callable[[str], bool]


class Hub:
    def __init__(self, hall: HallConfig, address: BrokerAddress, *, device: str = "web", grace_min: int = 120,
                 version: str = "3.1.1", clock: Callable[[], datetime] | None = None) -> None:
        self.hall = hall
        self.book = Book(hall, grace_min)
        self.clock = clock or (lambda: datetime.now(hall.tz))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listeners: dict[str, set[Listener]] = {}
        self._listening = 0
        self.render: Render | None = None  # set by the app: a listener's next message, or None to end it
        self.urgent: Urgent = lambda key: False
        self.observers: list[Callable[[p.ParsedTopic, dict[str, Any]], None]] = []  # every message (the TVs)
        self.calls: dict[str, Any] = {}  # the retained state/calls (the web display)
        self.state: dict[str, dict[str, Any]] = {}  # every retained state part, by part name
        self.server: dict[str, Any] = {}
        self._buffer: list[p.Event] = []
        self._syncing: asyncio.Task[None] | None = None
        self._flush_due = False
        self._flush_pages = False
        self.client = HallClient(address, hall.id, "web", device, version=version, watch=True,
                                 listener=self._from_network)

    # ------------------------------------------------------------ lifecycle

    async def start(self, timeout: float = 10.0) -> bool:
        """Connect and read today's queue; True once synced (else it goes on trying in the background)."""
        self.loop = asyncio.get_running_loop()
        connected = await self.loop.run_in_executor(None, self.client.start, timeout)
        self.resync()
        if connected and self._syncing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._syncing), timeout)
        return self.book.synced

    async def close(self) -> None:
        if self._syncing is not None:
            self._syncing.cancel()
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.closed = True
                listener.wake.set()
        assert self.loop is not None
        await self.loop.run_in_executor(None, self.client.close)

    # ------------------------------------------------------------ commands

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a command as this web server and wait for its result; resent with the same id (the server
        answers a resend with the reply it kept) until REQUEST_TRIES are used up."""
        assert self.loop is not None
        loop = self.loop
        command_id = p.new_command_id()
        for _ in range(REQUEST_TRIES):
            answer: asyncio.Future[dict[str, Any]] = loop.create_future()

            def done(reply: dict[str, Any], answer: asyncio.Future[dict[str, Any]] = answer) -> None:
                loop.call_soon_threadsafe(_settle, answer, reply)

            if self.client.connected:
                self.client.submit(op, done, command_id=command_id, **fields)
            try:
                reply = await asyncio.wait_for(answer, REQUEST_S)
            except TimeoutError:
                self.client._pending.pop(command_id, None)  # the client keeps a callback per id until answered
                continue
            if reply.get("ok"):
                return dict(reply.get("result") or {})
            error = dict(reply.get("error") or {})
            raise Refused(str(error.pop("code", p.Err.INTERNAL)), str(error.pop("message", "")), error)
        raise HallUnavailable(f"the hall server did not answer {op!r}")

    # ------------------------------------------------------------ from the hall

    def _from_network(self, parsed: p.ParsedTopic, data: dict[str, Any]) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._on_message, parsed, data)

    def _on_message(self, parsed: p.ParsedTopic, data: dict[str, Any]) -> None:
        for observer in self.observers:
            observer(parsed, data)
        if parsed.kind == "event":
            try:
                event = p.Event.from_payload(data)
            except (KeyError, TypeError, ValueError):
                log.warning("ignored an event that is not one: %.200r", data)
                return
            self._on_event(event)
        elif parsed.kind == "state" and parsed.name:
            self.state[parsed.name] = data
            if parsed.name == p.CALLS_PART:
                self.calls = data
            self._schedule_flush(pages=False)  # a ticket's page is read from the events: only the TVs change
        elif parsed.kind == "server":
            self.server = data
            self._schedule_flush(pages=False)
            seq = data.get("seq")
            if isinstance(seq, int) and seq > self.book.seq and self.book.synced:
                self.resync()  # the server went on while we were away

    def _on_event(self, event: p.Event) -> None:
        if self._syncing is not None or not self.book.synced:
            self._buffer.append(event)
            self.resync()  # (nothing new if a replay is under way)
            return
        if event.seq <= self.book.seq:
            return
        if event.seq != self.book.seq + 1:
            self._buffer.append(event)
            self.resync()
            return
        self._apply(event)
        self._schedule_flush()

    def _apply(self, event: p.Event) -> None:
        try:
            self.book.apply(event)
        except (KeyError, ValueError) as exc:  # a hall file that differs from the server's: say so, read again
            log.error("event %d (%s) does not fit: %s; reading the log again", event.seq, event.type, exc)
            self.book.synced = False
            self.book.start_at(event.seq + 1)  # what it holds is no longer the hall's

    def resync(self) -> None:
        if self._syncing is None and self.loop is not None:
            self._syncing = self.loop.create_task(self._sync())

    async def _sync(self) -> None:
        """Read the log from where the book is (or from today's day.started) up to the server's last seq."""
        try:
            while True:
                try:
                    await self._read_log()
                    break
                except (HallUnavailable, Refused) as exc:
                    log.warning("cannot read the hall's log yet: %s", exc)
                    await asyncio.sleep(getattr(exc, "details", {}).get("retry_after_s", RESYNC_PAUSE_S))
        finally:
            self._syncing = None
        self._drain()
        self._schedule_flush()

    async def _read_log(self) -> None:
        since = self.book.seq if self.book.synced else 0
        fresh = not self.book.synced
        while True:
            page = await self.request("replay", since=since)
            day_start = int(page.get("day_start") or 1)
            if fresh:  # begin at today's day.started: the days before have no open tickets
                fresh = False
                self.book.start_at(day_start)
                if since < day_start - 1:
                    since = day_start - 1
                    continue
            for data in page.get("events", []):
                event = p.Event.from_payload(data)
                if event.seq <= self.book.seq:
                    continue
                if event.seq != self.book.seq + 1:  # a day purged under us, or a reset log: start over
                    self.book.synced = False
                    return await self._read_log()
                self._apply(event)
            since = int(page.get("upto", since))
            if not page.get("more"):
                break
        self.book.synced = True

    def _drain(self) -> None:
        """Apply the live events that came during a replay, in order; a gap left means another replay."""
        waiting, self._buffer = sorted(self._buffer, key=lambda e: e.seq), []
        for event in waiting:
            if event.seq <= self.book.seq:
                continue
            if event.seq != self.book.seq + 1:
                self._buffer = [e for e in waiting if e.seq > self.book.seq]
                self.resync()
                return
            self._apply(event)

    # ------------------------------------------------------------ the pages

    def listen(self, listener: Listener) -> None:
        listeners = self.listeners.setdefault(listener.key, set())
        if listener not in listeners:
            listeners.add(listener)
            self._listening += 1

    def forget(self, listener: Listener) -> None:
        listeners = self.listeners.get(listener.key)
        if listeners is not None and listener in listeners:
            listeners.discard(listener)
            self._listening -= 1
            if not listeners:
                del self.listeners[listener.key]

    def _schedule_flush(self, pages: bool = True) -> None:
        """Many events in one burst (a replay, a busy minute) make one round of page updates. `pages`: the
        tickets' pages may have changed too (an event came), not only the TVs' boards (retained state)."""
        self._flush_pages = self._flush_pages or pages
        if not self._flush_due and self.loop is not None:
            self._flush_due = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send every page its new state: first the pages whose visit changed (a call must not wait behind a
        thousand "one fewer ahead"), then, in the loop's next turn, after those have been written, the rest."""
        self._flush_due = False
        pages, self._flush_pages = self._flush_pages, False
        keys = list(self.listeners) if pages else [key for key in self.listeners if key.startswith(BOARD_PREFIX)]
        urgent = [key for key in keys if self.urgent(key)]
        self._send(urgent)
        if self.loop is not None and len(urgent) < len(keys):
            chosen = set(urgent)
            self.loop.call_soon(self._mark_stale, [key for key in keys if key not in chosen])

    def _mark_stale(self, keys: list[str]) -> None:
        """The pages whose visit did not change (one fewer ahead): each stream renders its own message when the
        loop comes to it, so that a thousand of them never hold up the write of the page that was called."""
        for key in keys:
            for listener in self.listeners.get(key, ()):
                listener.mark_stale()

    def _send(self, keys: list[str]) -> None:
        if self.render is None:
            return
        for key in keys:
            rendered: dict[str, bytes | None] = {}
            for listener in list(self.listeners.get(key, ())):
                if listener.lang not in rendered:
                    rendered[listener.lang] = self.render(listener)
                message = rendered[listener.lang]
                if message is None:
                    listener.closed = True
                    listener.wake.set()
                else:
                    listener.send(message)

    @property
    def connected(self) -> bool:
        return self.client.connected

    def listening(self) -> int:
        return self._listening


def _settle(answer: asyncio.Future[dict[str, Any]], reply: dict[str, Any]) -> None:
    if not answer.done():
        answer.set_result(reply)
