"""Erlang C and Allen–Cunneen: the waits of a queue served by c counters, in closed form.

The staffing search (analytics/staffing.py) uses these as a floor and a first guess for each hour: no plan
staffs an hour below what the offered load needs in a steady state. Pure functions, no I/O.

Symbols: `load` a = arrival rate x mean visit length (in counters' worth of work), `counters` c, `service_s`
the mean visit length. Erlang C holds for Poisson arrivals and exponential visits (M/M/c); for other visit
lengths the Allen–Cunneen approximation scales the waits by (ca² + cs²) / 2, the squared coefficients of
variation of the times between arrivals and of the visits.
"""

from __future__ import annotations

import math


def erlang_b(counters: int, load: float) -> float:
    """The blocking probability of M/M/c/c, by the recursion B(k) = a B(k-1) / (k + a B(k-1)), B(0) = 1:
    every step is a ratio of numbers between 0 and 1, so it neither overflows nor loses precision for
    hundreds of counters (the textbook formula's a^c / c! overflows a float beyond c = 170)."""
    if counters < 0 or load < 0:
        raise ValueError("counters and load must not be negative")
    blocking = 1.0
    for k in range(1, counters + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(counters: int, load: float) -> float:
    """P(a visitor waits at all) in M/M/c: C = c B / (c - a (1 - B)); 1 when the load is c or more."""
    if load <= 0:
        return 0.0
    if load >= counters:
        return 1.0
    blocking = erlang_b(counters, load)
    return counters * blocking / (counters - load * (1 - blocking))


def _wait_scale(arrival_cv2: float, service_cv2: float) -> float:
    return (arrival_cv2 + service_cv2) / 2


def mean_wait_s(counters: int, load: float, service_s: float, arrival_cv2: float = 1.0,
                service_cv2: float = 1.0) -> float:
    """The mean wait before being called: C s / (c - a), times (ca² + cs²) / 2 (Allen–Cunneen; exact for
    M/M/c, where both are 1). Infinite when the load is c or more."""
    if load <= 0:
        return 0.0
    if load >= counters:
        return math.inf
    return erlang_c(counters, load) * service_s / (counters - load) * _wait_scale(arrival_cv2, service_cv2)


def share_within(counters: int, load: float, service_s: float, target_s: float, arrival_cv2: float = 1.0,
                 service_cv2: float = 1.0) -> float:
    """P(wait <= target): 1 - C exp(-(c - a) t / s) in M/M/c; for other visit lengths the same tail with its
    time scale stretched by (ca² + cs²) / 2, so that its mean is the Allen–Cunneen mean wait."""
    if load <= 0:
        return 1.0
    if load >= counters:
        return 0.0
    scale = service_s * _wait_scale(arrival_cv2, service_cv2)
    return 1.0 - erlang_c(counters, load) * math.exp(-(counters - load) * target_s / scale)


def counters_needed(load: float, service_s: float, target_s: float, share: float, arrival_cv2: float = 1.0,
                    service_cv2: float = 1.0, most: int | None = None) -> int:
    """The fewest counters that call `share` of visitors within `target_s` in a steady state: never fewer
    than the load itself (c > a), 0 when nobody comes. `most` caps the search (the hall's counters): the
    answer is then `most + 1` when even they do not suffice."""
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    if load <= 0:
        return 0
    counters = math.floor(load) + 1
    limit = most if most is not None else counters + 10_000
    while counters <= limit:
        if share_within(counters, load, service_s, target_s, arrival_cv2, service_cv2) >= share:
            return counters
        counters += 1
    return limit + 1
