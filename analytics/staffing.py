"""The staffing search: the fewest counters, hour by hour, that call the target share of visitors in time
on the target share of many sampled days.

1. Each hour starts from its offered load and the Erlang C staffing for the target (Allen–Cunneen for visit
   lengths that are not exponential, analytics/erlang.py), pooled over the hall as if every counter served
   every topic: a floor no hour goes under, and the first guess.
2. Hour by hour from opening, on every sampled day at once (analytics/dayrunner.py): if the hour misses the
   target, the closed counter that serves the most late visitors' topics opens, until the hour meets it
   or no counter helps any more; then, if it still misses, counters open the hour before (the queue it
   leaves behind is too long). Every plan is tried on the same days (common random numbers).
3. Then, from the last hour back, each counter-hour of the whole plan is taken away if the plan still
   meets the target in every hour that met it (and no missed hour gets worse), replaying each day from
   that hour to its end: what is left is minimal as a whole, not only hour by hour.

An hour meets the target when, on at least `confidence` of the days, `share` of its visitors are called
within `wait_s`, and `share` of each topic's visitors of that hour over all the days are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from analytics import erlang
from analytics.dayrunner import AT_START, DayRunner, DayTally, Trial, allowed_failures
from analytics.demand import Demand, Load, offered_load, work_per_visitor
from analytics.scenario import DAY_S, Behaviour, StaffPlan, Visitor
from broker.config import HallConfig


@dataclass(frozen=True)
class Target:
    wait_s: float
    share: float = 0.9  # of an hour's visitors called within wait_s...
    confidence: float = 0.9  # ...on at least this share of the days


@dataclass(frozen=True)
class HourPlan:
    start: float
    end: float
    load: Load
    erlang: int  # Erlang C (Allen–Cunneen) counters for the target: the floor
    counters: frozenset[str]
    days_met: int  # days on which the hour called `share` of its visitors in time
    in_time: float  # share of the hour's visitors called in time, over all the days
    met: bool
    short: tuple[tuple[str, float], ...] = ()  # topics whose visitors of the hour, over all days, fell short


@dataclass(frozen=True)
class PlanSearch:
    plan: StaffPlan
    hours: tuple[HourPlan, ...]
    days: int
    days_all_met: int  # days on which every hour met the share
    trials: int

    @property
    def met(self) -> bool:
        return all(h.met for h in self.hours)


def hour_slots(hall: HallConfig, day: date) -> list[tuple[float, float]]:
    window = hall.hours.window(day)
    if window is None:
        raise ValueError(f"hall {hall.id} is closed on {day.isoformat()}")
    opens, closes = (float(t.hour * 3600 + t.minute * 60) for t in window)
    return [(opens + k * 3600.0, min(opens + (k + 1) * 3600.0, closes))
            for k in range(math.ceil((closes - opens) / 3600))]


def erlang_floor(hall: HallConfig, demand: Demand, behaviour: Behaviour, target: Target, start: float,
                 end: float) -> tuple[Load, int]:
    """The hour's offered load and the counters Erlang C needs for it (capped at the hall's counters)."""
    load = offered_load(hall, demand, behaviour, start, end)
    needed = erlang.counters_needed(load.load, load.service_s, target.wait_s, target.share,
                                    service_cv2=load.service_cv2, most=len(hall.counters))
    return load, min(needed, len(hall.counters))


def plan_for_target(hall: HallConfig, day: date, days: Sequence[tuple[Visitor, ...]], behaviour: Behaviour,
                    demand: Demand, target: Target, workers: int = 1) -> PlanSearch:
    """The robust plan for `days` (visitors sampled from `demand`, e.g. broker/demand.sample_days)."""
    slots = hour_slots(hall, day)
    floors = [erlang_floor(hall, demand, behaviour, target, start, end) for start, end in slots]
    plan = StaffPlan(tuple((start, end, frozenset[str]()) for start, end in slots))
    with DayRunner(hall, day, behaviour, days, target.wait_s, target.share, workers) as runner:
        search = _Search(hall, demand, behaviour, target, len(days), runner, slots, floors)
        plan = search.hour_by_hour(plan)
        plan, baseline = search.minimal(plan)
    # the baseline is the plan's own run: each removal kept replaced its hours with a replay to the day's end
    return _summary(plan, slots, floors, baseline, target, len(days), search.allowed, search.trials)


@dataclass
class _Search:
    """One staffing search over the sampled days: steps 2 and 3 of the module's description."""

    hall: HallConfig
    demand: Demand
    behaviour: Behaviour
    target: Target
    days: int
    runner: DayRunner
    slots: list[tuple[float, float]]
    floors: list[tuple[Load, int]]
    trials: int = 0

    @property
    def allowed(self) -> int:
        return allowed_failures(self.days, self.target.confidence)

    def trial(self, candidate: StaffPlan, start: float, until: float, first: int, must: tuple[int, ...] = (),
              limit: int = 1 << 30) -> list[DayTally] | None:
        self.trials += 1
        return self.runner.run(Trial(candidate, start, until, first, must, limit))

    def met(self, tallies: Sequence[DayTally], index: int) -> bool:
        return _met(tallies, index, self.target, self.days, self.allowed)

    def better(self, tried: Sequence[DayTally], than: Sequence[DayTally], index: int) -> bool:
        return _score(tried, index, self.target.share) > _score(than, index, self.target.share)

    def hour_by_hour(self, plan: StaffPlan) -> StaffPlan:
        """2. Hour by hour from opening, every day kept just before the hour being decided."""
        self.runner.begin(plan)
        for index, (start, end) in enumerate(self.slots):
            self.runner.advance(plan, start)
            staff, tallies = self._staff_hour(plan, index)
            plan = self._open_the_hour_before(plan, index, staff, tallies)
            plan = plan.with_slot(start, end, staff)
        return plan

    def _staff_hour(self, plan: StaffPlan, index: int) -> tuple[frozenset[str], list[DayTally]]:
        """From the first guess, the counter that helps most opens until the hour meets the target."""
        start, end = self.slots[index]
        staff = first_guess(self.hall, self.demand, self.behaviour, self.floors[index][1], start, end)
        until = end + self.target.wait_s
        tallies = self.trial(plan.with_slot(start, DAY_S, staff), start, until, index)
        assert tallies is not None
        while not self.met(tallies, index):
            extra = _most_helpful(self.hall, tallies, index, staff, self.target)
            if extra is None:
                break
            tried = self.trial(plan.with_slot(start, DAY_S, staff | {extra}), start, until, index)
            assert tried is not None
            if not self.better(tried, tallies, index):
                break  # the best counter left does not help: the hour cannot do better from here
            staff, tallies = staff | {extra}, tried
        return staff, tallies

    def _open_the_hour_before(self, plan: StaffPlan, index: int, staff: frozenset[str],
                              tallies: list[DayTally]) -> StaffPlan:
        """The queue the hour before leaves may be too long for this hour: open more the hour before."""
        start, end = self.slots[index]
        until = end + self.target.wait_s
        while index > 0 and not self.met(tallies, index):
            before_start, before_end = self.slots[index - 1]
            before = plan.counters_at(before_start)
            extra = _most_helpful(self.hall, tallies, index, before, self.target)
            if extra is None:
                break
            earlier = plan.with_slot(before_start, before_end, before | {extra})
            tried = self.trial(earlier.with_slot(start, DAY_S, staff), before_start, until, index)
            assert tried is not None
            if not self.better(tried, tallies, index):
                break
            plan, tallies = earlier, tried
            self.runner.rewind(plan, before_start, start)
        return plan

    def minimal(self, plan: StaffPlan) -> tuple[StaffPlan, list[DayTally]]:
        """3. Minimal as a whole: from the last hour back, each counter-hour the plan can do without goes."""
        slots, floors = self.slots, self.floors
        baseline = self.trial(plan, AT_START, math.inf, 0)
        assert baseline is not None
        # checkpoints only where a counter may go: hours that meet the target above their floor
        self.runner.checkpoint(plan, [start for index, (start, _) in enumerate(slots)
                                      if len(plan.counters_at(start)) > floors[index][1]
                                      and self.met(baseline, index)])
        order = list(self.hall.counters)
        for index in reversed(range(len(slots))):
            start, end = slots[index]
            met_now = [k for k in range(index, len(slots)) if self.met(baseline, k)]
            if index not in met_now:
                continue  # an hour that misses the target keeps every counter that helped it
            for counter in sorted(plan.counters_at(start), key=order.index, reverse=True):
                staff = plan.counters_at(start)
                if len(staff) <= floors[index][1]:
                    break
                candidate = plan.with_slot(start, end, staff - {counter})
                tried = self.trial(candidate, start, math.inf, index, tuple(met_now), self.allowed)
                if tried is None or not all(self.met(tried, k) for k in met_now):
                    continue
                if any(_score(tried, k, self.target.share)[1] < _score(baseline, k, self.target.share)[1]
                       for k in range(index, len(slots)) if k not in met_now):
                    continue  # a missed later hour must not get worse either
                plan = candidate
                baseline = [_merge(old, new, index) for old, new in zip(baseline, tried, strict=True)]
        return plan, baseline


def check_plan(hall: HallConfig, day: date, days: Sequence[tuple[Visitor, ...]], behaviour: Behaviour,
               demand: Demand, target: Target, plan: StaffPlan, workers: int = 1) -> PlanSearch:
    """How a plan does on `days` (e.g. days it was not found on), hour by hour, by the search's measure."""
    slots = hour_slots(hall, day)
    floors = [erlang_floor(hall, demand, behaviour, target, start, end) for start, end in slots]
    with DayRunner(hall, day, behaviour, days, target.wait_s, target.share, workers) as runner:
        tallies = runner.run(Trial(plan, AT_START, math.inf, 0))
    assert tallies is not None
    return _summary(plan, slots, floors, tallies, target, len(days), allowed_failures(len(days), target.confidence),
                    1)


def first_guess(hall: HallConfig, demand: Demand, behaviour: Behaviour, count: int, start: float,
                end: float) -> frozenset[str]:
    """`count` counters for the hour, chosen for its topics' loads: each time the counter whose first tier
    holds the most load not yet covered (a later tier counts a third), which then covers one counter's
    worth of its first tier's topics."""
    expected = demand.expected(start, end)
    uncovered = {t: expected[t] * work_per_visitor(hall, behaviour, t) / (end - start) for t in hall.topics}
    chosen: list[str] = []
    order = list(hall.counters)
    for _ in range(min(count, len(order))):
        def covers(counter: str) -> float:
            tiers = hall.counters[counter].tiers
            return sum(uncovered[t] * (1.0 if tier == 0 else 1 / 3)
                       for tier, topics in enumerate(tiers) for t in topics)
        best = max((c for c in order if c not in chosen), key=lambda c: (covers(c), -order.index(c)))
        chosen.append(best)
        first = hall.counters[best].tiers[0]
        total = sum(uncovered[t] for t in first)
        for t in first:
            uncovered[t] = max(0.0, uncovered[t] - (uncovered[t] / total if total else 1 / len(first)))
    return frozenset(chosen)


def _most_helpful(hall: HallConfig, tallies: Sequence[DayTally], slot: int, staff: frozenset[str],
                  target: Target) -> str | None:
    """The closed counter that serves the most of the hour's late visitors (a later tier counts a third)."""
    late: dict[str, int] = {}
    for day in tallies:
        for (s, topic), (arrived, in_time) in day.topics.items():
            if s == slot:
                late[topic] = late.get(topic, 0) + arrived - in_time
    order = list(hall.counters)
    best, best_score = None, 0.0
    for counter in order:
        if counter in staff:
            continue
        score = sum(late.get(t, 0) * (1.0 if tier == 0 else 1 / 3)
                    for tier, topics in enumerate(hall.counters[counter].tiers) for t in topics)
        if score > best_score:
            best, best_score = counter, score
    return best


def _met(tallies: Sequence[DayTally], slot: int, target: Target, days: int, allowed: int) -> bool:
    failing = sum(not day.met(slot, target.share) for day in tallies)
    return failing <= allowed and not _short_topics(tallies, slot, target)


def _short_topics(tallies: Sequence[DayTally], slot: int, target: Target) -> list[tuple[str, float]]:
    """Topics of which fewer than the share of the hour's visitors, over all the days, were called in time."""
    pooled: dict[str, tuple[int, int]] = {}
    for day in tallies:
        for (s, topic), (arrived, in_time) in day.topics.items():
            if s == slot:
                a, i = pooled.get(topic, (0, 0))
                pooled[topic] = (a + arrived, i + in_time)
    return sorted((t, i / a) for t, (a, i) in pooled.items() if i < target.share * a - 1e-9)


def _score(tallies: Sequence[DayTally], slot: int, share: float) -> tuple[int, int]:
    """(days the hour met the share, its visitors called in time): what more staff in the hour raises."""
    return (sum(day.met(slot, share) for day in tallies), sum(day.slots.get(slot, (0, 0))[1] for day in tallies))


def _merge(old: DayTally, new: DayTally, first_slot: int) -> DayTally:
    """A day's tally with the slots from `first_slot` on replaced by a trial's."""
    return DayTally(slots={**{k: v for k, v in old.slots.items() if k < first_slot}, **new.slots},
                    topics={**{k: v for k, v in old.topics.items() if k[0] < first_slot}, **new.topics})


def _summary(plan: StaffPlan, slots: Sequence[tuple[float, float]], floors: Sequence[tuple[Load, int]],
             tallies: Sequence[DayTally], target: Target, days: int, allowed: int, trials: int) -> PlanSearch:
    hours = []
    for index, (start, end) in enumerate(slots):
        arrived = sum(day.slots.get(index, (0, 0))[0] for day in tallies)
        in_time = sum(day.slots.get(index, (0, 0))[1] for day in tallies)
        hours.append(HourPlan(start=start, end=end, load=floors[index][0], erlang=floors[index][1],
                              counters=plan.counters_at(start),
                              days_met=sum(day.met(index, target.share) for day in tallies),
                              in_time=in_time / arrived if arrived else 1.0,
                              met=_met(tallies, index, target, days, allowed),
                              short=tuple(_short_topics(tallies, index, target))))
    all_met = sum(all(day.met(k, target.share) for k in range(len(slots))) for day in tallies)
    return PlanSearch(plan=plan, hours=tuple(hours), days=days, days_all_met=all_met, trials=trials)
