"""The expected wait (broker/estimate.py): what it learns, how it plays the queue forward, its range.

The demo hall: general questions (A) are served first by counters 1 and 2 and second by counter 3;
taxes (E) second by 1 and 2, first by 3 (with parking) and second by 6; permits (B) first by 4.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import simulate as sim
from broker import protocol as p
from broker.config import HallConfig
from broker.engine import Engine
from broker.estimate import estimate_wait, simple_wait_s
from broker.hallstate import HallState
from broker.waitmodel import (
    FACTOR_WEIGHT,
    HIGH_TAU,
    LOW_TAU,
    PACE_MIN_SPAN_S,
    PACE_WINDOW_S,
    PAIR_TRUST,
    PAIR_WEIGHT,
    PAUSE_DEFAULT_S,
    PAUSE_WEIGHT,
    WaitModel,
)
from tests.test_engine import GENERAL_S, Desk

TAXES_S = 8 * 60.0


@pytest.fixture
def desk(hall: HallConfig) -> Desk:
    return Desk(hall)


def now_ts(desk: Desk) -> float:
    return desk.clock.now().timestamp()


def test_a_free_counter_calls_at_once(desk: Desk) -> None:
    desk.at("1", "open")
    assert desk.issue()["expected_wait_s"] == 1


def test_a_visit_under_way_holds_its_counter_until_its_expected_end(desk: Desk) -> None:
    desk.at("1", "open")
    desk.issue()
    desk.issue()
    desk.call("1")
    desk.clock.advance(seconds=120)
    # counter 1 is free in 300 - 120 s; then A002, then the new ticket
    assert desk.issue()["expected_wait_s"] == (GENERAL_S - 120) + GENERAL_S


def test_a_visit_past_its_expected_length_still_has_half_of_one_to_go(desk: Desk) -> None:
    desk.at("1", "open")
    desk.issue()
    desk.call("1")
    desk.clock.advance(seconds=290)
    assert desk.issue()["expected_wait_s"] == GENERAL_S / 2


def test_a_ticket_forwarded_to_a_counter_is_served_there_first(desk: Desk) -> None:
    desk.at("1", "open")
    desk.at("4", "open")
    desk.issue()
    desk.call("1")
    desk.clock.advance(seconds=GENERAL_S)  # a visit of the usual length: nothing new learned
    desk.at("1", "forward", counter="4")
    # counter 4 takes the forwarded general visitor before its own permits: one general visit at counter 4
    assert desk.issue("permits")["expected_wait_s"] == GENERAL_S


def test_a_priority_ticket_passes_the_queue_of_its_topic(desk: Desk) -> None:
    desk.at("1", "open")
    desk.issue()
    desk.call("1")  # busy for 300 s
    for _ in range(3):
        desk.issue()
    assert desk.issue(priority=True)["expected_wait_s"] == GENERAL_S
    assert desk.issue()["expected_wait_s"] == 5 * GENERAL_S  # A002-A004 and the priority ticket first


def test_a_paused_counter_comes_back_after_its_usual_pause(desk: Desk) -> None:
    desk.at("1", "open")
    desk.at("1", "pause", reason="coffee")
    desk.clock.advance(minutes=5)
    assert desk.issue()["expected_wait_s"] == PAUSE_DEFAULT_S - 300


def test_the_pause_length_is_learned(desk: Desk) -> None:
    desk.at("1", "open")
    desk.at("1", "pause")
    desk.clock.advance(minutes=10)
    desk.at("1", "open")
    assert desk.state.model.pause_s == pytest.approx(PAUSE_DEFAULT_S + PAUSE_WEIGHT * (600 - PAUSE_DEFAULT_S))


def test_a_counter_serves_its_first_tier_before_a_topic_of_a_later_tier(desk: Desk) -> None:
    desk.at("1", "open")
    desk.issue()
    desk.call("1")
    desk.issue()  # A002 waits
    # the taxes ticket waits for A001's visit and then A002's: counter 1 serves general first
    assert desk.issue("taxes")["expected_wait_s"] == 2 * GENERAL_S


def test_later_visitors_of_a_topic_served_first_at_a_shared_counter_are_expected(desk: Desk) -> None:
    """General questions come every 180 s today; counters 1 and 2 take them before taxes."""
    desk.at("1", "open")
    desk.at("2", "open")
    desk.issue()
    desk.call("1")  # A001 at counter 1: free in 300 s
    desk.clock.advance(seconds=100)
    desk.issue()
    desk.call("2")  # A002 at counter 2: free in 300 s, i.e. 100 s after counter 1
    quiet = estimate_wait(desk.state, "taxes", False, now_ts(desk))
    assert quiet.wait_s == 200  # no pace yet: counter 1 is free first and takes the taxes ticket
    model, now = desk.state.model, now_ts(desk)
    model.day_start = now - 3 * 3600
    model.issues.clear()
    for k in range(10):  # ten general tickets in the last half hour: one every 180 s
        model.saw_issue("general", now - k * 180)
    assert model.arrival_gap_s("general", now) == 180
    # the next general visitor comes at +180, before counter 1 is free at +200, and takes it; counter 2 is
    # free at +300, before the following one at +360, and takes the taxes ticket
    assert estimate_wait(desk.state, "taxes", False, now).wait_s == 300


def test_service_time_per_topic_and_counter_is_learned(hall: HallConfig) -> None:
    model = WaitModel.for_hall({t.id: t.service_time_min for t in hall.topics.values()})
    model.saw_visit("general", "1", 400.0)
    pair = GENERAL_S + PAIR_WEIGHT * (400 - GENERAL_S)
    factor = 1 + FACTOR_WEIGHT * (400 / GENERAL_S - 1)
    mean = GENERAL_S + PAIR_WEIGHT / 2 * (400 - GENERAL_S)
    assert model.topic_s["general"] == pytest.approx(mean)
    assert model.factor["1"] == pytest.approx(factor)
    # one visit seen: the counter's own figure counts for 1/PAIR_TRUST, the topic's mean x its speed for the rest
    assert model.service_s("general", "1") == pytest.approx((pair + (PAIR_TRUST - 1) * mean * factor) / PAIR_TRUST)
    assert model.service_s("general", "2") == pytest.approx(mean)  # another counter: the topic's mean
    assert model.service_s("taxes", "1") == pytest.approx(TAXES_S * factor)  # a slow counter is slow at taxes too
    for _ in range(100):
        model.saw_visit("general", "1", 400.0)
    assert model.service_s("general", "1") == pytest.approx(400.0, abs=1.0)


def test_an_unknown_topic_teaches_nothing(hall: HallConfig) -> None:
    model = WaitModel.for_hall({"general": 5})
    model.saw_visit("dragons", "1", 400.0)
    assert model.pair_s == {} and model.factor == {}


def test_a_pace_needs_a_few_tickets_and_a_burst_counts_over_ten_minutes(hall: HallConfig) -> None:
    model = WaitModel.for_hall({"general": 5})
    model.saw_issue("general", 1000.0)
    model.saw_issue("general", 1000.5)
    assert model.arrival_gap_s("general", 1001.0) is None  # two tickets are no pace
    for i in range(28):
        model.saw_issue("general", 1001.0 + i * 0.001)
    assert model.arrival_gap_s("general", 1002.0) == PACE_MIN_SPAN_S / 30
    assert model.arrival_gap_s("general", 1002.0 + PACE_WINDOW_S) is None  # half an hour later: gone quiet
    model.new_day()
    assert model.arrival_gap_s("general", 2000.0) is None


def test_range_learns_to_hold_four_in_five_real_waits(hall: HallConfig) -> None:
    """Errors of (real - promised) / (promised + service time) spread evenly over [-0.5, 1.5]: the
    running quantiles settle at the 10th and 90th percentiles, -0.3 and 1.3."""
    model = WaitModel.for_hall({"general": 5})
    rng = random.Random(3)
    for _ in range(20000):
        promised = rng.uniform(0, 1800)
        error = rng.uniform(-0.5, 1.5)
        model.saw_first_call("general", promised, promised + error * (promised + GENERAL_S))
    assert model.low_q == pytest.approx(-0.5 + 2 * LOW_TAU, abs=0.06)
    assert model.high_q == pytest.approx(-0.5 + 2 * HIGH_TAU, abs=0.06)
    low, high = model.range_for("general", 600)
    assert low == math.floor(600 + model.low_q * 900) and high == math.ceil(600 + model.high_q * 900)


def test_the_simple_estimate_is_service_time_times_ahead_over_open_counters(desk: Desk) -> None:
    desk.at("1", "open")
    desk.at("3", "open")  # serves general in its second tier: the simple estimate counts it all the same
    assert simple_wait_s(desk.state, "general", 4) == 4 * GENERAL_S / 2
    assert simple_wait_s(desk.state, "permits", 3) == 3 * 14 * 60  # none open: its first-tier counter assumed


def test_the_model_is_carried_to_the_next_day_and_a_replay_learns_the_same(hall: HallConfig) -> None:
    engine = Engine(hall)
    results = sim.simulate_days(hall, date(2026, 11, 30), 2, seed=5, visitors=120)
    events = [e for r in results for e in r.events]
    for event in events:
        engine.state.apply(event)
    second_day = next(e for e in events if e.type == p.DAY_STARTED and e.data["day"] == "2026-12-01")
    carried = second_day.data["model"]
    assert carried["calibrated"] > 0 and carried["pair_s"]
    # replaying from the day's start (as the server does after a restart) gives the same model as all days
    replayed = HallState(hall)
    replayed.seq = second_day.seq - 1
    for event in events[events.index(second_day):]:
        replayed.apply(event)
    assert replayed.model.snapshot() == engine.state.model.snapshot()
    assert replayed.model.issues == engine.state.model.issues


def test_restore_drops_topics_the_hall_no_longer_has(hall: HallConfig) -> None:
    model = WaitModel.for_hall({"general": 5})
    model.restore({"topic_s": {"general": 200, "dragons": 100}, "pair_s": {"general/1": 210, "dragons/1": 5},
                   "pair_n": {"general/1": 3, "dragons/1": 3}, "factor": {"1": 1.1}, "pause_s": 600,
                   "range_q": [-0.2, 0.7], "calibrated": 9})
    assert model.topic_s == {"general": 200.0}
    assert model.pair_s == {("general", "1"): 210.0} and model.pair_n == {("general", "1"): 3}
    assert (model.pause_s, model.low_q, model.high_q, model.calibrated) == (600.0, -0.2, 0.7, 9)


# ---------------------------------------------------------------- properties

ACTIONS = st.lists(st.tuples(st.sampled_from(["issue", "issue", "issue", "next", "done", "open", "pause", "close",
                                              "forward"]),
                             st.sampled_from(["general", "permits", "parking", "social", "taxes", "appointments"]),
                             st.sampled_from(["1", "2", "3", "4", "5", "6"]), st.booleans(),
                             st.integers(min_value=0, max_value=900)),
                   max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_every_estimate_is_at_least_a_second_inside_its_range_and_grows_with_the_queue(hall: HallConfig,
                                                                                      actions: list) -> None:
    desk = Desk(hall, always_open=True)
    for op, topic, counter, flag, seconds in actions:
        desk.clock.advance(seconds=seconds)
        if op == "issue":
            desk.send("kiosk", "K1", "issue", topic=topic, priority=flag)
        elif op == "forward":
            desk.send("counter", counter, "forward", topic=topic)
        elif op == "done":
            desk.send("counter", counter, "done", outcome="resolved")
        else:
            desk.send("counter", counter, op)
        for name in hall.topics:
            for priority in (False, True):
                estimate = estimate_wait(desk.state, name, priority, now_ts(desk))
                assert 1 <= estimate.wait_s < 10 ** 7
                assert 0 <= estimate.low_s <= estimate.wait_s <= estimate.high_s
    for name in hall.topics:  # two tickets drawn in the same second: the second never waits less
        first = desk.issue(name)["expected_wait_s"]
        assert desk.issue(name)["expected_wait_s"] >= first


def test_the_bench_scenario_beats_the_simple_estimate(hall: HallConfig) -> None:
    """Three simulated days (the bench replays twenty): the model's mean error is well under the simple one's."""
    behaviour = sim.Behaviour(speed=sim.staff_speeds(hall, 4))
    engine = Engine(hall)
    errors: dict[str, list[float]] = {"model": [], "simple": []}
    day = date(2026, 11, 30)
    for offset in range(3):
        today = day + timedelta(days=offset)
        people = sim.make_visitors(hall, sim.weekday_arrivals(hall, today, sim.default_visitors(hall, today, 0.95),
                                                              offset), behaviour, offset)
        for record in sim.simulate_day(hall, today, people, None, behaviour, engine=engine,
                                       keep_events=False).records:
            if record.called is not None:
                real = record.called - record.issued
                errors["model"].append(abs(record.expected_s - real))
                errors["simple"].append(abs(record.simple_s - real))
    model, simple = (sum(v) / len(v) for v in (errors["model"], errors["simple"]))
    assert model < 0.8 * simple, (model, simple)


def test_a_queue_too_long_to_play_through_is_finished_at_the_pace_played(desk: Desk) -> None:
    """150 ahead, two free counters of 300 s visits: the ticket is the 151st, called after 75 rounds."""
    desk.at("1", "open")
    desk.at("2", "open")
    for _ in range(150):
        desk.issue()
    estimate = desk.issue()["expected_wait_s"]
    assert estimate == pytest.approx(75 * GENERAL_S, rel=0.02)
    assert desk.issue()["expected_wait_s"] >= estimate
