"""Erlang C and Allen–Cunneen (analytics/erlang.py) against values known in closed form and an exact
computation in rational numbers."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from analytics import erlang


def exact_erlang_c(counters: int, load: int) -> Fraction:
    """The textbook formula, term by term in exact rationals (no overflow, no rounding)."""
    a = Fraction(load)
    top = a ** counters / math.factorial(counters) * counters / (counters - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(counters)) + top)


@pytest.mark.parametrize(("counters", "load", "value"), [
    (1, 0.5, 0.5), (1, 0.9, 0.9),  # M/M/1: the probability of waiting is the load itself
    (2, 1.0, 1 / 3), (3, 2.0, 4 / 9),  # by hand: B(3, 2) = 4/19, C = 3 B / (3 - 2 (1 - B))
])
def test_erlang_c_of_small_queues_is_what_the_formula_gives_by_hand(counters: int, load: float,
                                                                     value: float) -> None:
    assert erlang.erlang_c(counters, load) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(("counters", "load"), [(5, 4), (10, 7), (30, 25), (100, 90), (300, 280)])
def test_erlang_c_matches_the_exact_formula_even_where_factorials_overflow_a_float(counters: int,
                                                                                    load: int) -> None:
    assert erlang.erlang_c(counters, load) == pytest.approx(float(exact_erlang_c(counters, load)), rel=1e-9)


def test_erlang_b_recursion_is_the_blocking_formula() -> None:
    a = Fraction(3)
    exact = a ** 5 / math.factorial(5) / sum(a ** k / math.factorial(k) for k in range(6))
    assert erlang.erlang_b(5, 3.0) == pytest.approx(float(exact), rel=1e-12)
    assert erlang.erlang_b(0, 3.0) == 1.0


def test_an_overloaded_or_empty_queue() -> None:
    assert erlang.erlang_c(3, 3.0) == 1.0 and erlang.mean_wait_s(3, 3.5, 60) == math.inf
    assert erlang.share_within(3, 4.0, 60, 600) == 0.0
    assert erlang.erlang_c(3, 0.0) == 0.0 and erlang.mean_wait_s(3, 0.0, 60) == 0.0
    assert erlang.counters_needed(0.0, 300, 600, 0.9) == 0


def test_mean_wait_of_m_m_1_and_allen_cunneen_for_fixed_visits() -> None:
    assert erlang.mean_wait_s(1, 0.8, 300) == pytest.approx(0.8 * 300 / 0.2)  # rho s / (1 - rho)
    # M/D/1 (visits of fixed length): Pollaczek–Khinchine gives half the M/M/1 wait, as Allen–Cunneen does
    assert erlang.mean_wait_s(1, 0.8, 300, service_cv2=0.0) == pytest.approx(0.8 * 300 / 0.2 / 2)


def test_share_within_is_one_minus_c_times_the_exponential_tail() -> None:
    c, a, s, t = 4, 3.0, 300.0, 120.0
    assert erlang.share_within(c, a, s, t) == pytest.approx(1 - erlang.erlang_c(c, a) * math.exp(-(c - a) * t / s))
    assert erlang.share_within(c, a, s, 0.0) == pytest.approx(1 - erlang.erlang_c(c, a))


@pytest.mark.parametrize(("load", "service_s", "target_s", "share"), [
    (4.7, 600, 1200, 0.9), (4.0, 600, 1200, 0.9), (0.3, 300, 60, 0.8), (45.0, 180, 20, 0.8), (9.5, 300, 0, 0.5),
])
def test_counters_needed_is_the_fewest_that_meet_the_share(load: float, service_s: float, target_s: float,
                                                           share: float) -> None:
    c = erlang.counters_needed(load, service_s, target_s, share)
    assert c > load
    assert erlang.share_within(c, load, service_s, target_s) >= share
    assert c - 1 <= load or erlang.share_within(c - 1, load, service_s, target_s) < share


def test_the_floor_is_well_above_two_counters_where_the_old_planner_gave_two() -> None:
    """Issue 16: with 10-minute visits and offered loads of 4.7 and 4.0 counters the old planner staffed 2;
    no target can make fewer counters than the load enough, and 90 % within 20 minutes needs more still."""
    assert erlang.counters_needed(4.7, 600, 1200, 0.9) > 5
    assert erlang.counters_needed(4.0, 600, 1200, 0.9) > 4
    assert erlang.counters_needed(4.7, 600, 1200, 0.9, most=3) == 4  # the hall's 3 counters do not suffice


def test_a_bad_share_is_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        erlang.counters_needed(2.0, 300, 600, 1.0)
