"""The simulator against queueing theory, and the robust staffing plan (analytics/staffing.py) against Erlang C
and against days it has not seen.

The M/M/c halls start each replication in the queue's steady state (a number of visitors already there,
drawn from the stationary distribution), so every visitor who comes after opening sees the long-run
queue (PASTA) and no warm-up is thrown away; the confidence intervals come from independent replications.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from analytics import erlang
from analytics import simulate as sim
from analytics.demand import demand_from_history, demand_from_profile, offered_load, sample_days
from analytics.staffing import PlanSearch, Target, check_plan, plan_for_target
from broker.config import HallConfig, load_hall
from tests.test_simulate import tiny_hall_toml

MONDAY = date(2026, 11, 30)
EXPONENTIAL = sim.Behaviour(service_dist="exponential", leave_share=0.0, forward_share={"one": 0.0},
                            handed_on_share=0.0, priority_share=0.0, break_after_s=1e9)
T_995 = {29: 2.756}  # Student's t, two-sided 99 %, by degrees of freedom


def one_topic_hall(folder: Path, counters: int, service_s: float, hours: str = "08:00-17:00") -> HallConfig:
    path = folder / f"mmc-{counters}.toml"
    path.write_text(tiny_hall_toml(counters=counters, service_min=service_s / 60, hours=hours,
                                   rules='expire_after_close_min = 240\nnumbers = "wrap"'))
    return load_hall(path)


def stationary_count(rng: random.Random, counters: int, load: float) -> int:
    """Visitors in an M/M/c hall at a random moment: P(n) ~ a^n / n! up to c, then a^c / c! rho^(n - c)."""
    rho = load / counters
    head = [load ** n / math.factorial(n) for n in range(counters + 1)]
    total = sum(head) + head[-1] * rho / (1 - rho)
    u, n, acc = rng.random() * total, 0, 0.0
    while True:
        acc += head[n] if n <= counters else head[-1] * rho ** (n - counters)
        if u < acc:
            return n
        n += 1


def ci(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    half = T_995[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


# ---------------------------------------------------------------- the simulator is an M/M/c queue

@pytest.mark.slow
@pytest.mark.parametrize(("counters", "rho", "visitors"), [(1, 0.5, 300), (1, 0.9, 500), (3, 0.7, 400),
                                                           (6, 0.5, 500), (6, 0.9, 1000)])
def test_the_simulator_waits_as_erlang_c_says_in_an_m_m_c_hall(tmp_path: Path, counters: int, rho: float,
                                                               visitors: int) -> None:
    """Poisson arrivals, exponential visits of 60 s, `counters` counters at load rho: over 30 replications of
    about `visitors` each, the mean wait and the share who wait at all hold Erlang C's values within their
    99 % confidence intervals, and those intervals are narrow enough to catch a simulator that is off."""
    service_s, replications = 60.0, 30
    hall = one_topic_hall(tmp_path, counters, service_s, hours="06:00-23:00")
    load = rho * counters
    rate = load / service_s
    length = visitors / rate  # seconds of arrivals
    opens = 6 * 3600.0
    assert opens + length < 23 * 3600
    means, waited = [], []
    for replication in range(replications):
        rng = random.Random(f"mmc-{counters}-{rho}-{replication}")
        arrivals: list[tuple[float, str]] = [(opens, "one")] * stationary_count(rng, counters, load)
        moment = opens + rng.expovariate(rate)
        while moment < opens + length:
            arrivals.append((moment, "one"))
            moment += rng.expovariate(rate)
        people = sim.make_visitors(hall, arrivals, EXPONENTIAL, replication)
        result = sim.simulate_day(hall, MONDAY, people, None, EXPONENTIAL, keep_events=False, estimates=False)
        waits = [r.called - r.issued for r in result.records if r.issued > opens and r.called is not None]
        assert len(waits) == len(arrivals) - sum(1 for at, _ in arrivals if at == opens)  # everyone was called
        means.append(statistics.mean(waits))
        waited.append(sum(w > 0 for w in waits) / len(waits))
    mean_wait = erlang.mean_wait_s(counters, load, service_s)
    low, high = ci(means)
    assert low <= mean_wait <= high, (low, mean_wait, high)
    assert high - low < mean_wait  # the interval is informative: a simulator half off would show
    low, high = ci(waited)
    assert low <= erlang.erlang_c(counters, load) <= high, (low, erlang.erlang_c(counters, load), high)
    assert high - low < 0.1


# ---------------------------------------------------------------- the robust plan

def flat(_: float) -> float:
    return 1.0


@pytest.fixture(scope="module")
def mm_hall(tmp_path_factory: pytest.TempPathFactory) -> HallConfig:
    """One topic, twelve counters, 10-minute exponential visits, open 08:00-13:00."""
    return one_topic_hall(tmp_path_factory.mktemp("mm"), 12, 600.0, hours="08:00-13:00")


TARGET = Target(wait_s=600, share=0.8, confidence=0.9)


@pytest.fixture(scope="module")
def mm_plan(mm_hall: HallConfig) -> tuple[PlanSearch, Callable[[int, int], list[tuple[sim.Visitor, ...]]]]:
    """The plan for 30 sampled days of the weekday profile's morning (about 125 visitors a day)."""
    demand = demand_from_profile(mm_hall, MONDAY, 125)

    def days(first: int, count: int) -> list[tuple[sim.Visitor, ...]]:
        return sample_days(mm_hall, demand, EXPONENTIAL, count, first_seed=first)

    return plan_for_target(mm_hall, MONDAY, days(1, 30), EXPONENTIAL, demand, TARGET), days


@pytest.mark.slow
def test_the_plan_is_never_below_erlang_c_for_the_same_target(mm_hall: HallConfig, mm_plan: Any) -> None:
    search, _ = mm_plan
    demand = demand_from_profile(mm_hall, MONDAY, 125)
    for hour in search.hours:
        # the load from the demand directly: expected visitors of the hour x the mean visit
        expected = sum(demand.expected(hour.start, hour.end).values())
        load = expected * 600 / (hour.end - hour.start)
        needed = erlang.counters_needed(load, 600, TARGET.wait_s, TARGET.share)
        assert hour.load.load == pytest.approx(load)
        assert hour.erlang == needed
        assert len(hour.counters) >= needed, sim.clock_text(hour.start)
    assert search.met and max(h.load.load for h in search.hours) > 3  # a real morning peak was staffed for


@pytest.mark.slow
def test_a_plan_found_on_days_1_to_30_meets_the_target_on_30_new_days(mm_hall: HallConfig, mm_plan: Any) -> None:
    search, days = mm_plan
    demand = demand_from_profile(mm_hall, MONDAY, 125)
    fresh = check_plan(mm_hall, MONDAY, days(31, 30), EXPONENTIAL, demand, TARGET, search.plan)
    assert all(h.days_met == 30 for h in search.hours)  # found with a margin for the days not sampled...
    assert all(h.days_met >= 27 for h in fresh.hours), [(sim.clock_text(h.start), h.days_met) for h in fresh.hours]
    # ...so that on new days each hour meets the share on the promised 90 % of them


@pytest.mark.slow
def test_the_plan_is_minimal_as_a_whole(mm_hall: HallConfig, mm_plan: Any) -> None:
    """Taking any one counter-hour away either goes under the Erlang C floor or misses the target in some
    hour on the very days the plan was found on."""
    search, days = mm_plan
    demand = demand_from_profile(mm_hall, MONDAY, 125)
    sampled = days(1, 30)
    for hour in search.hours:
        if len(hour.counters) <= hour.erlang:
            continue
        fewer = search.plan.with_slot(hour.start, hour.end, sorted(hour.counters)[1:])
        assert not check_plan(mm_hall, MONDAY, sampled, EXPONENTIAL, demand, TARGET, fewer).met


def test_worker_processes_find_the_same_plan(tmp_path: Path) -> None:
    hall = one_topic_hall(tmp_path, 6, 600.0, hours="08:00-11:00")
    demand = demand_from_profile(hall, MONDAY, 60, profile=flat)
    days = sample_days(hall, demand, EXPONENTIAL, 6)
    here = plan_for_target(hall, MONDAY, days, EXPONENTIAL, demand, TARGET, workers=1)
    there = plan_for_target(hall, MONDAY, days, EXPONENTIAL, demand, TARGET, workers=2)
    assert there.plan == here.plan and there.hours == here.hours


# ---------------------------------------------------------------- the demand

def test_demand_from_history_keeps_each_hours_visitors_and_how_days_vary(tmp_path: Path) -> None:
    hall = one_topic_hall(tmp_path, 2, 300.0)
    quiet = [(9 * 3600.0 + 60 * k, "one") for k in range(30)]  # 30 between 09:00 and 09:30
    busy = [(9 * 3600.0 + 30 * k, "one") for k in range(90)]  # 90 between 09:00 and 09:45
    demand = demand_from_history(hall, MONDAY, [quiet, busy])
    assert demand.visitors == pytest.approx(60)
    assert sum(demand.expected(9 * 3600, 10 * 3600).values()) == pytest.approx(60, rel=0.05)
    assert sorted(demand.volume) == [0.5, 1.5]
    counts = [len(day) for day in sample_days(hall, demand, EXPONENTIAL, 40)]
    assert min(counts) < 45 and max(counts) > 75  # quiet days and busy days, as in the log
    assert statistics.mean(counts) == pytest.approx(60, rel=0.15)
    load = offered_load(hall, demand, EXPONENTIAL, 9 * 3600, 10 * 3600)
    assert load.service_s == 300 and load.service_cv2 == pytest.approx(1.0)
    assert load.load == pytest.approx(load.arrivals * 300 / 3600)
