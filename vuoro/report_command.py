"""`vuoro report`: one hall's figures from its SQLite log (analytics' report_cli), or the city's halls side by side
from PostgreSQL (city.report) when --db is a postgresql:// URL. The choice lives here, in the command line's
package, because only it may import both the analytics and the city."""

from __future__ import annotations

import argparse

from analytics import report_cli
from broker.config import HallConfig
from broker.mqtt import BrokerAddress

CITY_SCHEMES = ("postgresql://", "postgres://")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    report_cli.add_arguments(parser)
    parser.add_argument("--halls", default=None,
                        help="with --db postgresql://...: the folder of the city's hall files (their topics, counters "
                        "and target waits; a hall without one is read with this hall file's settings)")
    parser.add_argument("--city-hall", dest="city_hall", action="append", default=None, metavar="HALL",
                        help="with --db postgresql://...: only this hall (repeat for several; default: every hall)")


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    if args.db and str(args.db).startswith(CITY_SCHEMES):
        from city.report import run as run_city

        return run_city(args, hall)
    return report_cli.run(args, hall, address)
