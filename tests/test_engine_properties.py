"""Random interleavings of every command, with the queue invariants checked after every step.

The checks do not ask the engine what it should have done: an independent model, built only
from the emitted events and the rules in DESIGN.md, predicts each reply code and who `next`
may call; the engine's own state is checked for one-place-per-ticket; a replica fed with the
JSON of the events must equal the live state (replay = live).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from broker import estimate
from broker import protocol as p
from broker.config import DEMO_HALL, HallConfig, load_hall
from broker.engine import MAX_NUMBER, Engine, Outcome
from broker.hallstate import HallState

HALL = load_hall(DEMO_HALL)
TZ = ZoneInfo(HALL.timezone)
MONDAY_7 = datetime(2026, 11, 30, 7, 0, tzinfo=TZ)
TOPICS = list(HALL.topics)
COUNTERS = list(HALL.counters)
TICKET_ONLY_OPS = ("recall", "noshow", "done", "forward")
ROLLOVER = {p.TICKET_EXPIRED, p.COUNTER_CLOSED, p.DAY_STARTED}


@dataclass
class Seen:
    """A ticket as the events have described it."""

    topic: str
    priority: bool
    order: int  # seq of its ticket.issued event
    status: str = p.WAITING
    to_counter: str | None = None
    forwarded_seq: int = 0
    recalls: int = 0


@dataclass
class Desk:
    status: str = p.CLOSED
    current: str | None = None


@dataclass
class Model:
    """The hall as the event stream tells it, and what DESIGN.md says must follow."""

    hall: HallConfig
    seq: int = 0
    day: str | None = None
    tickets: dict[str, Seen] = field(default_factory=dict)
    desks: dict[str, Desk] = field(default_factory=dict)
    issued: dict[str, set[str]] = field(default_factory=dict)  # day -> every number issued that day

    def __post_init__(self) -> None:
        self.desks = {c: Desk() for c in self.hall.counters}

    # ---------------------------------------------------------------- who may be called

    def tier_of(self, counter: str) -> dict[str, int]:
        return {topic: i for i, tier in enumerate(self.hall.counters[counter].tiers) for topic in tier}

    def eligible(self, counter: str, only: str | None) -> list[str]:
        """Everyone `next` at this counter may call, before precedence."""
        tiers = self.tier_of(counter)
        result = []
        for number, seen in self.tickets.items():
            if seen.status != p.WAITING:
                continue
            if seen.to_counter is not None:
                if seen.to_counter == counter and only is None:
                    result.append(number)
            elif seen.topic in tiers and (only is None or seen.topic == only):
                result.append(number)
        return result

    def check_precedence(self, number: str, counter: str, only: str | None) -> None:
        """Nobody waiting is skipped: forwarded here first, then the highest tier, topics by their longest waiter."""
        called = self.tickets[number]
        assert called.status == p.WAITING, f"{number} called while {called.status}"
        waiting = {n: self.tickets[n] for n in self.eligible(counter, only)}
        assert number in waiting, f"{number} is not someone counter {counter} may call (filter {only})"
        forwarded = sorted((s.forwarded_seq, n) for n, s in waiting.items() if s.to_counter == counter)
        if forwarded:
            assert number == forwarded[0][1], f"{number} called before {forwarded[0][1]} forwarded to {counter}"
            return
        tiers = self.tier_of(counter)
        tier = tiers[called.topic]
        heads: dict[str, tuple[int, int, str]] = {}
        longest: dict[str, tuple[int, str]] = {}
        for n, s in waiting.items():
            assert tiers[s.topic] >= tier, f"{n} in tier {tiers[s.topic]} skipped for {number} in tier {tier}"
            if tiers[s.topic] == tier:
                key = (0 if s.priority else 1, s.order, n)
                heads[s.topic] = min(heads.get(s.topic, key), key)
                longest[s.topic] = min(longest.get(s.topic, (s.order, n)), (s.order, n))
        assert heads[called.topic][2] == number, f"{heads[called.topic][2]} is ahead of {number} in its topic"
        first_topic = min(longest, key=lambda t: longest[t])
        assert first_topic == called.topic, (
            f"{longest[first_topic][1]} in {first_topic} has waited longer than anyone in {called.topic}")

    # ---------------------------------------------------------------- predicted replies

    def expected_code(self, role: str, device: str, op: str, args: dict[str, Any], now: datetime,
                      always_open: bool) -> str | None:
        """The reply code DESIGN.md and the engine's documented rules call for (None: ok)."""
        hall = self.hall
        if role == "admin":
            return None
        if role == "kiosk":
            if args["topic"] not in hall.topics:
                return p.Err.UNKNOWN_TOPIC
            if args.get("lang", hall.main_language) not in hall.languages:
                return p.Err.UNKNOWN_LANG
            if args.get("priority") and not hall.rules.priority_allowed:
                return p.Err.PRIORITY_NOT_ALLOWED
            if not always_open and not hall.hours.accepts_tickets(now):
                return p.Err.HALL_CLOSED
            letter = hall.topics[args["topic"]].letter
            if sum(n[0] == letter for n in self.issued.get(self.day or "", ())) >= MAX_NUMBER:
                return p.Err.NUMBERS_EXHAUSTED
            return None
        if device not in hall.counters:
            return p.Err.UNKNOWN_COUNTER
        desk = self.desks[device]
        if op == "next":
            only = args.get("topic")
            if only is not None and only not in hall.topics:
                return p.Err.UNKNOWN_TOPIC
            if only is not None and not hall.counters[device].serves(only):
                return p.Err.NOT_YOUR_TOPIC
            if desk.status == p.CLOSED:
                return p.Err.COUNTER_CLOSED
            return None if self.eligible(device, only) else p.Err.QUEUE_EMPTY
        if op in TICKET_ONLY_OPS and desk.current is None:
            return p.Err.NO_TICKET
        if op == "noshow" and self.tickets[desk.current or ""].recalls < hall.rules.noshow_after_recalls:
            return p.Err.TOO_FEW_RECALLS
        if op == "done" and any(m not in hall.topics for m in args.get("matters") or []):
            return p.Err.UNKNOWN_TOPIC
        if op == "forward":
            if "topic" in args:
                return None if args["topic"] in hall.topics else p.Err.UNKNOWN_TOPIC
            if args["counter"] not in hall.counters:
                return p.Err.UNKNOWN_COUNTER
            if args["counter"] == device:
                return p.Err.BAD_FIELD
            if self.desks[args["counter"]].status == p.CLOSED:
                return p.Err.COUNTER_CLOSED
        if op == "pause" and desk.status == p.CLOSED:
            return p.Err.COUNTER_CLOSED
        return None

    # ---------------------------------------------------------------- events

    def apply(self, event: p.Event, next_at: tuple[str, str | None] | None) -> None:
        """Follow one event; `next_at` is (counter, topic filter) when the command was a `next`."""
        assert event.seq == self.seq + 1, f"seq {event.seq} after {self.seq}"
        self.seq = event.seq
        data = event.data
        number = data["ticket"]["number"] if "ticket" in data else None
        if event.type == p.DAY_STARTED:
            assert self.day is None or data["day"] > self.day, f"day {data['day']} started again after {self.day}"
            assert all(d.status == p.CLOSED for d in self.desks.values()), "a counter left open over night"
            assert not any(s.status in (p.WAITING, p.CALLED) for s in self.tickets.values()), "a ticket left over"
            self.day = data["day"]
            self.tickets.clear()
            for desk in self.desks.values():
                desk.current = None
        elif event.type == p.TICKET_ISSUED:
            assert self.day is not None
            ticket = data["ticket"]
            topic = self.hall.topics[ticket["topic"]]
            today = self.issued.setdefault(self.day, set())
            assert number not in today, f"{number} issued twice on {self.day}"
            assert re.fullmatch(r"[A-Z]\d{3}", number) and number[0] == topic.letter
            assert int(number[1:]) == sum(n[0] == topic.letter for n in today) + 1, f"{number} skips a number"
            today.add(number)
            queue = [s for s in self.tickets.values()
                     if s.status == p.WAITING and s.to_counter is None and s.topic == topic.id]
            ahead = sum(s.priority for s in queue) if ticket["priority"] else len(queue)
            assert ticket["ahead"] == ahead, f"{number} was told {ticket['ahead']} ahead, not {ahead}"
            assert ticket["expected_wait_s"] > 0
            self.tickets[number] = Seen(topic=topic.id, priority=ticket["priority"], order=event.seq)
        elif event.type == p.TICKET_CALLED:
            seen, counter = self.tickets[number], data["counter"]
            desk = self.desks[counter]
            if data["recall"] == 0:
                assert next_at is not None and next_at[0] == counter, "a first call that no `next` asked for"
                self.check_precedence(number, counter, next_at[1])
                assert desk.status != p.CLOSED and desk.current is None, f"{counter} calls with a visit open"
                seen.status, seen.to_counter, seen.recalls = p.CALLED, None, 0
                desk.current = number
            else:
                assert desk.current == number and seen.status == p.CALLED
                assert data["recall"] == seen.recalls + 1
                seen.recalls += 1
        elif event.type in (p.TICKET_DONE, p.TICKET_NOSHOW):
            seen, desk = self.tickets[number], self.desks[data["counter"]]
            assert seen.status == p.CALLED and desk.current == number
            seen.status = p.DONE if event.type == p.TICKET_DONE else p.NOSHOW
            desk.current = None
        elif event.type == p.TICKET_EXPIRED:
            seen = self.tickets[number]
            assert seen.status in (p.WAITING, p.CALLED)
            for desk in self.desks.values():
                if desk.current == number:
                    desk.current = None
            seen.status, seen.to_counter = p.EXPIRED, None
        elif event.type == p.TICKET_FORWARDED:
            seen, desk = self.tickets[number], self.desks[data["counter"]]
            if seen.status == p.CALLED:
                assert desk.current == number
                desk.current = None
            else:
                assert seen.status == p.WAITING and seen.to_counter == data["counter"], "re-routed from elsewhere"
            seen.status, seen.recalls = p.WAITING, 0
            if "to_topic" in data:
                seen.topic, seen.to_counter = data["to_topic"], None
            else:
                assert self.desks[data["to_counter"]].status != p.CLOSED, "forwarded to a closed counter"
                seen.to_counter, seen.forwarded_seq = data["to_counter"], event.seq
        elif event.type in (p.COUNTER_OPENED, p.COUNTER_PAUSED, p.COUNTER_CLOSED):
            desk = self.desks[data["counter"]]
            desk.status = {p.COUNTER_OPENED: p.OPEN, p.COUNTER_PAUSED: p.PAUSED}.get(event.type, p.CLOSED)
            if desk.status == p.CLOSED:
                assert desk.current is None, "closed with a visit open"
                assert not any(s.to_counter == data["counter"] and s.status == p.WAITING
                               for s in self.tickets.values()), "closed with visitors waiting for it"
        else:
            raise AssertionError(f"unknown event {event.type}")


def state_view(state: HallState) -> dict[str, Any]:
    """Everything replay must reproduce, compared at once (so no copy is needed).

    A ticket's fields are compared whole: they are what its public() dict is made from, plus
    the issue order and origin topic that decide the queue.
    """
    return {
        "seq": state.seq, "day": state.day,
        "tickets": {n: vars(t) for n, t in state.tickets.items()},
        "waiting": state.waiting, "counters": {c: vars(s) for c, s in state.counters.items()},
        "service": state.service_time_s, "next": state.next_number, "issued": state.issued_today,
        "calls": state.calls,
    }


def check_places(state: HallState) -> None:
    """Every ticket is in exactly one state and, while open, in exactly one place."""
    places: Counter[str] = Counter()
    for topic, keys in state.waiting.items():
        assert keys == sorted(keys), f"queue {topic} out of order"
        for key in keys:
            ticket = state.tickets[key[2]]
            assert (ticket.state, ticket.topic, ticket.to_counter) == (p.WAITING, topic, None), key
            assert key[:2] == ticket.sort_key
            places[ticket.number] += 1
    for counter_id, counter in state.counters.items():
        for number in counter.forwarded:
            ticket = state.tickets[number]
            assert (ticket.state, ticket.to_counter) == (p.WAITING, counter_id), number
            places[number] += 1
        if counter.current is not None:
            ticket = state.tickets[counter.current]
            assert (ticket.state, ticket.counter) == (p.CALLED, counter_id), counter.current
            places[counter.current] += 1
        if counter.status == p.CLOSED:
            assert counter.current is None and counter.forwarded == [], f"closed counter {counter_id} holds tickets"
    for number, ticket in state.tickets.items():
        assert ticket.state in p.TICKET_STATES
        expected = 1 if ticket.state in (p.WAITING, p.CALLED) else 0
        assert places[number] == expected, f"{number} ({ticket.state}) is in {places[number]} places"
    assert state.issued_today == len(state.tickets)


def json_copy(event: p.Event) -> p.Event:
    """The event as the store and a listener see it: through JSON."""
    return p.Event.from_payload(json.loads(p.encode(event.payload())))


class Hall:
    """The engine under test, the independent model, a replica, and the checks after each step."""

    def __init__(self, *, always_open: bool, start: datetime) -> None:
        self.engine = Engine(HALL, always_open=always_open)
        self.always_open = always_open
        self.now = start
        self.model = Model(HALL)
        self.replica = HallState(HALL)
        self.log: list[p.Event] = []
        self.ids = itertools.count(1)
        self.outcomes: Counter[str] = Counter()

    def _absorb(self, events: list[p.Event], next_at: tuple[str, str | None] | None = None) -> None:
        for event in events:
            copied = json_copy(event)
            self.replica.apply(copied)
            self.model.apply(copied, next_at)
            self.log.append(copied)

    def command(self, role: str, device: str, op: str, **args: Any) -> Outcome:
        args = {k: v for k, v in args.items() if v is not None}
        seq, day = self.engine.state.seq, self.engine.state.day
        new_day = day is None or self.now.date().isoformat() > day
        outcome = self.engine.handle(p.Command(f"c{next(self.ids)}", role, device, op, args), self.now)
        events = outcome.events
        split = next((i + 1 for i, e in enumerate(events) if e.type == p.DAY_STARTED), 0)
        assert bool(split) == new_day, "a day rollover exactly when the date moves on"
        assert all(e.type in ROLLOVER and e.data.get("reason", "day_end") == "day_end" for e in events[:split])
        self._absorb(events[:split])
        expected = self.model.expected_code(role, device, op, args, self.now, self.always_open)
        code = None if outcome.ok else outcome.reply["error"]["code"]
        assert code == expected, (role, device, op, args, outcome.reply)
        next_at = (device, args.get("topic")) if op == "next" else None
        self._absorb(events[split:], next_at)
        if not outcome.ok:
            assert events[split:] == [], f"refusal {code} emitted {events[split:]}"
            assert self.engine.state.seq == seq + split
        self.outcomes[f"{op}:{code or 'ok'}"] += 1
        return outcome

    def tick(self) -> None:
        events = self.engine.tick(self.now)
        assert all(e.type in ROLLOVER for e in events)
        after_close = [e for e in events if e.data.get("reason") == "after_close"]
        if after_close:
            assert not self.always_open
            closes = HALL.hours.closing_time(self.now.date(), TZ)
            assert closes is not None
            assert self.now >= closes + timedelta(minutes=HALL.rules.expire_after_close_min)
            assert all(self.model.tickets[e.data["ticket"]["number"]].status == p.WAITING
                       for e in after_close), "expired a visitor who was being served"
        self._absorb(events)
        if after_close:
            assert not any(s.status == p.WAITING for s in self.model.tickets.values()), "expiry left someone"

    def check(self) -> None:
        state = self.engine.state
        check_places(state)
        assert self.model.seq == state.seq == self.replica.seq
        assert self.model.day == state.day
        assert set(self.model.tickets) == set(state.tickets)
        for number, seen in self.model.tickets.items():
            ticket = state.tickets[number]
            assert (ticket.state, ticket.topic, ticket.to_counter) == (seen.status, seen.topic, seen.to_counter)
        for counter_id, desk in self.model.desks.items():
            assert (state.counters[counter_id].status, state.counters[counter_id].current) == (desk.status,
                                                                                               desk.current)
        assert state_view(self.replica) == state_view(state), "replaying the events gives another state"

    def full_replay(self) -> None:
        fresh = HallState(HALL)
        for event in self.log:
            fresh.apply(event)
        assert state_view(fresh) == state_view(self.engine.state)


# ---------------------------------------------------------------- hypothesis: stateful

topic_ids = st.sampled_from([*TOPICS, "dragons"])
langs = st.sampled_from([None, *HALL.languages, "pl"])  # pl: a language the hall does not speak
notes = st.none() | st.text(max_size=10)


class QueueMachine(RuleBasedStateMachine):
    """Counters are drawn mostly from where the action is (open ones call, busy ones serve), so that
    short runs reach deep queues; any counter, or one the hall does not have, keeps refusals in play."""

    hall: Hall | None = None

    @initialize(always_open=st.booleans(), minutes=st.integers(50, 600) | st.integers(0, 11 * 60),
                opened=st.sets(st.sampled_from(COUNTERS)))
    def start(self, always_open: bool, minutes: int, opened: set[str]) -> None:
        self.hall = Hall(always_open=always_open, start=MONDAY_7 + timedelta(minutes=minutes))
        for counter in sorted(opened):
            self.hall.command("counter", counter, "open")

    @property
    def h(self) -> Hall:
        assert self.hall is not None
        return self.hall

    def counter(self, data: st.DataObject, where: str) -> str:
        desks = self.h.model.desks
        likely = {
            "busy": [c for c, d in desks.items() if d.current is not None],
            "working": [c for c, d in desks.items() if d.status != p.CLOSED],
            "ready": [c for c, d in desks.items() if d.status != p.CLOSED and self.h.model.eligible(c, None)],
            "closed": [c for c, d in desks.items() if d.status == p.CLOSED],
        }[where]
        if likely and data.draw(st.integers(0, 9), label="elsewhere") < 9:  # 0, the simplest draw, is likely
            return data.draw(st.sampled_from(likely), label=where)
        return data.draw(st.sampled_from([*COUNTERS, "99"]), label="any counter")

    @rule(topic=topic_ids, lang=langs, priority=st.booleans())
    def issue(self, topic: str, lang: str | None, priority: bool) -> None:
        self.h.command("kiosk", "K1", "issue", topic=topic, lang=lang, priority=priority)

    @rule(topics=st.lists(st.sampled_from(TOPICS), min_size=1, max_size=4), priority=st.booleans())
    def crowd(self, topics: list[str], priority: bool) -> None:
        """A few visitors at once, the last maybe with priority."""
        for index, topic in enumerate(topics):
            self.h.command("kiosk", "K1", "issue", topic=topic, priority=priority and index == len(topics) - 1)

    @rule(data=st.data(), only=st.none() | st.none() | st.none() | topic_ids)
    def next(self, data: st.DataObject, only: str | None) -> None:
        self.h.command("counter", self.counter(data, "ready"), "next", topic=only)

    @rule(data=st.data(), outcome=st.sampled_from(p.OUTCOMES))
    def serve(self, data: st.DataObject, outcome: str) -> None:
        """The everyday cycle: call the next visitor, then finish the visit."""
        counter = self.counter(data, "ready")
        if self.h.command("counter", counter, "next").ok:
            self.h.command("counter", counter, "done", outcome=outcome)

    @rule(data=st.data())
    def open(self, data: st.DataObject) -> None:
        self.h.command("counter", self.counter(data, "closed"), "open")

    @rule(data=st.data(), op=st.sampled_from(["recall", "recall", "noshow"]))
    def recall_or_noshow(self, data: st.DataObject, op: str) -> None:
        self.h.command("counter", self.counter(data, "busy"), op)

    @rule(data=st.data(), op=st.sampled_from(["pause", "close"]), reason=st.none() | st.just("lunch"))
    def pause_or_close(self, data: st.DataObject, op: str, reason: str | None) -> None:
        self.h.command("counter", self.counter(data, "working"), op, reason=reason if op == "pause" else None)

    @rule(data=st.data(), outcome=st.sampled_from(p.OUTCOMES), matters=st.none() | st.lists(topic_ids, max_size=3))
    def done(self, data: st.DataObject, outcome: str, matters: list[str] | None) -> None:
        self.h.command("counter", self.counter(data, "busy"), "done", outcome=outcome, matters=matters)

    @rule(data=st.data(), to_topic=st.none() | topic_ids, note=notes)
    def forward(self, data: st.DataObject, to_topic: str | None, note: str | None) -> None:
        counter = self.counter(data, "busy")
        if to_topic is not None:
            self.h.command("counter", counter, "forward", topic=to_topic, note=note)
        else:
            self.h.command("counter", counter, "forward", counter=self.counter(data, "working"), note=note)

    @rule(minutes=st.integers(0, 20) | st.integers(0, 20) | st.integers(60, 36 * 60))
    def advance(self, minutes: int) -> None:
        self.h.now += timedelta(minutes=minutes)

    @rule(minutes=st.integers(1, 180))
    def step_back(self, minutes: int) -> None:
        """NTP may step the clock back, even over midnight."""
        self.h.now -= timedelta(minutes=minutes)

    @rule()
    def tick(self) -> None:
        self.h.tick()

    @rule(op=st.sampled_from(["ping", "state"]))
    def admin(self, op: str) -> None:
        self.h.command("admin", "cli", op)

    @precondition(lambda self: self.hall is not None)
    @invariant()
    def invariants_hold(self) -> None:
        self.h.check()

    @precondition(lambda self: self.hall is not None)
    @invariant()
    def the_estimate_calls_whom_the_engine_calls(self) -> None:
        """One rule for who is next: the wait's play-forward picks, from its copy of the queues, the very
        ticket `Engine.pick_next` calls, at every counter in every state the walk reaches."""
        engine = self.h.engine
        for counter in COUNTERS:
            lanes = estimate._Lanes(engine.state, estimate.MAX_PICKS)
            forwarded = deque(engine.state.tickets[n].topic for n in engine.state.counters[counter].forwarded)
            picked = estimate._pick(HALL.counters[counter].tiers, lanes, forwarded)
            ticket = engine.pick_next(counter)
            if ticket is None:
                assert picked is None
            elif ticket.to_counter == counter:
                assert picked == (ticket.topic, 0)  # the play-forward knows a forwarded ticket by its topic only
            else:
                assert picked == (ticket.topic, ticket.order)

    def teardown(self) -> None:
        if self.hall is not None:
            self.hall.full_replay()


QueueMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
TestQueueMachine = QueueMachine.TestCase


# ---------------------------------------------------------------- long random days


def _any(choices: list[Any], rng: random.Random) -> Any:
    """One of the choices, drawing one number whatever their count: the walk's later steps stay the same
    when the hall gets another language."""
    return choices[int(rng.random() * len(choices))]


def random_walk(seed: int, steps: int, *, always_open: bool) -> Hall:
    """A busy hall over several days: queues grow long enough for tiers and priorities to matter.

    Staff act mostly where it makes sense (a counter with a visitor recalls, finishes or forwards;
    an open one calls next), with enough nonsense mixed in to keep every refusal in play.
    """
    rng = random.Random(seed)
    hall = Hall(always_open=always_open, start=MONDAY_7 + timedelta(minutes=rng.randrange(120)))

    def pick(where: list[str]) -> str:
        if where and rng.random() < 0.85:
            return rng.choice(where)
        return rng.choice(COUNTERS) if rng.random() < 0.95 else "99"

    for _ in range(steps):
        desks = hall.model.desks
        busy = [c for c, d in desks.items() if d.current is not None]
        working = [c for c, d in desks.items() if d.status != p.CLOSED]
        roll = rng.random()
        if roll < 0.25:
            hall.command("kiosk", "K1", "issue", topic=rng.choice(TOPICS) if rng.random() < 0.97 else "dragons",
                         lang=_any([None, *HALL.languages], rng), priority=rng.random() < 0.15)
        elif roll < 0.45:
            only = rng.choice(TOPICS) if rng.random() < 0.15 else None
            hall.command("counter", pick(working), "next", topic=only)
        elif roll < 0.50:
            hall.command("counter", pick([c for c in COUNTERS if c not in working]), "open")
        elif roll < 0.56:
            hall.command("counter", pick(busy), "recall")
        elif roll < 0.60:
            counter = pick(busy)
            if counter in busy and rng.random() < 0.5:  # the visitor never comes: recall, recall, no-show
                for _ in range(HALL.rules.noshow_after_recalls):
                    hall.command("counter", counter, "recall")
            hall.command("counter", counter, "noshow")
        elif roll < 0.70:
            matters = rng.sample(TOPICS, rng.randrange(3)) if rng.random() < 0.3 else None
            hall.command("counter", pick(busy), "done", outcome=rng.choice(p.OUTCOMES), matters=matters)
        elif roll < 0.76:
            if rng.random() < 0.5:
                hall.command("counter", pick(busy), "forward", topic=rng.choice(TOPICS), note="n")
            else:
                hall.command("counter", pick(busy), "forward", counter=pick(working))
        elif roll < 0.78:
            hall.command("counter", pick(working), "pause", reason="lunch")
        elif roll < 0.80:
            hall.command("counter", pick(working), "close")
        elif roll < 0.96:
            hall.now += timedelta(minutes=rng.choice([0, 1, 2, 5]))
        elif roll < 0.98:
            hall.tick()
        elif not always_open and not HALL.hours.accepts_tickets(hall.now):
            hall.now += timedelta(minutes=rng.choice([30, 90, 240]))  # the evening passes
            hall.tick()
            reopen = HALL.hours.next_opening(hall.now)
            if reopen is not None and rng.random() < 0.5:
                hall.now = reopen + timedelta(minutes=rng.randrange(60))
        elif rng.random() < 0.1:
            hall.now += timedelta(hours=rng.choice([3, 8, 16]))
            hall.tick()
        elif rng.random() < 0.05:
            hall.now -= timedelta(hours=rng.choice([1, 10]))  # NTP steps the clock back, maybe over midnight
        hall.check()
    hall.full_replay()
    return hall


@pytest.mark.parametrize(("seed", "always_open"), [(1, False), (2, False), (3, False), (4, True), (5, True)])
def test_long_random_days_keep_every_invariant(seed: int, always_open: bool) -> None:
    hall = random_walk(seed, 3000, always_open=always_open)
    outcomes = hall.outcomes
    # the walk really exercised the queue, not only refusals
    assert outcomes["issue:ok"] > 100 and outcomes["next:ok"] > 100
    assert outcomes["forward:ok"] > 5 and outcomes["noshow:ok"] > 0 and outcomes["next:queue_empty"] > 0
    assert sum(1 for e in hall.log if e.type == p.DAY_STARTED) >= 2
