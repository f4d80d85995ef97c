"""`vuoro simulate`: a day of the hall on a simulated clock, through the real engine; with --target-wait,
the smallest staffing per hour that meets a target wait, printed as a plan `--staff` reads back.

No broker and no server are needed: the engine runs in this process (broker/simulate.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from . import protocol as p
from . import simulate as sim
from . import stats
from .config import HallConfig
from .mqtt import BrokerAddress
from .staffing import plan_for_target
from .store import Store, StoreError

Arrival = tuple[float, str] | tuple[float, str, bool]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--arrivals", metavar="CSV", help="arrivals to simulate: lines 'HH:MM,topic[,priority]'")
    source.add_argument("--from-db", metavar="PATH",
                        help="replay the visitors of a day in a real event log, with its measured visit lengths, "
                             "forwards and no-shows (the day: --day, else the log's last whole day)")
    parser.add_argument("--day", type=_date, help="the day to simulate, YYYY-MM-DD (default: the next open weekday)")
    parser.add_argument("--visitors", type=int,
                        help="visitors of the default weekday profile (default: what keeps the busiest hour at "
                             "85 %% of the hall's capacity)")
    parser.add_argument("--staff", metavar="PLAN",
                        help="staffing plan: lines 'HH:MM-HH:MM counter counter...' (default: every counter, "
                             "all day)")
    parser.add_argument("--target-wait", type=float, metavar="MIN",
                        help="find the smallest staffing per hour that calls 90 %% of each topic's visitors "
                             "within MIN minutes, and print it as a plan")
    parser.add_argument("--share", type=float, default=0.9, help="with --target-wait: the share to call in time")
    parser.add_argument("--save-plan", metavar="PATH", help="with --target-wait: also write the plan to this file")
    parser.add_argument("--days", type=int, default=1, help="simulate this many open days in a row (not with "
                        "--target-wait, --arrivals or --from-db)")
    parser.add_argument("--db", metavar="PATH", help="write the simulated event log here (a new SQLite file) "
                        "for `vuoro report`")
    parser.add_argument("--seed", type=int, default=1, help="random seed (visitors and their visits)")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def _fail(message: str) -> int:
    print(f"vuoro simulate: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    if args.days < 1 or (args.days > 1 and (args.target_wait or args.arrivals or args.from_db)):
        return _fail("--days N simulates N default weekdays; it does not go with --target-wait, --arrivals "
                     "or --from-db")
    behaviour = sim.Behaviour()
    day = args.day
    arrivals: Sequence[Arrival] = []
    try:
        if args.from_db:
            day, arrivals, behaviour = _from_db(Path(args.from_db), hall, day, behaviour)
        day = day or _next_open_day(hall, datetime.now(hall.tz).date())
        if hall.hours.window(day) is None:
            return _fail(f"hall {hall.id} is closed on {day} ({day.strftime('%A')})")
        if args.arrivals:
            arrivals = sim.parse_arrivals(Path(args.arrivals).read_text(encoding="utf-8"), hall, args.arrivals)
        elif not args.from_db:  # the weekday profile; who has a priority ticket is drawn per visitor
            count = args.visitors if args.visitors is not None else sim.default_visitors(hall, day)
            arrivals = sim.weekday_arrivals(hall, day, count, args.seed)
        plan = sim.full_plan(hall, day)
        if args.staff:
            plan = sim.parse_plan(Path(args.staff).read_text(encoding="utf-8"), hall, args.staff)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    visitors = sim.make_visitors(hall, arrivals, behaviour, args.seed)
    target_s = None if args.target_wait is None else args.target_wait * 60
    started = time.perf_counter()
    results: list[sim.DayResult]
    if target_s is not None:
        search = plan_for_target(hall, day, visitors, behaviour, target_s, args.share)
        elapsed = time.perf_counter() - started
        plan = search.plan
        results = [search.result]
        print(f"# staffing for {hall.id} on {day} ({day.strftime('%A')}): {len(visitors)} visitors, "
              f"{100 * args.share:.0f} % of each topic's visitors called within {args.target_wait:g} min")
        print(f"# found in {elapsed:.1f} s ({search.trials} trial runs); give it back with --staff")
        print(sim.format_plan(plan, hall), end="")
        missed = [f"{hour:02d}" for hour, met in sorted(search.met.items()) if not met]
        if missed:
            print(f"# not met in hours {', '.join(missed)}: every counter that serves their late topics is open or "
                  "does not help (too few counters serve the topic, or the queue left from before is too long)")
        if args.save_plan:
            Path(args.save_plan).write_text(sim.format_plan(plan, hall), encoding="utf-8")
        print()
    elif args.days > 1:
        results = sim.simulate_days(hall, day, args.days, seed=args.seed, visitors=args.visitors,
                                    plan=plan if args.staff else None, behaviour=behaviour)
        elapsed = time.perf_counter() - started
    else:
        results = [sim.simulate_day(hall, day, visitors, plan, behaviour)]
        elapsed = time.perf_counter() - started
    for result in results:
        _print_day(hall, result, plan, target_s)
    if target_s is None:
        print(f"simulated {sum(len(r.records) for r in results)} visitors in {elapsed:.2f} s")
    if args.db:
        _write_log(Path(args.db), hall, results)
    return 0


def _next_open_day(hall: HallConfig, today: date) -> date:
    day = today + timedelta(days=1)
    for _ in range(370):
        if hall.hours.window(day) is not None and day.weekday() < 5:
            return day
        day += timedelta(days=1)
    raise ValueError(f"hall {hall.id} has no open weekday within a year")


def _from_db(path: Path, hall: HallConfig, day: date | None,
             base: sim.Behaviour) -> tuple[date, list[Arrival], sim.Behaviour]:
    if not path.exists():
        raise ValueError(f"{path}: no such event log")
    try:
        store = Store(path, hall.id)
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    try:
        days = store.days()
        whole = days[:-1] or days  # the last day may still be running
        chosen = [d for d in days if d[0] == day.isoformat()] if day else whole[-1:]
        if not chosen:
            raise ValueError(f"{path}: the log has no day {day}" if day else f"{path}: the log is empty")
        name, first, last = chosen[0]
        events = list(store.events_between(first, last))
        tallies = stats.collect(events, hall)
    finally:
        store.close()
    by_topic = {label[0]: tally for label, tally in stats.group(tallies, "topic").items()}
    return (date.fromisoformat(name), list(sim.arrivals_from_log(events, hall)),
            sim.behaviour_from_figures(by_topic, base))


def _print_day(hall: HallConfig, result: sim.DayResult, plan: sim.StaffPlan, target_s: float | None) -> None:
    rows = sim.waits_per_hour(result.records, target_s)
    print(f"{result.day} ({result.day.strftime('%A')}): {len(result.records)} visitors"
          + (f", {result.refused} refused (after the last-ticket time)" if result.refused else ""))
    header = f"{'hour':<6}{'visitors':>9}{'counters':>10}{'mean wait':>11}{'90th pct':>10}{'longest':>9}"
    print(header + (f"{'in time':>9}" if target_s is not None else ""))
    for row in rows:
        open_now = len(plan.counters_at(row.hour * 3600 + 1800))
        line = (f"{row.hour:02d}    {row.arrivals:>9}{open_now:>10}{_min(row.mean_s):>11}{_min(row.p90_s):>10}"
                f"{_min(row.max_s):>9}")
        if target_s is not None:
            line += f"{'' if row.within is None else f'{100 * row.within:.0f} %':>9}"
        print(line)
    if result.records:
        day = sim.day_waits(result.records, target_s)
        line = f"{'day':<6}{day.arrivals:>9}{'':>10}{_min(day.mean_s):>11}{_min(day.p90_s):>10}{_min(day.max_s):>9}"
        if target_s is not None and day.within is not None:
            line += f"{f'{100 * day.within:.0f} %':>9}"
        print(line)
    print()


def _min(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} m"


def _write_log(path: Path, hall: HallConfig, results: Sequence[sim.DayResult]) -> None:
    if path.exists():
        raise SystemExit(f"vuoro simulate: {path} exists; give a new file to --db")
    store = Store(path, hall.id)
    try:
        events = [e for r in results for e in r.events]
        store.commit([(e, p.encode(e.payload())) for e in events], [])
    finally:
        store.close()
    print(f"wrote {len(events)} events to {path}: `vuoro report --db {path} --from ... --to ...`")
