"""The staffing search: the smallest set of open counters, hour by hour, that meets a target wait,
found by playing the simulated day (broker/simulate.py) forward from each hour with the counters tried."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from .config import HallConfig
from .scenario import DAY_S, Behaviour, StaffPlan, Visitor
from .simulate import DayResult, DaySim, TicketRecord, simulate_day


@dataclass(frozen=True)
class PlanSearch:
    plan: StaffPlan
    result: DayResult
    met: dict[int, bool]  # hour -> whether the target was met for that hour's arrivals
    trials: int


def plan_for_target(hall: HallConfig, day: date, visitors: Sequence[Visitor], behaviour: Behaviour,
                    target_s: float, share: float = 0.9) -> PlanSearch:
    """The smallest set of open counters, hour by hour, that calls `share` of each topic's visitors of
    that hour within `target_s`, and every one of them within twice that.

    Hour by hour from opening, from the state the day has reached at the top of the hour: counters are
    added one at a time, each time the one that leaves the fewest visitors late (tried by playing the
    day on until the hour's visitors are called or twice the target has passed), until no one is late
    or no counter helps any more; then each counter the hour can do without is taken away again. A
    later hour cannot help an earlier hour's visitors once their time has passed, so each hour is
    decided once, and the search costs a few dozen short runs an hour.
    """
    window = hall.hours.window(day)
    if window is None:
        raise ValueError(f"hall {hall.id} is closed on {day.isoformat()}")
    opens, closes = (float(t.hour * 3600 + t.minute * 60) for t in window)
    hours = [opens + k * 3600.0 for k in range(math.ceil((closes - opens) / 3600))]
    plan = StaffPlan(tuple((h, min(h + 3600.0, closes), frozenset()) for h in hours))
    sim = DaySim(hall, day, visitors, plan, behaviour, keep_events=False)
    met: dict[int, bool] = {}
    trials = 0
    order = list(hall.counters)
    for start in hours:
        end = min(start + 3600.0, closes)
        sim.run_until(start - 1e-6)
        checkpoint = sim.fork()

        horizon = end + 2 * target_s

        def late(counters: frozenset[str], *, start: float = start, end: float = end,
                 checkpoint: DaySim = checkpoint, horizon: float = horizon) -> tuple[dict[str, int], float]:
            """Who of the hour's visitors is late with these counters, and by how much in all."""
            nonlocal trials
            trials += 1
            trial = checkpoint.fork()
            trial.set_plan(trial.plan.with_slot(start, DAY_S, counters))
            trial.run_until(horizon)
            return _misses(trial.records, start, end, target_s, share), _lateness(trial.records, end, target_s,
                                                                                  horizon)

        def worse(a: tuple[dict[str, int], float], b: tuple[dict[str, int], float]) -> bool:
            return (sum(a[0].values()), a[1]) >= (sum(b[0].values()), b[1])

        staff: frozenset[str] = frozenset()
        now = late(staff)
        while now[0]:
            candidates = [c for c in order if c not in staff and any(hall.counters[c].serves(t) for t in now[0])]
            tried = {c: late(staff | {c}) for c in candidates}
            best = min(candidates, key=lambda c: (sum(tried[c][0].values()), tried[c][1]), default=None)
            if best is None or worse(tried[best], now):
                break  # no counter helps any more: the hour cannot meet the target from where the day is
            staff, now = staff | {best}, tried[best]
        misses = now[0]
        if not misses:
            for counter in reversed(order):
                if counter in staff and not late(staff - {counter})[0]:
                    staff = staff - {counter}
        met[int(start // 3600)] = not misses
        plan = plan.with_slot(start, end, staff)
        sim = checkpoint
        sim.set_plan(plan)
    # the day once more from the start with the plan found, keeping its events (for a report)
    return PlanSearch(plan=plan, result=simulate_day(hall, day, visitors, plan, behaviour), met=met, trials=trials)


def _lateness(records: Sequence[TicketRecord], end: float, target_s: float, horizon: float) -> float:
    """Seconds past the target up to the horizon, summed over everyone who drew a ticket before `end`
    (the hour's visitors and any still waiting from before): what more staff shortens even when
    no one gets in on time any more."""
    total = 0.0
    for record in records:
        if record.issued < end:
            called = horizon if record.called is None else record.called
            total += max(0.0, min(called, horizon) - record.issued - target_s)
    return total


def _misses(records: Sequence[TicketRecord], start: float, end: float, target_s: float,
            share: float) -> dict[str, int]:
    """Per topic, the visitors who drew a ticket in [start, end) and were called too late: beyond the
    share allowed over the target, and anyone beyond twice the target."""
    arrived: dict[str, int] = {}
    late: dict[str, int] = {}
    very_late: dict[str, int] = {}
    for record in records:
        if start <= record.issued < end:
            topic = record.topic
            arrived[topic] = arrived.get(topic, 0) + 1
            wait = math.inf if record.called is None else record.called - record.issued
            if wait > target_s:
                late[topic] = late.get(topic, 0) + 1
            if wait > 2 * target_s:
                very_late[topic] = very_late.get(topic, 0) + 1
    misses = {}
    for topic, count in arrived.items():
        allowed = math.floor(count * (1 - share) + 1e-9)
        missed = max(0, late.get(topic, 0) - allowed) + very_late.get(topic, 0)
        if missed:
            misses[topic] = missed
    return misses
