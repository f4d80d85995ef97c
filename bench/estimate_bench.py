"""Estimate bench: how close the expected wait printed on a ticket comes to the real wait.

Run: `.venv/bin/python bench/estimate_bench.py [--days N] [--seed N] [--hall PATH]`.

It replays N simulated weekdays of a hall (default: the demo hall, 20 days) through the real engine
(`analytics/simulate.py`), one engine for all days so that the model learns from day to day as it does
in a hall. The days differ: the number of visitors (70-110 % of what the hall can serve at its peak),
counter staff who come in late or leave early, the visitors themselves. For every ticket that was
called it compares the real wait (drawn -> first called) with

- the model (`broker/estimate.py`): its expected wait, and whether the real wait fell within the
  range it printed;
- the simple estimate other queue systems print: average service time x people ahead / open counters
  serving the topic; given the very same range around it (the model's offsets below and above), to
  compare like with like;
- Vuoro's previous estimate (people ahead + 0.5, times the service time, over the open counters
  weighted by tier: 1, 1/2, 1/4), for the record.

Figures are mean absolute error (MAE), median absolute error, the share within the printed range and
its mean width. Nothing here is timed; the figures do not depend on the machine.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from analytics import simulate as sim  # noqa: E402
from broker import protocol as p  # noqa: E402
from broker.config import DEMO_HALL, HallConfig, load_hall  # noqa: E402
from broker.engine import Engine  # noqa: E402

FIRST_DAY = date(2026, 11, 2)  # a Monday
TIER_WEIGHTS = (1.0, 0.5, 0.25)


def previous_estimate(state: Any, topic: str, ahead: int) -> int:
    """Vuoro's estimate before the model: (ahead + 0.5) x service time / tier-weighted open counters."""
    hall = state.hall
    capacity = sum(TIER_WEIGHTS[min(c.tier_of(topic) or 0, 2)] for c in hall.counters_serving(topic)
                   if state.counters[c.id].status == p.OPEN) or float(len(hall.home_counters(topic)))
    return math.ceil((ahead + 0.5) * state.service_time_s[topic] / capacity)


def day_plan(hall: HallConfig, day: date, rng: random.Random) -> tuple[sim.StaffPlan, str]:
    """All counters, except that some days one comes in at 10:00 and another leaves at 14:00."""
    opens, closes = (float(t.hour * 3600 + t.minute * 60) for t in hall.hours.window(day) or ())
    late = rng.choice(list(hall.counters)) if rng.random() < 0.5 else None
    early = rng.choice(list(hall.counters)) if rng.random() < 0.3 else None
    everyone = frozenset(hall.counters)
    cuts = sorted({opens, closes, 10 * 3600.0, 14 * 3600.0})
    slots = []
    for start, end in itertools.pairwise(cuts):
        staffed = set(everyone)
        if late and start < 10 * 3600:
            staffed.discard(late)
        if early and start >= 14 * 3600:
            staffed.discard(early)
        slots.append((start, end, frozenset(staffed)))
    note = ", ".join(x for x in (f"{late} from 10:00" if late else "", f"{early} until 14:00" if early else "") if x)
    return sim.StaffPlan(tuple(slots)), note or "all counters"


def figures(real: Sequence[float], guess: Sequence[float]) -> tuple[float, float]:
    errors = [abs(r - g) for r, g in zip(real, guess, strict=True)]
    return statistics.mean(errors), statistics.median(errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hall", default=str(DEMO_HALL))
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    hall = load_hall(args.hall)
    rng = random.Random(args.seed)
    behaviour = sim.Behaviour(speed=sim.staff_speeds(hall, args.seed))
    engine = Engine(hall)
    rows: list[dict[str, Any]] = []
    print(f"hall {hall.id}: {args.days} simulated weekdays from {FIRST_DAY}, seed {args.seed}; "
          f"counter speed factors {dict(behaviour.speed)}")
    print(f"{'day':<11} {'visitors':>8}  {'staffing':<26} {'MAE model':>9} {'simple':>7} {'previous':>8}  "
          f"{'in range':>8} {'simple':>7}")
    started = time.perf_counter()
    day = FIRST_DAY
    done = 0
    while done < args.days:
        if hall.hours.window(day) is None:
            day += timedelta(days=1)
            continue
        load = rng.uniform(0.7, 1.1)
        visitors = sim.default_visitors(hall, day, load)
        plan, note = day_plan(hall, day, rng)
        people = sim.make_visitors(hall, sim.weekday_arrivals(hall, day, visitors, rng.randrange(1 << 30)),
                                   behaviour, rng.randrange(1 << 30))
        result = sim.simulate_day(hall, day, people, plan, behaviour, engine=engine, keep_events=False,
                                  estimators={"previous": previous_estimate})
        called = [r for r in result.records if r.called is not None]
        day_rows = [{"real": r.called - r.issued, "model": r.expected_s, "low": r.range_s[0], "high": r.range_s[1],
                     "simple": r.simple_s, "previous": r.others["previous"], "day": day} for r in called]
        rows += day_rows
        real = [x["real"] for x in day_rows]
        print(f"{day.isoformat():<11} {visitors:>8}  {note:<26} "
              f"{figures(real, [x['model'] for x in day_rows])[0] / 60:>7.1f} m "
              f"{figures(real, [x['simple'] for x in day_rows])[0] / 60:>5.1f} m "
              f"{figures(real, [x['previous'] for x in day_rows])[0] / 60:>6.1f} m  "
              f"{100 * _within(day_rows, 'model'):>6.0f} % {100 * _within(day_rows, 'simple'):>5.0f} %")
        done += 1
        day += timedelta(days=1)
    elapsed = time.perf_counter() - started
    real = [x["real"] for x in rows]
    print()
    print(f"{len(rows)} tickets called over {args.days} days (simulated in {elapsed:.1f} s); "
          f"real waits: mean {statistics.mean(real) / 60:.1f} min, median {statistics.median(real) / 60:.1f} min, "
          f"90th percentile {sorted(real)[int(0.9 * len(real))] / 60:.1f} min")
    width = statistics.mean(x["high"] - x["low"] for x in rows) / 60
    print(f"{'estimate':<44} {'MAE':>9} {'median abs':>11} {'within range':>13}")
    for name, label in (("model", "model (broker/estimate.py)"),
                        ("simple", "simple: service time x ahead / open counters"),
                        ("previous", "previous Vuoro estimate (tier-weighted)")):
        mae, med = figures(real, [x[name] for x in rows])
        print(f"{label:<44} {mae / 60:>7.2f} m {med / 60:>9.2f} m {100 * _within(rows, name):>11.1f} %")
    mae_model = figures(real, [x["model"] for x in rows])[0]
    mae_simple = figures(real, [x["simple"] for x in rows])[0]
    print(f"the printed range is {width:.1f} min wide on average (the same offsets are put around the others)")
    print(f"model MAE is {100 * (1 - mae_model / mae_simple):.0f} % lower than the simple estimate's "
          f"({mae_simple / mae_model:.2f}x)")
    return 0


def _within(rows: Sequence[dict[str, Any]], name: str) -> float:
    """Share of real waits inside the model's range, or inside the same offsets around another estimate."""
    hits = 0
    for x in rows:
        low, high = x["low"] - x["model"] + x[name], x["high"] - x["model"] + x[name]
        hits += low <= x["real"] <= high
    return hits / len(rows) if rows else math.nan


if __name__ == "__main__":
    raise SystemExit(main())
