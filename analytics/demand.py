"""What a hall expects on a kind of day, and days sampled from it for the staffing search.

`Demand` is the expected number of visitors per topic in each minute of the day, from the weekday profile
(analytics/scenario.py) or from the hall's own log (the same weekday over the last weeks). Days are drawn from
it as Poisson arrivals, each day's volume scaled by a factor drawn from how much whole days varied in the
log. The same seeds give the same days: every plan the search compares is tried on the same visitors
(common random numbers). Also here: the offered load of a stretch of the day, for Erlang C. Pure: no
clock, no files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from analytics.scenario import (
    Behaviour,
    Visitor,
    default_forward_share,
    default_mix,
    forward_targets,
    make_visitors,
    ticket_window,
    weekday_profile,
)
from broker.config import HallConfig

MINUTES = 24 * 60


@dataclass(frozen=True)
class Demand:
    """Expected visitors per topic and minute of the day, and how whole days vary around it."""

    day: date
    per_minute: Mapping[str, tuple[float, ...]]  # topic -> expected tickets drawn in each minute (1,440)
    volume: tuple[float, ...] = (1.0,)  # factors on a whole day's visitors, one drawn per sampled day
    source: str = "the weekday profile"

    @property
    def visitors(self) -> float:
        return sum(sum(minutes) for minutes in self.per_minute.values())

    def expected(self, start_s: float, end_s: float) -> dict[str, float]:
        """Expected visitors per topic drawing a ticket in [start, end) (seconds after midnight)."""
        first, last = int(start_s // 60), math.ceil(end_s / 60)
        return {t: sum(minutes[first:last]) for t, minutes in self.per_minute.items()}


def demand_from_profile(hall: HallConfig, day: date, visitors: float, mix: Mapping[str, float] | None = None,
                        profile: Callable[[float], float] = weekday_profile) -> Demand:
    """`visitors` a day on average, spread over the ticket window as `profile` says, topics as `mix`."""
    opens, last = ticket_window(hall, day)
    minutes = range(int(opens // 60), int(last // 60))
    weights = {m: profile(float(m)) for m in minutes}
    total = sum(weights.values())
    mix = mix or default_mix(hall)
    per_minute = {t: tuple(visitors * share * weights.get(m, 0.0) / total for m in range(MINUTES))
                  for t, share in mix.items()}
    return Demand(day=day, per_minute=per_minute)


Arrival = tuple[float, str] | tuple[float, str, bool]


def demand_from_history(hall: HallConfig, day: date, days: Sequence[Iterable[Arrival]],
                        source: str = "the log") -> Demand:
    """The mean of past days' arrivals (seconds after midnight, topic), minute by minute, smoothed over a
    quarter of an hour; each past day's total over their mean is one volume factor."""
    if not days:
        raise ValueError("no past days to learn the demand from")
    counts = {t: [0.0] * MINUTES for t in hall.topics}
    totals = []
    for arrivals in days:
        total = 0
        for arrival in arrivals:
            topic = str(arrival[1])
            if topic in counts:
                counts[topic][min(MINUTES - 1, int(float(arrival[0]) // 60))] += 1
                total += 1
        totals.append(total)
    mean_total = sum(totals) / len(totals)
    if mean_total == 0:
        raise ValueError("the past days had no visitors")
    half = 7  # a quarter of an hour around each minute: a few weeks of days are too few for minute detail
    per_minute = {}
    for topic, minutes in counts.items():
        smooth = []
        for m in range(MINUTES):
            window = minutes[max(0, m - half):m + half + 1]
            smooth.append(sum(window) / len(window) / len(days))
        # the smoothing must not move tickets across the opening and closing: keep the day's own total
        raw, smoothed = sum(minutes) / len(days), sum(smooth)
        per_minute[topic] = tuple(s * raw / smoothed for s in smooth) if smoothed else tuple(smooth)
    return Demand(day=day, per_minute=per_minute, volume=tuple(t / mean_total for t in totals), source=source)


def sample_arrivals(hall: HallConfig, demand: Demand, seed: int) -> list[tuple[float, str]]:
    """One day's arrivals: a Poisson number of visitors (times the day's volume factor), each drawn at a
    minute and a topic with the demand's weights, at a uniform second inside the minute."""
    rng = random.Random(f"demand-{seed}-{demand.day.isoformat()}")
    factor = rng.choice(demand.volume)
    cells = [(m, t) for t, minutes in demand.per_minute.items() for m, w in enumerate(minutes) if w > 0]
    weights = [demand.per_minute[t][m] for m, t in cells]
    count = _poisson(rng, demand.visitors * factor)
    picks = rng.choices(cells, weights, k=count) if cells else []
    return sorted((m * 60 + rng.random() * 60, t) for m, t in picks)


def sample_days(hall: HallConfig, demand: Demand, behaviour: Behaviour, count: int,
                first_seed: int = 1) -> list[tuple[Visitor, ...]]:
    """`count` days of visitors, day i from seed first_seed + i (days 1-30 and 31-60 never overlap)."""
    return [make_visitors(hall, sample_arrivals(hall, demand, seed), behaviour, seed)
            for seed in range(first_seed, first_seed + count)]


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: by counting exponential gaps for small means, by the normal approximation (with
    continuity correction) beyond 500, where its error is far below a day's own variation."""
    if mean <= 0:
        return 0
    if mean > 500:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


# ---------------------------------------------------------------- the offered load

@dataclass(frozen=True)
class Load:
    """The work a stretch of the day brings, as Erlang C needs it."""

    arrivals: float  # expected visitors drawing a ticket in the stretch
    load: float  # counters' worth of work (arrival rate x mean work per visitor)
    service_s: float  # mean work per visitor (a forward adds a second visit, a no-show the recalls)
    service_cv2: float  # squared coefficient of variation of that work


def offered_load(hall: HallConfig, demand: Demand, behaviour: Behaviour, start_s: float, end_s: float) -> Load:
    expected = demand.expected(start_s, end_s)
    arrivals = sum(expected.values())
    if arrivals <= 0:
        return Load(0.0, 0.0, 0.0, 0.0)
    work = {t: work_per_visitor(hall, behaviour, t) for t in hall.topics}
    mean = sum(expected[t] * work[t] for t in expected) / arrivals
    second = sum(expected[t] * work[t] ** 2 * (1 + behaviour.service_cv2) for t in expected) / arrivals
    rate = arrivals / (end_s - start_s)
    return Load(arrivals=arrivals, load=rate * mean, service_s=mean, service_cv2=second / mean ** 2 - 1)


def work_per_visitor(hall: HallConfig, behaviour: Behaviour, topic: str) -> float:
    """Mean seconds of counter time one visitor of the topic brings: the visit at a counter that serves it
    first, a second visit when forwarded, the recalls before a no-show."""
    def visit(t: str) -> float:
        return behaviour.service_s.get(t, hall.topics[t].service_time_min * 60.0)
    mix = default_mix(hall)
    forward = behaviour.forward_share.get(topic, default_forward_share(hall, topic))
    targets = forward_targets(hall, topic)
    onward = sum(mix[t] * visit(t) for t in targets) / sum(mix[t] for t in targets) if targets else 0.0
    recalls = behaviour.recall_after_s * (hall.rules.noshow_after_recalls + 1)
    leave = behaviour.leave_share
    return (1 - leave) * (visit(topic) + forward * onward) + leave * recalls
