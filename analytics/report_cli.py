"""`vuoro report`: the statistics of a hall's event log as CSV files, PNG charts and one HTML page.

It reads the SQLite log the hall server writes (it may be running: SQLite's WAL lets both work);
no broker is needed. `--purge` also applies the hall's `[statistics] keep_ticket_days` now: older
ticket rows go, their daily figures stay (the server does the same by itself each day).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from broker.store import Store, StoreError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="the hall's SQLite event log (default: var/<hall>.sqlite)")
    parser.add_argument("--from", dest="first", type=_date, help="first day, YYYY-MM-DD (default: --to minus 6 days)")
    parser.add_argument("--to", dest="last", type=_date, help="last day, YYYY-MM-DD (default: today)")
    parser.add_argument("--out", default=None, help="folder to write into (default: var/report-FROM-TO)")
    parser.add_argument("--purge", action="store_true",
                        help="first purge ticket rows older than the hall's keep_ticket_days (figures stay)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-30") from None


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    from analytics import report
    from broker import stats

    today = datetime.now(hall.tz).date()
    last = args.last or today
    first = args.first or last - timedelta(days=6)
    if first > last:
        print(f"vuoro report: --from {first} is after --to {last}", file=sys.stderr)
        return 2
    db = Path(args.db or Path("var") / f"{hall.id}.sqlite")
    if not db.exists():
        print(f"vuoro report: {db}: no such event log (give --db)", file=sys.stderr)
        return 2
    out = Path(args.out or Path("var") / f"report-{first}-{last}")
    try:
        store = Store(db, hall.id)
    except StoreError as exc:
        print(f"vuoro report: {exc}", file=sys.stderr)
        return 2
    try:
        if args.purge and hall.statistics.keep_ticket_days:
            keep_from = (today - timedelta(days=hall.statistics.keep_ticket_days)).isoformat()
            purged = store.purge_before(keep_from, lambda events: stats.day_rows(events, hall))
            print(f"purged the ticket rows of {len(purged)} day(s) before {keep_from}; their figures stay",
                  file=sys.stderr)
        long_range = (last - first).days + 1 >= report.PROGRESS_FROM_DAYS
        progress = report.Progress() if long_range and not args.quiet else None
        figures = report.read_figures(store, hall, first, last, progress)
        written = report.write_report(figures, out, datetime.now(hall.tz))
    finally:
        store.close()
    print(f"{len(figures.days)} day(s) with visitors from {first} to {last}; wrote {len(written)} files to {out}/ "
          f"(open {out / 'index.html'})")
    return 0
