"""A day in the hall on a simulated clock, through the same engine the server runs.

Visitors draw tickets, staff press "next", serve, forward, recall and mark no-shows, take a break
and go home, all as commands to `broker.engine.Engine`, so every rule of the real hall (tiers,
forwarded tickets first, priority, opening hours, the last-ticket cutoff, the expected wait
printed on each ticket) is the one that is simulated. Nothing here reads a clock or a file:
the CLI (`analytics/simulate_cli.py`) does that. What a day is made of (visitors, behaviour, the
staffing plan) is in analytics/scenario.py, the search for a staffing plan in analytics/staffing.py.
"""

from __future__ import annotations

import heapq
import math
import pickle
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal, assert_never

from analytics.scenario import (
    DAY_S,
    Behaviour,
    StaffPlan,
    Visitor,
    arrivals_from_log,
    behaviour_from_figures,
    capacity_per_hour,
    clock_text,
    default_mix,
    default_visitors,
    format_plan,
    full_plan,
    make_visitors,
    parse_arrivals,
    parse_plan,
    staff_speeds,
    ticket_window,
    weekday_arrivals,
    weekday_profile,
)
from broker import protocol as p
from broker.config import HallConfig
from broker.engine import Engine
from broker.estimate import Estimate, simple_wait_s
from broker.stats import percentile

__all__ = [  # the scenario's names too: one import for whoever simulates
    "DAY_S", "Behaviour", "DayResult", "DaySim", "Engine", "Estimator", "HourWaits", "StaffPlan", "TicketRecord",
    "Visitor", "arrivals_from_log", "behaviour_from_figures", "capacity_per_hour", "clock_text", "day_waits",
    "default_mix", "default_visitors", "format_plan", "full_plan", "make_visitors", "parse_arrivals", "parse_plan",
    "simulate_day", "simulate_days", "staff_speeds", "ticket_window", "waits_per_hour", "weekday_arrivals",
    "weekday_profile",
]

Kind = Literal["arrive", "end", "recall", "back", "shift", "tick", "midnight"]
"""What can happen next in a simulated day; `DaySim._happen` says which method handles each."""

Estimator = Callable[[Any, str, int], int]
"""(hall state as the ticket was drawn, topic, people ahead) -> seconds: another estimate to compare."""


# ---------------------------------------------------------------- the day

@dataclass
class TicketRecord:
    """What happened to one visitor's ticket (the simulator's own bookkeeping, beside the event log)."""

    visitor: int
    number: str
    topic: str
    issued: float
    ahead: int
    expected_s: int
    range_s: tuple[int, int]
    simple_s: int  # the simple estimate, as other systems would have printed it
    called: float | None = None
    first_counter: str | None = None
    others: dict[str, int] = field(default_factory=dict)  # further estimates to compare (bench)


@dataclass
class _Desk:
    id: str
    status: str = p.CLOSED  # as the engine sees it
    busy: bool = False  # a visit (or a recall round) is under way
    idle_since: float = 0.0
    opened_at: float | None = None
    took_break: bool = False
    closing: bool = False  # close as soon as the visit under way ends


REFUSAL_REASONS = {p.Err.HALL_CLOSED: "after the last-ticket time", p.Err.NUMBERS_EXHAUSTED: "numbers ran out"}


@dataclass
class DayResult:
    day: date
    records: list[TicketRecord]
    events: list[p.Event]
    refused: int  # arrivals the engine refused (after the cutoff, numbers exhausted)
    refusals: dict[str, int] = field(default_factory=dict)  # the same by the engine's error code
    expired_at_midnight: int = 0  # tickets still open when the day ran past midnight (the server's rollover)

    def refusal_text(self) -> str:
        """'3 refused (numbers ran out)': each reason as the engine gave it."""
        reasons = ", ".join(f"{count} {REFUSAL_REASONS.get(code, code)}" for code, count in
                            sorted(self.refusals.items()))
        return f"{self.refused} refused ({reasons})" if self.refused else ""


class DaySim:
    """One day of one hall; `run()` plays it out, `run_until()` stops at a moment (staffing search)."""

    def __init__(self, hall: HallConfig, day: date, visitors: Sequence[Visitor], plan: StaffPlan,
                 behaviour: Behaviour, *, engine: Engine | None = None, keep_events: bool = True,
                 estimators: Mapping[str, Estimator] | None = None, estimates: bool = True) -> None:
        """`estimates=False`: tickets carry no expected wait (a third of the time a day takes, and nothing in
        the day depends on it): for the staffing search, which only needs who was called when."""
        self.hall, self.day, self.visitors, self.plan, self.behaviour = hall, day, visitors, plan, behaviour
        self.estimators = dict(estimators or {})
        self.estimates = estimates
        self.engine = engine or (Engine(hall) if estimates else _EngineWithoutEstimates(hall))
        self.midnight = datetime.combine(day, time(0), hall.tz)
        self.keep_events = keep_events
        self.events: list[p.Event] = []
        self.records: list[TicketRecord] = []
        self.by_number: dict[str, TicketRecord] = {}
        self.visits: dict[str, int] = {}  # ticket number -> visits so far
        self.desks = {c: _Desk(c) for c in hall.counters}
        self.refused = 0
        self.refusals: dict[str, int] = {}
        self.expired_at_midnight = 0
        self.now = 0.0
        self._ids = 0
        self._heap: list[tuple[float, int, Kind, Any]] = []
        self._order = 0
        window = hall.hours.window(day)
        if window is None:
            raise ValueError(f"hall {hall.id} is closed on {day.isoformat()}")
        self.opens, self.closes = (float(t.hour * 3600 + t.minute * 60) for t in window)
        for index, visitor in enumerate(visitors):
            self._push(visitor.at, "arrive", index)
        marks = set(plan.boundaries()) | {self.opens + k * 900.0 for k in range(int((self.closes - self.opens)
                                                                                    // 900) + 1)}
        for mark in sorted(marks):
            self._push(mark, "shift", None)
        self._push(self.closes + hall.rules.expire_after_close_min * 60.0, "tick", None)
        self._push(float(DAY_S), "midnight", None)

    # ------------------------------------------------------------ running

    def run(self) -> DayResult:
        self.run_until(math.inf)
        return DayResult(self.day, self.records, self.events, self.refused, dict(self.refusals),
                         self.expired_at_midnight)

    def run_until(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= until:
            at, _, kind, arg = heapq.heappop(self._heap)
            self.now = at
            self._happen(kind, arg)

    def _happen(self, kind: Kind, arg: Any) -> None:
        match kind:
            case "arrive":
                self._on_arrive(arg)
            case "end":
                self._on_end(arg)
            case "recall":
                self._on_recall(arg)
            case "back":
                self._on_back(arg)
            case "shift":
                self._on_shift(arg)
            case "tick":
                self._on_tick(arg)
            case "midnight":
                self._on_midnight(arg)
            case _:  # mypy proves this unreachable; at run time a kind pushed by mistake stops the day loudly
                assert_never(kind)

    def set_plan(self, plan: StaffPlan) -> None:
        self.plan = plan
        for mark in plan.boundaries():
            if mark >= self.now:
                self._push(mark, "shift", None)

    def _push(self, at: float, kind: Kind, arg: Any) -> None:
        self._order += 1
        heapq.heappush(self._heap, (at, self._order, kind, arg))

    def moment(self, seconds: float) -> datetime:
        return self.midnight + timedelta(seconds=seconds)

    def _send(self, role: str, device: str, op: str, **args: Any) -> dict[str, Any]:
        self._ids += 1
        command = p.Command(id=f"sim{self._ids}", role=role, device=device, op=op, args=args)
        outcome = self.engine.handle(command, self.moment(self.now))
        if self.keep_events:
            self.events.extend(outcome.events)
        return outcome.reply

    # ------------------------------------------------------------ visitors

    def _on_arrive(self, index: int) -> None:
        visitor = self.visitors[index]
        state = self.engine.state
        args: dict[str, Any] = {"topic": visitor.topic, "priority": visitor.priority}
        if visitor.lang:
            args["lang"] = visitor.lang
        reply = self._send("kiosk", "sim", "issue", **args)
        if not reply["ok"]:
            self.refused += 1
            code = reply["error"]["code"]
            self.refusals[code] = self.refusals.get(code, 0) + 1
            return
        ticket = reply["result"]["ticket"]
        # what the counters and the service time were when it was drawn (an issue changes neither)
        simple = simple_wait_s(state, visitor.topic, ticket["ahead"]) if self.estimates else 0
        low, high = ticket.get("expected_wait_range_s", [ticket["expected_wait_s"]] * 2)
        record = TicketRecord(visitor=index, number=ticket["number"], topic=visitor.topic, issued=self.now,
                              ahead=ticket["ahead"], expected_s=ticket["expected_wait_s"], range_s=(low, high),
                              simple_s=simple,
                              others={name: estimator(state, visitor.topic, ticket["ahead"])
                                      for name, estimator in self.estimators.items()})
        self.records.append(record)
        self.by_number[record.number] = record
        self.visits[record.number] = 0
        self._wake(visitor.topic, None)

    def _wake(self, topic: str | None, counter: str | None) -> None:
        """Someone new is waiting: idle counters that could take them press next, longest idle first."""
        idle = [d for d in self.desks.values() if d.status == p.OPEN and not d.busy
                and (d.id == counter or (topic is not None and self.hall.counters[d.id].serves(topic)))]
        for desk in sorted(idle, key=lambda d: (d.idle_since, d.id)):
            self._next(desk)

    # ------------------------------------------------------------ counters

    def _next(self, desk: _Desk) -> None:
        """The counter is free: it closes, takes its break, calls the next visitor or waits for one."""
        was_busy, desk.busy = desk.busy, False
        nobody = self.engine.pick_next(desk.id) is None
        if desk.closing or (nobody and self.now >= self.closes and desk.id not in self.plan.counters_at(self.now)):
            self._close(desk)
            return
        if self._break_due(desk):
            self._send("counter", desk.id, "pause", reason="break")
            desk.status, desk.took_break = p.PAUSED, True
            self._push(self.now + self.behaviour.break_s, "back", desk.id)
            return
        if nobody:
            if was_busy:
                desk.idle_since = self.now
            return
        reply = self._send("counter", desk.id, "next")
        if not reply["ok"]:  # cannot happen after pick_next; keep the day going if it does
            desk.idle_since = self.now
            return
        desk.busy = True
        number = reply["result"]["ticket"]["number"]
        record = self.by_number[number]
        visitor = self.visitors[record.visitor]
        visit = self.visits[number]
        self.visits[number] = visit + 1
        if record.called is None:
            record.called, record.first_counter = self.now, desk.id
        if visit == 0 and visitor.leaves:
            self._push(self.now + self.behaviour.recall_after_s, "recall", (desk.id, number))
            return
        topic = self.engine.state.tickets[number].topic
        mean = self.behaviour.mean_service_s(self.hall, topic, desk.id)
        self._push(self.now + self.behaviour.visit_length(mean, visitor.service_z[min(visit, 1)]), "end",
                   (desk.id, number))

    def _break_due(self, desk: _Desk) -> bool:
        if desk.took_break or desk.opened_at is None:
            return False
        index = list(self.hall.counters).index(desk.id)
        due = desk.opened_at + self.behaviour.break_after_s + index * self.behaviour.break_stagger_s
        return self.now >= due and self.now < self.closes - 3600

    def _close(self, desk: _Desk) -> None:
        sent_back = {self.engine.state.tickets[n].topic for n in self.engine.state.counters[desk.id].forwarded}
        if desk.status != p.CLOSED:
            self._send("counter", desk.id, "close")
        desk.status, desk.busy, desk.closing, desk.opened_at = p.CLOSED, False, False, None
        for topic in sorted(sent_back):  # tickets forwarded here went back to their topic's queue
            self._wake(topic, None)

    def _on_end(self, arg: tuple[str, str]) -> None:
        counter, number = arg
        desk = self.desks[counter]
        visitor = self.visitors[self.by_number[number].visitor]
        ticket = self.engine.state.tickets[number]
        if ticket.state == p.CALLED and ticket.counter == counter:
            forward = visitor.forward if self.visits[number] == 1 else None
            target = self._forward_counter(forward, counter) if forward and visitor.to_counter else None
            if target is not None:
                self._send("counter", counter, "forward", counter=target)
                self._wake(None, target)
            elif forward is not None:
                self._send("counter", counter, "forward", topic=forward)
                self._wake(forward, None)
            else:
                self._send("counter", counter, "done", outcome="handed_on" if visitor.handed_on else "resolved")
        self._next(desk)

    def _forward_counter(self, topic: str, here: str) -> str | None:
        for counter in self.hall.home_counters(topic):
            if counter.id != here and self.desks[counter.id].status != p.CLOSED:
                return counter.id
        return None

    def _on_recall(self, arg: tuple[str, str]) -> None:
        counter, number = arg
        ticket = self.engine.state.tickets[number]
        if ticket.state != p.CALLED or ticket.counter != counter:
            self._next(self.desks[counter])
            return
        if ticket.recalls < self.hall.rules.noshow_after_recalls:
            self._send("counter", counter, "recall")
            self._push(self.now + self.behaviour.recall_after_s, "recall", arg)
        else:
            self._send("counter", counter, "noshow")
            self._next(self.desks[counter])

    def _on_back(self, counter: str) -> None:
        desk = self.desks[counter]
        if desk.status != p.PAUSED:
            return
        if counter not in self.plan.counters_at(self.now):
            self._close(desk)
            return
        self._send("counter", counter, "open")
        desk.status, desk.busy, desk.idle_since = p.OPEN, True, self.now
        self._next(desk)

    def _on_shift(self, _: None) -> None:
        staffed = self.plan.counters_at(self.now)
        for desk in self.desks.values():
            if desk.id in staffed and desk.status == p.CLOSED:
                self._send("counter", desk.id, "open")
                desk.status, desk.busy, desk.opened_at, desk.idle_since = p.OPEN, True, self.now, self.now
                self._next(desk)
            elif desk.id in staffed:
                desk.closing = False
            elif desk.status != p.CLOSED and desk.id not in staffed:
                if self.now >= self.closes and self.engine.pick_next(desk.id) is not None:
                    continue  # after closing time, staff serve everyone who has a ticket
                if desk.busy:
                    desk.closing = True
                elif desk.status != p.PAUSED:
                    self._close(desk)

    def _on_tick(self, _: None) -> None:
        events = self.engine.tick(self.moment(self.now))
        if self.keep_events:
            self.events.extend(events)

    def _on_midnight(self, _: None) -> None:
        """The day ran past midnight (a long queue at a late closing): the server's rollover expires every
        ticket still open and closes the counters, so the simulated day ends here as the real one would."""
        state = self.engine.state
        if all(t.state not in (p.WAITING, p.CALLED) for t in state.tickets.values()) and \
                all(c.status == p.CLOSED for c in state.counters.values()):
            self._heap.clear()  # the day was over before midnight: the next day starts with its first command
            return
        events = self.engine.tick(self.moment(self.now))
        if self.keep_events:
            self.events.extend(events)
        self.expired_at_midnight = sum(1 for e in events if e.type == p.TICKET_EXPIRED)
        self._heap.clear()  # visits under way and calls to come belong to a day the server has closed
        for desk in self.desks.values():
            desk.status, desk.busy, desk.closing = p.CLOSED, False, False

    # ------------------------------------------------------------ checkpoints

    def fork(self) -> DaySim:
        """An independent copy to try something on. The hall, the visitors and the behaviour never change
        and are shared, not copied; the rest goes through a pickle round trip (faster than copy.deepcopy)."""
        shared = (self.hall, self.visitors, self.behaviour)
        state = self.engine.state
        self.hall = self.visitors = self.behaviour = self.engine.hall = state.hall = None  # type: ignore[assignment]
        try:
            data = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            self.hall, self.visitors, self.behaviour = shared
            self.engine.hall = state.hall = shared[0]
        copy: DaySim = pickle.loads(data)
        copy.hall, copy.visitors, copy.behaviour = shared
        copy.engine.hall = copy.engine.state.hall = shared[0]
        return copy

    def forget_before(self, moment: float) -> None:
        """Drop what only the past needs: finished tickets and the records of visitors who drew their
        ticket before `moment` and have been called. A copy of the day (`fork`) is then quicker to make;
        what happens from here on does not change (the staffing search keeps its checkpoints so)."""
        state = self.engine.state
        state.tickets = {n: t for n, t in state.tickets.items() if t.state in (p.WAITING, p.CALLED)}
        self.records = [r for r in self.records if r.issued >= moment or r.called is None]
        self.by_number = {n: r for n, r in self.by_number.items() if n in state.tickets}
        self.visits = {n: v for n, v in self.visits.items() if n in state.tickets}


class _EngineWithoutEstimates(Engine):
    """The engine with no expected wait on its tickets (the staffing search never reads them)."""

    def expected_wait(self, topic: str, priority: bool = False, now: datetime | None = None) -> Estimate:
        return Estimate(0, 0, 0)


def simulate_day(hall: HallConfig, day: date, visitors: Sequence[Visitor], plan: StaffPlan | None = None,
                 behaviour: Behaviour | None = None, *, engine: Engine | None = None,
                 keep_events: bool = True, estimators: Mapping[str, Estimator] | None = None,
                 estimates: bool = True) -> DayResult:
    sim = DaySim(hall, day, visitors, plan or full_plan(hall, day), behaviour or Behaviour(),
                 engine=engine, keep_events=keep_events, estimators=estimators, estimates=estimates)
    return sim.run()


WEEKDAY_LOAD = (1.1, 1.0, 1.05, 0.95, 0.85, 0.6, 0.5)  # Mondays are busy, Fridays quiet


def simulate_days(hall: HallConfig, first: date, days: int, *, seed: int = 1, visitors: int | None = None,
                  plan: StaffPlan | None = None, behaviour: Behaviour | None = None) -> list[DayResult]:
    """Consecutive open days through one engine (its model learns on), e.g. a week for a report."""
    engine = Engine(hall)
    behaviour = behaviour or Behaviour(speed=staff_speeds(hall, seed))
    results: list[DayResult] = []
    day = first
    while len(results) < days:
        if hall.hours.window(day) is not None:
            count = visitors if visitors is not None else round(
                default_visitors(hall, day) * WEEKDAY_LOAD[day.weekday()]
                * random.Random(f"load-{seed}-{day.isoformat()}").uniform(0.9, 1.1))
            arrivals = weekday_arrivals(hall, day, count, seed + day.toordinal())
            people = make_visitors(hall, arrivals, behaviour, seed + day.toordinal())
            results.append(simulate_day(hall, day, people, plan if plan is not None else full_plan(hall, day),
                                        behaviour, engine=engine))
        day += timedelta(days=1)
    return results


# ---------------------------------------------------------------- waits per hour

@dataclass(frozen=True)
class HourWaits:
    hour: int
    arrivals: int
    called: int
    mean_s: float | None
    p90_s: float | None  # None when fewer than 90 % of the hour's visitors were ever called
    max_s: float | None
    within: float | None  # share called within the target (when one is given)


def waits_per_hour(records: Iterable[TicketRecord], target_s: float | None = None) -> list[HourWaits]:
    """Waits of the visitors who drew their ticket in each hour (a visitor never called counts as too late)."""
    by_hour: dict[int, list[float | None]] = {}
    for record in records:
        by_hour.setdefault(int(record.issued // 3600), []).append(
            None if record.called is None else record.called - record.issued)
    return [_waits(hour, by_hour[hour], target_s) for hour in sorted(by_hour)]


def day_waits(records: Sequence[TicketRecord], target_s: float | None = None) -> HourWaits:
    """The same for the whole day (hour -1)."""
    return _waits(-1, [None if r.called is None else r.called - r.issued for r in records], target_s)


def _waits(hour: int, waits: list[float | None], target_s: float | None) -> HourWaits:
    known = sorted(w for w in waits if w is not None)
    # a visitor never called waited longer than anyone called: past them the 90th percentile is unknown
    p90 = percentile(known + [math.inf] * (len(waits) - len(known)), 0.9)
    return HourWaits(
        hour=hour, arrivals=len(waits), called=len(known),
        mean_s=sum(known) / len(known) if known else None,
        p90_s=None if p90 is None or math.isinf(p90) else p90,
        max_s=known[-1] if known else None,
        within=None if target_s is None or not waits else sum(1 for w in known if w <= target_s) / len(waits))
