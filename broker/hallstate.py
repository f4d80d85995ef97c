"""The hall's queue state and how each event changes it.

State is only ever changed by applying an event, both live and when the store
replays the log at start: that one path is why a replay gives the same state.
No I/O and no clock here; times come from the events themselves.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from broker import protocol as p
from broker.config import HallConfig
from broker.waitmodel import WaitModel, epoch_s

SERVICE_EMA_WEIGHT = 0.2
SERVICE_MIN_S, SERVICE_MAX_S = 30.0, 7200.0
RECENT_CALLS = 10
QUEUE_PREVIEW = 20


@dataclass
class Ticket:
    number: str
    topic: str
    origin_topic: str
    lang: str
    priority: bool
    issued_at: str
    order: int  # seq of the issue event: the tie-free "who came first"
    ahead: int
    expected_wait_s: int
    state: str = p.WAITING
    counter: str | None = None  # the counter serving it now, or the last one that did
    to_counter: str | None = None  # waiting for this counter after a forward
    recalls: int = 0
    called_at: str | None = None
    forwards: int = 0
    note: str | None = None
    wait_range_s: tuple[int, int] | None = None  # the range printed with expected_wait_s
    token: str | None = None  # its web page's secret (never in public(): only the issue event and reply carry it)
    rated: bool = False  # the visitor has given their feedback

    @property
    def sort_key(self) -> tuple[int, int]:
        """Priority tickets first inside their topic, then whoever came first."""
        return (0 if self.priority else 1, self.order)

    def brief(self) -> dict[str, Any]:
        """What a queue preview shows of a waiting ticket."""
        data: dict[str, Any] = {"number": self.number, "lang": self.lang, "priority": self.priority,
                                "issued_at": self.issued_at}
        if self.forwards:
            data["forwards"] = self.forwards
        return data

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "number": self.number, "topic": self.topic, "lang": self.lang, "priority": self.priority,
            "issued_at": self.issued_at, "state": self.state, "ahead": self.ahead,
            "expected_wait_s": self.expected_wait_s, "recalls": self.recalls, "forwards": self.forwards,
        }
        if self.wait_range_s is not None:
            data["expected_wait_range_s"] = list(self.wait_range_s)
        if self.origin_topic != self.topic:
            data["origin_topic"] = self.origin_topic
        if self.counter is not None:
            data["counter"] = self.counter
        if self.to_counter is not None:
            data["to_counter"] = self.to_counter
        if self.called_at is not None:
            data["called_at"] = self.called_at
        if self.note:
            data["note"] = self.note
        if self.rated:
            data["rated"] = True
        return data


@dataclass
class CounterState:
    id: str
    status: str = p.CLOSED
    since: str | None = None
    reason: str | None = None
    current: str | None = None  # ticket number being served
    forwarded: list[str] = field(default_factory=list)  # numbers forwarded here, first come first
    served: int = 0


@dataclass
class HallState:
    """Everything the engine decides from; built only by `apply`."""

    hall: HallConfig
    seq: int = 0
    day: str | None = None
    tickets: dict[str, Ticket] = field(default_factory=dict)
    next_number: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)  # topic -> sorted keys
    counters: dict[str, CounterState] = field(default_factory=dict)
    service_time_s: dict[str, float] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    issued_today: int = 0
    tokens: dict[str, str] = field(default_factory=dict)  # today's ticket page tokens -> ticket number
    dirty: set[str] = field(default_factory=set)
    model: WaitModel = field(init=False)  # what the expected wait has learned (broker/estimate.py)
    last_at: str | None = None  # time of the last event applied

    def __post_init__(self) -> None:
        self.model = WaitModel.for_hall({t.id: t.service_time_min for t in self.hall.topics.values()})
        for topic in self.hall.topics.values():
            self.waiting.setdefault(topic.id, [])
            self.next_number.setdefault(topic.id, 1)
            self.service_time_s.setdefault(topic.id, topic.service_time_min * 60.0)
        for counter_id in self.hall.counters:
            self.counters.setdefault(counter_id, CounterState(counter_id))

    # ------------------------------------------------------------ queries

    def waiting_in(self, topic: str) -> list[Ticket]:
        return [self.tickets[key[2]] for key in self.waiting[topic]]

    def head(self, topic: str) -> Ticket | None:
        keys = self.waiting[topic]
        return self.tickets[keys[0][2]] if keys else None

    def oldest(self, topic: str) -> Ticket | None:
        """The one who has waited longest (a priority ticket may sit ahead of them)."""
        keys = self.waiting[topic]
        if not keys:
            return None
        split = bisect.bisect_left(keys, (1, -1, ""))
        candidates = [keys[0]] + ([keys[split]] if split < len(keys) else [])
        return self.tickets[min(candidates, key=lambda k: k[1])[2]]

    def priority_waiting(self, topic: str) -> int:
        return bisect.bisect_left(self.waiting[topic], (1, -1, ""))

    def current_ticket(self, counter_id: str) -> Ticket | None:
        number = self.counters[counter_id].current
        return None if number is None else self.tickets[number]

    # ------------------------------------------------------------ apply

    def apply(self, event: p.Event) -> None:
        if event.seq != self.seq + 1:
            raise ValueError(f"event seq {event.seq} does not follow {self.seq}: the log has a gap")
        handler = _APPLY.get(event.type)
        if handler is None:
            raise ValueError(f"unknown event type {event.type!r} at seq {event.seq}")
        handler(self, event)
        self.seq = event.seq
        self.last_at = event.at

    def _enqueue(self, ticket: Ticket) -> None:
        ticket.state = p.WAITING
        if ticket.to_counter is not None:
            self.counters[ticket.to_counter].forwarded.append(ticket.number)
            self.dirty.add(p.counter_part(ticket.to_counter))
        else:
            bisect.insort(self.waiting[ticket.topic], (*ticket.sort_key, ticket.number))
            self.dirty.add(p.queue_part(ticket.topic))

    def _dequeue(self, ticket: Ticket) -> None:
        if ticket.to_counter is not None:
            self.counters[ticket.to_counter].forwarded.remove(ticket.number)
            self.dirty.add(p.counter_part(ticket.to_counter))
            ticket.to_counter = None
        else:
            keys = self.waiting[ticket.topic]
            index = bisect.bisect_left(keys, (*ticket.sort_key, ticket.number))
            del keys[index]
            self.dirty.add(p.queue_part(ticket.topic))

    def _finish(self, ticket: Ticket, state: str) -> None:
        """A visit ends at its counter (done, no-show) or the ticket is expired."""
        if ticket.state == p.WAITING:
            self._dequeue(ticket)
        elif ticket.state == p.CALLED and ticket.counter is not None:
            counter = self.counters[ticket.counter]
            if counter.current == ticket.number:
                counter.current = None
                self.dirty.add(p.counter_part(counter.id))
        ticket.state = state
        self.dirty.add(p.HALL_PART)

    def _set_counter(self, counter_id: str, status: str, at: str, reason: str | None) -> None:
        counter = self.counters[counter_id]
        if counter.status == p.PAUSED and status != p.PAUSED and counter.since is not None:
            self.model.saw_pause(epoch_s(at) - epoch_s(counter.since))
        counter.status, counter.since, counter.reason = status, at, reason
        self.dirty.update((p.counter_part(counter_id), p.HALL_PART))
        # capacity changed: every expected wait this counter touches changes too
        for tier in self.hall.counters[counter_id].tiers:
            self.dirty.update(p.queue_part(t) for t in tier)


def _on_day_started(state: HallState, event: p.Event) -> None:
    state.day = event.data["day"]
    state.tickets.clear()
    state.tokens.clear()
    state.issued_today = 0
    state.calls.clear()
    for topic in state.hall.topics:
        state.next_number[topic] = 1
        state.waiting[topic] = []
    for counter in state.counters.values():
        counter.current, counter.forwarded, counter.served = None, [], 0
    for topic, seconds in event.data.get("service_time_s", {}).items():
        if topic in state.service_time_s:
            state.service_time_s[topic] = float(seconds)
    state.model.restore(event.data.get("model", {}))
    state.model.new_day()
    state.dirty.update([p.HALL_PART, p.CALLS_PART] + [p.queue_part(t) for t in state.hall.topics]
                       + [p.counter_part(c) for c in state.counters])


def _on_issued(state: HallState, event: p.Event) -> None:
    data = event.data["ticket"]
    ticket = Ticket(number=data["number"], topic=data["topic"], origin_topic=data["topic"], lang=data["lang"],
                    priority=bool(data["priority"]), issued_at=data["issued_at"], order=event.seq,
                    ahead=int(data["ahead"]), expected_wait_s=int(data["expected_wait_s"]))
    if isinstance(data.get("expected_wait_range_s"), list):
        low, high = data["expected_wait_range_s"]
        ticket.wait_range_s = (int(low), int(high))
    held = state.tickets.get(ticket.number)
    if held is not None and held.state in (p.WAITING, p.CALLED):  # a wrapped number is free once its visit ended
        raise ValueError(f"ticket {ticket.number} issued twice on {state.day} while still in use")
    if held is not None and held.token is not None:  # the old visit's page ends with its number
        state.tokens.pop(held.token, None)
    if isinstance(data.get("token"), str):
        ticket.token = data["token"]
        state.tokens[ticket.token] = ticket.number
    state.tickets[ticket.number] = ticket
    state.next_number[ticket.topic] = int(ticket.number[1:]) + 1
    state.issued_today += 1
    state.model.saw_issue(ticket.topic, epoch_s(event.at))
    state._enqueue(ticket)
    state.dirty.add(p.HALL_PART)


def _on_called(state: HallState, event: p.Event) -> None:
    ticket = state.tickets[event.data["ticket"]["number"]]
    counter = state.counters[event.data["counter"]]
    if ticket.state == p.WAITING:
        state._dequeue(ticket)
        counter.served += 1
        if ticket.forwards == 0:  # the wait the kiosk promised is over: how good was the promise?
            waited = epoch_s(event.at) - epoch_s(ticket.issued_at)
            state.model.saw_first_call(ticket.topic, ticket.expected_wait_s, waited)
    ticket.state, ticket.counter = p.CALLED, counter.id
    ticket.recalls = int(event.data.get("recall", 0))
    ticket.called_at = ticket.called_at if ticket.recalls else event.at
    counter.current = ticket.number
    call = {"number": ticket.number, "topic": ticket.topic, "lang": ticket.lang, "counter": counter.id,
            "at": event.at, "recall": ticket.recalls, "seq": event.seq}
    state.calls = [c for c in state.calls if c["number"] != ticket.number][: RECENT_CALLS - 1]
    state.calls.insert(0, call)
    state.dirty.update((p.counter_part(counter.id), p.CALLS_PART, p.HALL_PART))


def _visit_ended(state: HallState, ticket: Ticket, at: str) -> None:
    """A visit at a counter ended (done, forwarded or no-show): the wait model learns how long it took."""
    if ticket.state == p.CALLED and ticket.called_at is not None and ticket.counter is not None:
        state.model.saw_visit(ticket.topic, ticket.counter, epoch_s(at) - epoch_s(ticket.called_at))


def _on_done(state: HallState, event: p.Event) -> None:
    ticket = state.tickets[event.data["ticket"]["number"]]
    _visit_ended(state, ticket, event.at)
    if ticket.called_at is not None:
        seconds = min(max(epoch_s(event.at) - epoch_s(ticket.called_at), SERVICE_MIN_S), SERVICE_MAX_S)
        old = state.service_time_s[ticket.topic]
        state.service_time_s[ticket.topic] = old + SERVICE_EMA_WEIGHT * (seconds - old)
        state.dirty.add(p.queue_part(ticket.topic))
    state._finish(ticket, p.DONE)


def _on_noshow(state: HallState, event: p.Event) -> None:
    ticket = state.tickets[event.data["ticket"]["number"]]
    _visit_ended(state, ticket, event.at)
    state._finish(ticket, p.NOSHOW)


def _on_expired(state: HallState, event: p.Event) -> None:
    state._finish(state.tickets[event.data["ticket"]["number"]], p.EXPIRED)


def _on_forwarded(state: HallState, event: p.Event) -> None:
    ticket = state.tickets[event.data["ticket"]["number"]]
    _visit_ended(state, ticket, event.at)
    if ticket.state == p.WAITING:
        state._dequeue(ticket)  # re-routed while waiting (its counter closed)
    elif ticket.counter is not None and state.counters[ticket.counter].current == ticket.number:
        state.counters[ticket.counter].current = None
        state.dirty.add(p.counter_part(ticket.counter))
    ticket.forwards += 1
    ticket.recalls, ticket.called_at = 0, None
    ticket.note = event.data.get("note") or ticket.note
    if "to_topic" in event.data:
        ticket.topic, ticket.to_counter = event.data["to_topic"], None
    else:
        ticket.to_counter = event.data["to_counter"]
    state._enqueue(ticket)
    state.dirty.add(p.HALL_PART)


def _on_feedback(state: HallState, event: p.Event) -> None:
    state.tickets[event.data["ticket"]["number"]].rated = True


def _on_counter(status: str) -> Any:
    def handler(state: HallState, event: p.Event) -> None:
        state._set_counter(event.data["counter"], status, event.at, event.data.get("reason"))
    return handler


_APPLY = {
    p.DAY_STARTED: _on_day_started,
    p.TICKET_ISSUED: _on_issued,
    p.TICKET_CALLED: _on_called,
    p.TICKET_DONE: _on_done,
    p.TICKET_NOSHOW: _on_noshow,
    p.TICKET_EXPIRED: _on_expired,
    p.TICKET_FORWARDED: _on_forwarded,
    p.TICKET_FEEDBACK: _on_feedback,
    p.COUNTER_OPENED: _on_counter(p.OPEN),
    p.COUNTER_PAUSED: _on_counter(p.PAUSED),
    p.COUNTER_CLOSED: _on_counter(p.CLOSED),
}
