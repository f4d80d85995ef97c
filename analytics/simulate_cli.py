"""`vuoro simulate`: a day of the hall on a simulated clock, through the real engine; with --target-wait,
the fewest counters per hour that meet a target wait on most of many sampled days (analytics/staffing.py),
printed as a plan `--staff` reads back, with each hour's offered load and Erlang C staffing beside it.

No broker and no server are needed: the engine runs in this process (analytics/simulate.py), or in a few
worker processes for the staffing search.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

from analytics import simulate as sim
from analytics.dayrunner import allowed_failures
from analytics.demand import Demand, demand_from_history, demand_from_profile, sample_days
from analytics.staffing import PlanSearch, Target, plan_for_target
from broker import protocol as p
from broker import stats
from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from broker.store import Store, StoreError

Arrival = tuple[float, str] | tuple[float, str, bool]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--arrivals", metavar="CSV", help="arrivals to simulate: lines 'HH:MM,topic[,priority]'")
    source.add_argument("--from-db", metavar="PATH",
                        help="replay the visitors of a day in a real event log, with its measured visit lengths, "
                             "forwards and no-shows (the day: --day, else the log's last whole day); with "
                             "--target-wait, learn the day's demand from the same weekday of the last --weeks")
    parser.add_argument("--day", type=_date, help="the day to simulate, YYYY-MM-DD (default: the next open weekday)")
    parser.add_argument("--visitors", type=int,
                        help="visitors of the default weekday profile (default: what keeps the busiest hour at "
                             "85 %% of the hall's capacity)")
    parser.add_argument("--staff", metavar="PLAN",
                        help="staffing plan: lines 'HH:MM-HH:MM counter counter...' (default: every counter, "
                             "all day)")
    parser.add_argument("--target-wait", type=float, metavar="MIN",
                        help="find the fewest counters per hour that call --share of each hour's visitors within "
                             "MIN minutes on --confidence of --sample-days sampled days, and print it as a plan")
    parser.add_argument("--share", type=float, default=0.9,
                        help="with --target-wait: the share of visitors to call in time (default 0.9)")
    parser.add_argument("--confidence", type=float, default=0.9,
                        help="with --target-wait: the share of days on which each hour must do so (default 0.9)")
    parser.add_argument("--sample-days", type=int, default=30, metavar="N",
                        help="with --target-wait: days sampled from the profile or the log (default 30)")
    parser.add_argument("--weeks", type=int, default=8,
                        help="with --target-wait --from-db: the same weekday over this many last weeks (default 8)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="with --target-wait: processes to play the days in (default: 2, or 1 on one core)")
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
    if args.target_wait is not None:
        problem = _search_problem(args)
        if problem:
            return _fail(problem)
        return _plan(args, hall)
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
    started = time.perf_counter()
    results: list[sim.DayResult]
    if args.days > 1:
        results = sim.simulate_days(hall, day, args.days, seed=args.seed, visitors=args.visitors,
                                    plan=plan if args.staff else None, behaviour=behaviour)
    else:
        results = [sim.simulate_day(hall, day, visitors, plan, behaviour)]
    elapsed = time.perf_counter() - started
    for result in results:
        _print_day(hall, result, plan, None)
    print(f"simulated {sum(len(r.records) for r in results)} visitors in {elapsed:.2f} s")
    if args.db:
        _write_log(Path(args.db), hall, results)
    return 0


def _search_problem(args: argparse.Namespace) -> str | None:
    if args.target_wait <= 0:
        return "--target-wait must be more than 0 minutes"
    for name in ("share", "confidence"):
        if not 0 < getattr(args, name) < 1:
            return f"--{name} must be between 0 and 1 (0.9 is 90 %)"
    if args.sample_days < 1 or args.workers < 1 or args.weeks < 1:
        return "--sample-days, --workers and --weeks must be at least 1"
    if args.staff:
        return "--staff gives a plan; --target-wait finds one: give one of them"
    return None


def _plan(args: argparse.Namespace, hall: HallConfig) -> int:
    """The robust plan for a kind of day: demand from the log's same weekdays, an arrivals file or the profile."""
    behaviour = sim.Behaviour()
    try:
        if args.from_db:
            day, demand, behaviour = _demand_from_db(Path(args.from_db), hall, args.day, args.weeks, behaviour)
        else:
            day = args.day or _next_open_day(hall, datetime.now(hall.tz).date())
            if hall.hours.window(day) is None:
                return _fail(f"hall {hall.id} is closed on {day} ({day.strftime('%A')})")
            if args.arrivals:
                arrivals = sim.parse_arrivals(Path(args.arrivals).read_text(encoding="utf-8"), hall, args.arrivals)
                demand = demand_from_history(hall, day, [arrivals], source=f"the arrivals in {args.arrivals}")
            else:
                count = args.visitors if args.visitors is not None else sim.default_visitors(hall, day)
                demand = demand_from_profile(hall, day, count)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    if hall.hours.window(day) is None:
        return _fail(f"hall {hall.id} is closed on {day} ({day.strftime('%A')})")
    target = Target(args.target_wait * 60, args.share, args.confidence)
    started = time.perf_counter()
    days = sample_days(hall, demand, behaviour, args.sample_days, first_seed=args.seed)
    search = plan_for_target(hall, day, days, behaviour, demand, target, workers=args.workers)
    elapsed = time.perf_counter() - started
    text = plan_text(hall, search)
    need = search.days - allowed_failures(search.days, args.confidence)
    print(f"# staffing for {hall.id} on {day.strftime('%A')}s like {day}: {search.days} sampled days from "
          f"{demand.source}, {demand.visitors:.0f} visitors a day on average")
    print(f"# target: {100 * args.share:.0f} % of each hour's visitors (and of each topic's) called within "
          f"{args.target_wait:g} min on at least {100 * args.confidence:.0f} % of days; 95 % sure of that when "
          f"an hour does so on {need} of the {search.days} sampled days")
    print(f"# found in {elapsed:.1f} s ({search.trials} trial runs of the {search.days} days, "
          f"{min(args.workers, search.days)} process{'es' if args.workers > 1 else ''}); "
          "give it back with --staff")
    print("# load: counters' worth of work offered; Erlang C: counters a steady queue needs for the target "
          "(the floor); days: days the hour met the share; then any topic whose visitors fell short")
    print(text, end="")
    print(f"# every hour met the share on {search.days_all_met} of {search.days} days "
          f"({100 * search.days_all_met / search.days:.0f} %)")
    missed = [sim.clock_text(h.start)[:2] for h in search.hours if not h.met]
    if missed:
        print(f"# not met in hours {', '.join(missed)}: every counter that serves their late topics is open or "
              "does not help (too few counters serve a topic, or the queue left from before is too long)")
    print("# the floor stays: no hour has fewer counters than Erlang C asks for (Allen–Cunneen for visit "
          "lengths that vary as these do)")
    if args.save_plan:
        Path(args.save_plan).write_text(text, encoding="utf-8")
    if args.db:
        result = sim.simulate_day(hall, day, days[0], search.plan, behaviour)
        _write_log(Path(args.db), hall, [result])
    return 0


def plan_text(hall: HallConfig, search: PlanSearch) -> str:
    """The plan as `--staff` reads it, each hour with its figures as a comment."""
    lines = sim.format_plan(search.plan, hall).splitlines()
    width = max(len(line) for line in lines)
    out = []
    for line, hour in zip(lines, search.hours, strict=True):
        short = "".join(f", {topic} {100 * share:.0f} %" for topic, share in hour.short)
        out.append(f"{line:<{width}}  # load {hour.load.load:4.1f}, Erlang C {hour.erlang}, "
                   f"open {len(hour.counters)}: days {hour.days_met:>2}/{search.days}, "
                   f"{100 * hour.in_time:3.0f} % in time{short}")
    return "\n".join(out) + "\n"


def _next_open_day(hall: HallConfig, today: date) -> date:
    day = today + timedelta(days=1)
    for _ in range(370):
        if hall.hours.window(day) is not None and day.weekday() < 5:
            return day
        day += timedelta(days=1)
    raise ValueError(f"hall {hall.id} has no open weekday within a year")


LogDay = tuple[str, int, int]  # (day, first seq, last seq), as Store.days gives them


@contextmanager
def _log_days(path: Path, hall: HallConfig) -> Iterator[tuple[Store, list[LogDay], list[LogDay]]]:
    """The hall's event log at `path`, open while the block runs, with its days and its whole days (the last day
    may still be running: it counts as whole only when it is the only one). A missing or unreadable log is a
    ValueError that says so."""
    if not path.exists():
        raise ValueError(f"{path}: no such event log")
    try:
        store = Store(path, hall.id)
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    try:
        days = store.days()
        yield store, days, days[:-1] or days
    finally:
        store.close()


def _from_db(path: Path, hall: HallConfig, day: date | None,
             base: sim.Behaviour) -> tuple[date, list[Arrival], sim.Behaviour]:
    with _log_days(path, hall) as (store, days, whole):
        chosen = [d for d in days if d[0] == day.isoformat()] if day else whole[-1:]
        if not chosen:
            raise ValueError(f"{path}: the log has no day {day}" if day else f"{path}: the log is empty")
        name, first, last = chosen[0]
        events = list(store.events_between(first, last))
        tallies = stats.collect(events, hall)
    by_topic = {label[0]: tally for label, tally in stats.group(tallies, "topic").items()}
    return (date.fromisoformat(name), list(sim.arrivals_from_log(events, hall)),
            sim.behaviour_from_figures(by_topic, base))


def _demand_from_db(path: Path, hall: HallConfig, day: date | None, weeks: int,
                    base: sim.Behaviour) -> tuple[date, Demand, sim.Behaviour]:
    """The demand of a weekday from the log: its last `weeks` such days (the weekday of --day, else of the
    log's last whole day), and the visit lengths, forwards and no-shows measured over them."""
    with _log_days(path, hall) as (store, _, whole):
        if not whole:
            raise ValueError(f"{path}: the log is empty")
        last = date.fromisoformat(whole[-1][0])
        day = day or last + timedelta(days=7)
        since = (day if day <= last else last) - timedelta(weeks=weeks)
        chosen = [d for d in whole if date.fromisoformat(d[0]).weekday() == day.weekday()
                  and since < date.fromisoformat(d[0]) <= last]
        if not chosen:
            raise ValueError(f"{path}: the log has no {day.strftime('%A')} in the {weeks} weeks before {last}")
        arrivals, events = [], []
        for _, first, final in chosen:
            some = list(store.events_between(first, final))
            events.extend(some)
            arrivals.append(sim.arrivals_from_log(some, hall))
    by_topic = {label[0]: tally for label, tally in stats.group(stats.collect(events, hall), "topic").items()}
    source = f"{len(chosen)} {day.strftime('%A')}s of {path.name} ({chosen[0][0]} to {chosen[-1][0]})"
    return day, demand_from_history(hall, day, arrivals, source), sim.behaviour_from_figures(by_topic, base)


def _print_day(hall: HallConfig, result: sim.DayResult, plan: sim.StaffPlan, target_s: float | None) -> None:
    rows = sim.waits_per_hour(result.records, target_s)
    print(f"{result.day} ({result.day.strftime('%A')}): {len(result.records)} visitors"
          + (f", {result.refusal_text()}" if result.refused else "")
          + (f", {result.expired_at_midnight} still open at midnight (expired)" if result.expired_at_midnight
             else ""))
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
