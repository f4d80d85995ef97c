"""The hall display's board as a pure model: retained state and events in, a Board and announcements out.

Why pure: a display runs for months, through broker restarts, server restarts, reconnects, day changes
and messages that arrive late or twice. Every one of those paths is tested here without a window, a
broker or a clock: the model reads no clock (each input comes with `now`) and does no I/O.

Use:  announcements = model.feed(input, now);  board = model.board(now);  wake again at model.next_change(now).

What it keeps, whatever arrives in whatever order:
- a call is announced once: only a call whose event `seq` is above every seq this display has seen
  (a recall is a new call event, so it is announced again); calls that were already there when the
  display first synced, or that come back in the retained state after a reconnect, are not announced;
  a call made while the display was cut off is announced when it comes back, if it is still recent;
- retained state never undoes a newer event: each part carries the seq it includes, and a part older
  than what the display already applied is ignored (state goes out at most ten times a second, events
  at once, so an event usually overtakes the state that includes it);
- a new server log (a fresh database: the server comes online again with a seq below what the display
  has seen) starts the board afresh, rather than leaving it stuck on yesterday's numbers.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from broker import protocol as p
from broker.config import Counter, Display, HallConfig
from display.board import (
    CALLS,
    CLOSED,
    STARTING,
    Board,
    CallView,
    Header,
    Labels,
    Msg,
    Notice,
    QueueView,
    clock_text,
    msg,
    wait_minutes,
)
from ui.unknown_input import ignore_unknown

log = logging.getLogger(__name__)

RECENT_CALL_S = 60.0  # a call made while cut off is announced on reconnect only if it is this fresh
CALLS_KEPT = 48  # calls remembered (history is at most 20, plus every counter's current call)

# ---------------------------------------------------------------- inputs and effects


class Input:
    """Base of everything fed to DisplayModel.feed."""


@dataclass(frozen=True)
class StateIn(Input):
    """A retained state message: part is protocol.HALL_PART, CALLS_PART, queue_part(t) or counter_part(c)."""

    part: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class EventIn(Input):
    """An event as published on event/<type>: the whole payload, with seq, at and type."""

    data: Mapping[str, Any]


@dataclass(frozen=True)
class ServerIn(Input):
    """The server's retained presence: online, offline (its will) or stopped."""

    data: Mapping[str, Any]


@dataclass(frozen=True)
class LinkIn(Input):
    """This display's own connection to the broker went up or down."""

    up: bool


@dataclass(frozen=True)
class Announce:
    """Say this call out loud: the chime, then the number and counter in `lang` and the hall's main language."""

    number: str
    counter: str
    lang: str
    recall: int
    seq: int


# ---------------------------------------------------------------- what the model remembers


@dataclass(frozen=True)
class _Call:
    number: str
    topic: str
    lang: str
    counter: str
    at: str
    recall: int
    seq: int
    seen: datetime | None = None  # when this display saw it as new: it is highlighted from then


@dataclass
class _Counter:
    status: str = p.CLOSED
    current: _Call | None = None  # the ticket at the counter now (called, not yet done)
    seq: int = -1  # the last event or state applied to it


@dataclass
class _Queue:
    waiting: int = 0
    expected_wait_s: int = 0
    seq: int = -1


@dataclass
class _Hall:
    always_open: bool = False
    day: str | None = None
    seq: int = -1


@dataclass
class _Sync:
    link: bool = False
    server: bool | None = None
    hall: bool = False
    calls: bool = False
    ever: bool = False  # synced at least once: from then on the board stays, with a mark when cut off

    @property
    def online(self) -> bool:
        return self.link and self.server is True


@dataclass
class DisplayModel:
    """The board of one display of a hall."""

    hall: HallConfig
    display: Display
    fixed_lang: str | None = None  # show static texts in this language only (snapshots for the README)
    calls: dict[str, _Call] = field(default_factory=dict)  # by ticket number; only its newest call
    counters: dict[str, _Counter] = field(default_factory=dict)
    queues: dict[str, _Queue] = field(default_factory=dict)
    hall_state: _Hall = field(default_factory=_Hall)
    sync: _Sync = field(default_factory=_Sync)
    heard: int = -1  # the highest seq up to which this display knows the calls: calls at or below it are old
    baseline: bool = False  # heard is meaningful: the first calls this display learnt of are not announced
    latest: int = -1  # the highest seq of anything received
    presence_seq: int | None = None  # the seq in the server's last presence message
    unknown: collections.Counter[str] = field(default_factory=collections.Counter)  # unhandled inputs, by type

    def __post_init__(self) -> None:
        for counter_id in self.hall.counters:
            self.counters.setdefault(counter_id, _Counter())
        for topic_id in self.hall.topics:
            self.queues.setdefault(topic_id, _Queue())

    @classmethod
    def for_display(cls, hall: HallConfig, display_id: str, fixed_lang: str | None = None) -> DisplayModel:
        if display_id not in hall.displays:
            raise ValueError(f"display {display_id!r} is not in hall {hall.id!r} "
                             f"(known: {', '.join(hall.displays)})")
        if fixed_lang is not None and fixed_lang not in hall.languages:
            raise ValueError(f"language {fixed_lang!r} is not one of the hall's ({', '.join(hall.languages)})")
        return cls(hall, hall.displays[display_id], fixed_lang)

    # ------------------------------------------------------------ feeding

    def feed(self, item: Input, now: datetime) -> list[Announce]:
        """Apply one input; returns the calls to announce (already filtered to this display's counters)."""
        announce: list[Announce] = []
        match item:
            case LinkIn():
                self.sync.link = item.up
            case ServerIn():
                self._server(item.data)
            case EventIn():
                announce = self._event(item.data, now)
            case StateIn():
                announce = self._state(item.part, item.data, now)
            case _:  # an input type added without its case here: said once, counted every time
                ignore_unknown(self.unknown, item, log, "the display")
        if self.synced:
            self.sync.ever = True
        return announce

    def _server(self, data: Mapping[str, Any]) -> None:
        """The server says it is online on every connect, with its log's last seq. The same retained message
        comes again after this display's own reconnects (same seq); a new one with a seq below what we have
        seen means a new log."""
        status = data.get("status")
        self.sync.server = status == p.ONLINE
        seq = data.get("seq")
        if status == p.ONLINE and isinstance(seq, int):
            if self.presence_seq is not None and seq != self.presence_seq and seq < self.latest:
                self._forget()
            self.presence_seq = seq

    def _forget(self) -> None:
        self.calls.clear()
        for counter in self.counters.values():
            counter.status, counter.current, counter.seq = p.CLOSED, None, -1
        for queue in self.queues.values():
            queue.waiting, queue.expected_wait_s, queue.seq = 0, 0, -1
        self.hall_state = _Hall()
        self.heard, self.latest, self.baseline = -1, -1, False
        self.sync.hall = self.sync.calls = False

    def _event(self, data: Mapping[str, Any], now: datetime) -> list[Announce]:
        seq, kind = data.get("seq"), data.get("type")
        if not isinstance(seq, int) or not isinstance(kind, str):
            return []
        raw = data.get("ticket")
        ticket: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        announce: list[Announce] = []
        if kind == p.TICKET_CALLED:
            call = _call_from(ticket, data, seq)
            if call is not None:
                announce = self._called(call, now, live=True)
        elif kind in (p.TICKET_DONE, p.TICKET_NOSHOW, p.TICKET_FORWARDED, p.TICKET_EXPIRED):
            self._left_counter(str(ticket.get("number", "")), seq)
        elif kind in (p.COUNTER_OPENED, p.COUNTER_PAUSED, p.COUNTER_CLOSED):
            counter = self.counters.get(str(data.get("counter")))
            if counter is not None and seq > counter.seq:
                counter.status = {p.COUNTER_OPENED: p.OPEN, p.COUNTER_PAUSED: p.PAUSED}.get(kind, p.CLOSED)
                counter.seq = seq
        elif kind == p.DAY_STARTED:
            self._new_day(str(data.get("day")), seq)
        self.latest = max(self.latest, seq)
        return announce

    def _called(self, call: _Call, now: datetime, *, live: bool) -> list[Announce]:
        """A call from an event (live) or one found in retained state; announced if it is news."""
        if call.counter not in self.hall.counters:
            return []  # a counter this hall file does not know (a newer config on the server): no way to show it
        news = self.baseline and call.seq > self.heard
        if not live and news:  # made while this display was cut off: say it only if still fresh
            news = _age_s(call.at, now) <= RECENT_CALL_S
        if not self.baseline and live:
            news = True  # the first thing heard is a live call: it happens now
        self.heard, self.baseline = max(self.heard, call.seq), True
        known = self.calls.get(call.number)
        if known is not None and known.seq >= call.seq:
            return []
        call = replace(call, seen=now if news else None)
        self._remember(call)
        counter = self.counters.get(call.counter)
        if counter is not None and call.seq > counter.seq:
            counter.current, counter.seq = call, call.seq
            if counter.status == p.CLOSED:
                counter.status = p.OPEN  # it calls, so it is open (the opened event may be behind the call)
        for other_id, other in self.counters.items():  # a ticket is at one counter at a time
            if other_id != call.counter and other.current is not None and other.current.number == call.number:
                other.current = None
        if news and self.display.shows(call.counter):
            return [Announce(call.number, call.counter, call.lang, call.recall, call.seq)]
        return []

    def _remember(self, call: _Call) -> None:
        self.calls[call.number] = call
        if len(self.calls) > CALLS_KEPT:
            oldest = min(self.calls.values(), key=lambda c: c.seq)
            del self.calls[oldest.number]

    def _left_counter(self, number: str, seq: int) -> None:
        for counter in self.counters.values():
            if counter.current is not None and counter.current.number == number and seq > counter.seq:
                counter.current, counter.seq = None, seq

    def _new_day(self, day: str, seq: int) -> None:
        self.calls.clear()
        for counter in self.counters.values():
            if seq > counter.seq:
                counter.current, counter.seq = None, seq
        self.hall_state.day = day

    def _state(self, part: str, data: Mapping[str, Any], now: datetime) -> list[Announce]:
        seq = data.get("seq")
        if not isinstance(seq, int):
            return []
        announce: list[Announce] = []
        name = part.partition("/")[2]
        if part == p.HALL_PART:
            if seq >= self.hall_state.seq:
                day = data.get("day")
                if self.hall_state.day is not None and isinstance(day, str) and day != self.hall_state.day:
                    self._new_day(day, seq)
                self.hall_state = _Hall(always_open=bool(data.get("always_open")),
                                        day=day if isinstance(day, str) else None, seq=seq)
            self.sync.hall = True
        elif part == p.CALLS_PART:
            listed = data.get("calls")
            calls = [c for c in (_call_from(raw, raw, raw.get("seq")) for raw in
                                 (listed if isinstance(listed, list) else ()) if isinstance(raw, Mapping))
                     if c is not None]
            if not self.baseline:  # the first calls this display learns of were made before it listened
                self.heard, self.baseline = seq, True
            for call in sorted(calls, key=lambda c: c.seq):
                announce += self._called(call, now, live=False)
            self.heard, self.baseline = max(self.heard, seq), True  # the calls up to seq are all in it
            self.sync.calls = True
        elif part == p.counter_part(name) and name in self.counters:
            self._counter_state(self.counters[name], name, data, seq)
        elif part == p.queue_part(name) and name in self.queues:
            queue = self.queues[name]
            if seq >= queue.seq:
                queue.waiting = _int(data.get("waiting"))
                queue.expected_wait_s = _int(data.get("expected_wait_s"))
                queue.seq = seq
        self.latest = max(self.latest, seq)
        return announce

    def _counter_state(self, counter: _Counter, counter_id: str, data: Mapping[str, Any], seq: int) -> None:
        if seq < counter.seq:
            return  # older than an event already applied
        counter.status = str(data.get("status") or p.CLOSED)
        ticket = data.get("ticket")
        if isinstance(ticket, Mapping) and ticket.get("state") == p.CALLED:
            known = self.calls.get(str(ticket.get("number")))
            call = known if known is not None and known.counter == counter_id else _call_from(ticket, {
                "counter": counter_id, "at": ticket.get("called_at") or "", "recall": ticket.get("recalls", 0)}, -1)
            counter.current = call
        else:
            counter.current = None
        counter.seq = seq

    # ------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """Online, with the hall and the calls in: what a snapshot waits for."""
        return self.sync.online and self.sync.hall and self.sync.calls

    def lang(self, now: datetime) -> str:
        """The language of the static texts now: the hall's languages in turn."""
        if self.fixed_lang is not None:
            return self.fixed_lang
        languages, period = self.hall.languages, self.display.rotate_languages_s
        if period <= 0 or len(languages) < 2:
            return self.hall.main_language
        return languages[int(now.timestamp() // period) % len(languages)]

    def current_calls(self) -> list[_Call]:
        """The tickets at this display's counters now, newest call first."""
        calls = [c.current for cid, c in self.counters.items()
                 if c.current is not None and c.status != p.CLOSED and self.display.shows(cid)]
        return sorted(calls, key=lambda c: (c.seq, c.at), reverse=True)

    def waiting(self) -> int:
        return sum(self.queues[t].waiting for t in self._topics())

    def _topics(self) -> list[str]:
        """Topics served by this display's counters (all of them when it shows every counter)."""
        if not self.display.counters:
            return list(self.hall.topics)
        return [t for t in self.hall.topics if any(self.hall.counters[c].serves(t) for c in self.display.counters)]

    def mode(self, now: datetime) -> str:
        if not self.sync.ever:
            return STARTING
        if (not self.hall_state.always_open and not self.hall.hours.is_open(now)
                and not self.current_calls() and self.waiting() == 0):
            return CLOSED
        return CALLS

    def board(self, now: datetime) -> Board:
        lang = self.lang(now)
        mode = self.mode(now)
        current = self.current_calls()
        at_counters = {c.number for c in current}
        history = sorted((c for c in self.calls.values()
                          if c.number not in at_counters and self.display.shows(c.counter)),
                         key=lambda c: c.seq, reverse=True)[:self.display.history]
        hero = self._view(current[0], now, self._visitor_lang(current[0].lang)) if current else None
        return Board(
            mode=mode,
            header=Header(self.hall.name.get(lang, ""), clock_text(now), lang),
            online=self.sync.online or not self.sync.ever,
            labels=Labels(lang, msg("display.now_serving"), msg("display.earlier"), msg("display.idle")),
            hero=hero,
            current=tuple(self._view(c, now, lang) for c in current[1:]),
            history=tuple(self._view(c, now, lang, highlight=False) for c in history),
            queues=tuple(self._queue_view(t, lang) for t in self._topics()),
            notice=self._notice(mode, now, lang),
            display=self.display.id,
        )

    def _visitor_lang(self, lang: str) -> str:
        return self.hall.language(lang)

    def _view(self, call: _Call, now: datetime, lang: str, *, highlight: bool = True) -> CallView:
        counter: Counter | None = self.hall.counters.get(call.counter)
        topic = self.hall.topics.get(call.topic)
        direction = self.display.directions.get(call.counter, "ahead")
        way = self.display.wayfinding.get(call.counter)
        place = (way or (counter.location if counter else {})).get(lang, "")
        return CallView(
            number=call.number, topic=call.topic, colour=topic.colour if topic else "#14365d",
            counter=call.counter, counter_name=counter.name.get(lang, call.counter) if counter else call.counter,
            place=place, direction=direction, direction_text=msg(f"display.direction.{direction}"), lang=lang,
            recall=call.recall, highlight=highlight and self._highlighted(call, now), seq=call.seq)

    def _highlighted(self, call: _Call, now: datetime) -> bool:
        return call.seen is not None and now - call.seen < timedelta(seconds=self.display.highlight_s)

    def _queue_view(self, topic_id: str, lang: str) -> QueueView:
        topic, queue = self.hall.topics[topic_id], self.queues[topic_id]
        if queue.waiting <= 0:
            return QueueView(topic_id, topic.letter, topic.colour, topic.name.get(lang, topic_id),
                             msg("display.queue.empty"), None)
        return QueueView(topic_id, topic.letter, topic.colour, topic.name.get(lang, topic_id),
                         msg("display.queue.waiting", n=queue.waiting),
                         msg("display.queue.wait", n=wait_minutes(queue.expected_wait_s)))

    def _notice(self, mode: str, now: datetime, lang: str) -> Notice | None:
        if mode == STARTING:
            return Notice(lang, msg("display.starting"), None)
        if mode != CLOSED:
            return None
        opens = self.hall.hours.next_opening(now)
        body: Msg
        if opens is None:
            body = msg("display.closed.unknown")
        elif opens.date() == now.date():
            body = msg("display.closed.today", time=opens.time())
        elif opens.date() == now.date() + timedelta(days=1):
            body = msg("display.closed.tomorrow", time=opens.time())
        else:
            body = msg("display.closed.later", date=opens.date(), time=opens.time())
        return Notice(lang, msg("display.closed.title"), body)

    def next_change(self, now: datetime) -> datetime:
        """When the board will next change by itself (a highlight ends, the language turns, the minute)."""
        moments = [now.replace(second=0, microsecond=0) + timedelta(minutes=1)]
        period = self.display.rotate_languages_s
        if self.fixed_lang is None and period > 0 and len(self.hall.languages) > 1:
            stamp = now.timestamp()
            moments.append(now + timedelta(seconds=(stamp // period + 1) * period - stamp))
        lasting = timedelta(seconds=self.display.highlight_s)
        moments += [c.seen + lasting for c in self.calls.values() if c.seen is not None and c.seen + lasting > now]
        return min(moments)


# ---------------------------------------------------------------- parsing helpers


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _call_from(ticket: Mapping[str, Any], data: Mapping[str, Any], seq: Any) -> _Call | None:
    """A call from an event (ticket + counter + recall) or a calls-state entry (all in one)."""
    number, counter = ticket.get("number"), data.get("counter", ticket.get("counter"))
    if not isinstance(number, str) or not isinstance(counter, str) or not isinstance(seq, int):
        return None
    recall = data.get("recall", ticket.get("recalls", 0))
    return _Call(number=number, topic=str(ticket.get("topic", "")), lang=str(ticket.get("lang", "")),
                 counter=counter, at=str(data.get("at", "")), recall=_int(recall), seq=seq)


def _age_s(at: str, now: datetime) -> float:
    """Seconds since an ISO time from the server; unreadable times count as old."""
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    return abs((now - moment).total_seconds())
