"""`vuoro collect`: every hall's events from the central broker into the city's PostgreSQL.

    vuoro collect --broker mqtts://central:8883 --account /etc/vuoro/city/collector.toml \\
                  --db postgresql://vuoro@dbhost/city [--metrics 127.0.0.1:9108] [--homeassistant]

The work is in city/collector.py; Prometheus metrics in city/metrics.py, Home Assistant discovery in
city/homeassistant.py. Stops cleanly on SIGTERM/SIGINT (what it had not written yet, the halls give again).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from broker.config import HallConfig
from broker.mqtt import BrokerAddress

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=os.environ.get("VUORO_CITY_DB"),
                        help="the city database, postgresql://USER@HOST/DB (default: $VUORO_CITY_DB)")
    parser.add_argument("--account", default=os.environ.get("VUORO_CITY_ACCOUNT"),
                        help="the collector's account file on the central broker (from `vuoro provision --bridge`: "
                        "central/accounts/collector.toml)")
    parser.add_argument("--id", default="collector",
                        help="the collector's id: it asks halls on cmd/admin/ID (default collector; the halls' "
                        "bridges carry exactly this one in)")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve Prometheus/OpenMetrics metrics of every hall here (e.g. 127.0.0.1:9108)")
    parser.add_argument("--homeassistant", action="store_true",
                        help="publish Home Assistant MQTT discovery for every topic's waiting count and wait")


def offline(args: argparse.Namespace) -> bool:
    return True  # the central broker comes from --broker or the account file, never from the LAN


def central_address(args: argparse.Namespace, address: BrokerAddress) -> BrokerAddress:
    if not args.account:
        return address
    from city.account import load_account

    return load_account(args.account).address(address)


def run(args: argparse.Namespace, hall: HallConfig, address: BrokerAddress) -> int:
    from city.account import AccountError

    if not args.db:
        print("vuoro collect: give --db postgresql://USER@HOST/DATABASE (or $VUORO_CITY_DB)", file=sys.stderr)
        return 2
    try:
        import psycopg  # noqa: F401 -- the `city` extra
    except ModuleNotFoundError:
        print("vuoro collect: needs the city extra: pip install 'vuoro[city]'", file=sys.stderr)
        return 2
    from city.collector import Collector

    try:
        central = central_address(args, address)
        collector = Collector(central, args.db, collector_id=args.id, version=args.mqtt_version)
    except (AccountError, ValueError) as exc:
        print(f"vuoro collect: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def ask_stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    if args.homeassistant:
        from city.homeassistant import Discovery

        Discovery(collector).attach()
    if args.metrics:
        from city.metrics import serve_metrics

        host, _, port = args.metrics.rpartition(":")
        serve_metrics(collector, host or "127.0.0.1", int(port))
    if not collector.start(timeout=10.0):
        print(f"vuoro collect: the central broker {central.url} is not reachable yet; trying on", file=sys.stderr)
    print(f"vuoro collect: {central.url} -> city database; ready", flush=True)
    try:
        while not stop.is_set():
            collector.step(0.2)
    finally:
        collector.stop()
    counts = collector.counts
    print(f"vuoro collect: stopped; {counts.written} events written in {counts.batches} batches ({counts.live} came "
          f"live, {counts.replayed} replayed by the halls, {counts.duplicates} duplicates dropped)", flush=True)
    return 0
