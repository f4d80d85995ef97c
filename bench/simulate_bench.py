"""Simulator bench: how long a simulated day and a staffing plan take, through the real engine.

Run: `.venv/bin/python bench/simulate_bench.py [--runs N]`.

1. A day of 2,000 visitors (the weekday profile) in the demo hall, with every counter open: far more than
   its six counters can serve, so queues grow to hundreds and every ticket's expected wait plays a long
   queue forward: the hardest case for the engine and the estimate. Target: under 5 s.
2. The same 2,000 visitors in a hall sized for them: the demo hall's counters ten times over (60 counters),
   as the simulator's default load would give it 2,000 visitors a day.
3. The demo hall's robust staffing plan over 30 sampled days (`vuoro simulate --target-wait 20`), in 2
   worker processes and in this process alone, and as the whole command (Python start-up included).
   Target: the 30-day plan in under 30 s. The machine's load average is printed with it: other programs
   on the same cores stretch every figure (the CPU time of this process and its workers is printed too).
4. Where a simulated day spends its time: the top functions of a profile of one day.

The median of N runs is printed for 1 and 2 (one process; the first run warms nothing up that matters).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from analytics import simulate as sim  # noqa: E402
from analytics.demand import demand_from_profile, sample_days  # noqa: E402
from analytics.staffing import Target, plan_for_target  # noqa: E402
from bench.benchlib import verdict  # noqa: E402
from broker.config import DEMO_HALL, Counter, HallConfig, load_hall  # noqa: E402

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
    demand = demand_from_profile(hall, MONDAY, sim.default_visitors(hall, MONDAY))
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other programs slow every figure)")
    for workers in (2, 1):
        cpu_before = _cpu_s()
        started = time.perf_counter()
        days = sample_days(hall, demand, behaviour, 30)
        search = plan_for_target(hall, MONDAY, days, behaviour, demand, Target(20 * 60), workers=workers)
        seconds = time.perf_counter() - started
        print(f"  30-day staffing plan, demo hall, {demand.visitors:.0f} visitors a day, 20 min target, "
              f"{workers} process{'es' if workers > 1 else ''}: {seconds:.1f} s ({_cpu_s() - cpu_before:.1f} s CPU, "
              f"{search.trials} trial runs of 30 days)   {verdict(seconds <= 30)} (<= 30 s)")
        ok &= seconds <= 30 or workers == 1  # the target is for the default, 2 processes
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from vuoro.cli import main; sys.exit(main(sys.argv[1:]))",
                    "simulate", "--day", MONDAY.isoformat(), "--target-wait", "20"],
                   check=True, capture_output=True, cwd=ROOT)
    whole = time.perf_counter() - started
    print(f"  as `vuoro simulate --day {MONDAY} --target-wait 20` (start-up included): {whole:.1f} s   "
          f"{verdict(whole <= 30)} (<= 30 s)")
    print("  the plan:")
    for line in sim.format_plan(search.plan, hall).splitlines():
        print("    " + line)
    ok &= whole <= 30
    people = sim.make_visitors(hall, sim.weekday_arrivals(hall, MONDAY, 2000, 1), behaviour, 1)
    profile = cProfile.Profile()
    profile.runcall(sim.simulate_day, hall, MONDAY, people, None, behaviour, keep_events=False, estimates=False)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(8)
    print("  where a day goes (2,000 visitors, no expected waits, as the search runs it; top 8 by own time):")
    print("    calls   own s  per call  with callees  per call  function")
    for line in out.getvalue().splitlines():
        if line.strip() and ("{" in line or "/" in line) and "function calls" not in line:
            print("    " + line.strip())
    return 0 if ok else 1


def _cpu_s() -> float:
    """CPU seconds of this process and its finished workers."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    raise SystemExit(main())
