"""Simulator bench: how long a simulated day and a staffing plan take, through the real engine.

Run: `.venv/bin/python bench/simulate_bench.py [--runs N]`.

1. A day of 2,000 visitors (the weekday profile) in the demo hall, with every counter open: far more than
   its six counters can serve, so queues grow to hundreds and every ticket's expected wait plays a long
   queue forward: the hardest case for the engine and the estimate. Target: under 5 s.
2. The same 2,000 visitors in a hall sized for them: the demo hall's counters ten times over (60 counters),
   as the simulator's default load would give it 2,000 visitors a day.
3. The demo hall's staffing plan for a 15-minute target (`vuoro simulate --target-wait 15`), timed inside
   the process and as the whole command (Python start-up included). Target: under 10 s.

The median of N runs is printed for 1 and 2 (one process; the first run warms nothing up that matters).
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.benchlib import verdict  # noqa: E402
from broker import simulate as sim  # noqa: E402
from broker.config import DEMO_HALL, Counter, HallConfig, load_hall  # noqa: E402
from broker.staffing import plan_for_target  # noqa: E402

MONDAY = date(2026, 11, 30)


def bigger(hall: HallConfig, times: int) -> HallConfig:
    """The hall with each counter `times` times over (ids 1..6, 7..12, ...), for a hall of a big city."""
    counters: dict[str, Counter] = {}
    for copy in range(times):
        for index, counter in enumerate(hall.counters.values(), 1):
            new_id = str(copy * len(hall.counters) + index)
            counters[new_id] = replace(counter, id=new_id)
    return replace(hall, counters=counters)


def time_day(hall: HallConfig, visitors: int, runs: int) -> tuple[float, sim.DayResult]:
    behaviour = sim.Behaviour()
    people = sim.make_visitors(hall, sim.weekday_arrivals(hall, MONDAY, visitors, 1), behaviour, 1)
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = sim.simulate_day(hall, MONDAY, people, None, behaviour)
        times.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    hall = load_hall(DEMO_HALL)
    print(f"simulated day: {MONDAY} (Monday), weekday profile, seed 1; median of {args.runs} runs")
    ok = True
    times = math.ceil(2000 / sim.default_visitors(hall, MONDAY))
    for label, subject in (("demo hall, 6 counters", hall),
                           (f"demo hall x{times}, {times * len(hall.counters)} counters", bigger(hall, times))):
        seconds, result = time_day(subject, 2000, args.runs)
        waits = [r.called - r.issued for r in result.records if r.called is not None]
        print(f"  2,000 visitors, {label:<26} {seconds:6.2f} s   ({len(result.events):,} events, "
              f"{len(result.events) / seconds:,.0f} events/s; mean wait {statistics.mean(waits) / 60:.0f} min, "
              f"{result.refused} refused)   {verdict(seconds < 5)} (< 5 s)")
        ok &= seconds < 5
    behaviour = sim.Behaviour()
    visitors = sim.default_visitors(hall, MONDAY)
    people = sim.make_visitors(hall, sim.weekday_arrivals(hall, MONDAY, visitors, 1), behaviour, 1)
    started = time.perf_counter()
    search = plan_for_target(hall, MONDAY, people, behaviour, 15 * 60)
    inside = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "vuoro"), "simulate", "--day", MONDAY.isoformat(),
                    "--target-wait", "15"], check=True, capture_output=True, cwd=ROOT)
    whole = time.perf_counter() - started
    print(f"  staffing plan, demo hall, {visitors} visitors, 15 min target: {inside:.2f} s in the process "
          f"({search.trials} trial runs), {whole:.2f} s as `vuoro simulate --target-wait 15`   "
          f"{verdict(whole < 10)} (< 10 s)")
    print("  the plan:")
    for line in sim.format_plan(search.plan, hall).splitlines():
        print("    " + line)
    ok &= whole < 10
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
