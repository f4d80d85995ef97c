"""The city collector's bench: events per second into PostgreSQL (batched, target >= 10,000/s), and the
catch-up time for one day of many halls (the issue asks for 50) after the collector was away all day.

    python bench/collect_bench.py [--halls 50] [--catch-up-halls 50] [--db postgresql://postgres@127.0.0.1/postgres]

Part 1 writes one simulated day of the demo hall under `--halls` hall ids, in the collector's batches, into a
fresh database (dropped after). Part 2 starts `--catch-up-halls` real hall servers, each on its own Mosquitto
bridged to a central Mosquitto, each with one simulated day already in its log, then a collector on an empty
database, and times until the centre holds every hall's whole day (the halls replay it, rate limited).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytics import simulate as sim  # noqa: E402
from broker import protocol as p  # noqa: E402
from broker.config import DEMO_HALL, load_hall  # noqa: E402
from broker.store import Store  # noqa: E402
from city.account import load_account  # noqa: E402
from city.collector import BATCH_MAX, Collector  # noqa: E402
from city.pgstore import CityStore, row_of  # noqa: E402
from tests.support.city import City  # noqa: E402
from tests.support.postgres import ADMIN_DSN, Postgres  # noqa: E402

DAY = date(2026, 11, 23)


def day_events(hall_id: str, seed: int) -> list[p.Event]:
    hall = replace(load_hall(DEMO_HALL), id=hall_id)
    return [e for r in sim.simulate_days(hall, DAY, 1, seed=seed) for e in r.events]


def write_rate(pg: Postgres, halls: int) -> tuple[int, float]:
    events = [json.loads(p.encode(e.payload())) for e in day_events("bench", 7)]
    rows = [row_of(f"hall{h:03d}", body) for h in range(halls) for body in events]
    dsn = pg.create()
    try:
        store = CityStore(dsn)
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH_MAX):
            batch = rows[i:i + BATCH_MAX]
            store.write(batch, {})
        elapsed = time.perf_counter() - start
        assert store.count() == len(rows)
        store.close()
    finally:
        pg.drop(dsn)
    return len(rows), elapsed


def catch_up(pg: Postgres, halls: int) -> tuple[int, float]:
    city = City([f"hall{h:03d}" for h in range(halls)])
    dsn = pg.create()
    total = 0
    try:
        city.provision()
        city.start_central()
        for index, hall in enumerate(city.halls.values()):
            events = day_events(hall.id, 100 + index)
            store = Store(hall.db, hall.id)
            store.commit([(e, p.encode(e.payload())) for e in events], [])
            store.close()
            hall.link.mend()
            hall.start()
            total += len(hall.log())
        collector = Collector(load_account(city.account("collector")).address(city.central_address), dsn)
        start = time.perf_counter()
        collector.start(10)
        check = CityStore(dsn)
        while check.count() < total:
            collector.step(0.2)
        elapsed = time.perf_counter() - start
        check.close()
        collector.stop()
    finally:
        city.close()
        pg.drop(dsn)
    return total, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--halls", type=int, default=50)
    parser.add_argument("--catch-up-halls", type=int, default=50)
    parser.add_argument("--db", default=ADMIN_DSN, help="a PostgreSQL login that may CREATE DATABASE")
    args = parser.parse_args()
    pg = Postgres(args.db)
    n, s = write_rate(pg, args.halls)
    rate = n / s
    print(f"write: {n} events of {args.halls} halls' day in {s:.2f} s: {rate:,.0f} events/s "
          f"({'meets' if rate >= 10_000 else 'MISSES'} the 10,000/s target)")
    if args.catch_up_halls:
        n, s = catch_up(pg, args.catch_up_halls)
        print(f"catch-up: one day of {args.catch_up_halls} halls ({n} events) into an empty centre in {s:.1f} s "
              f"({n / s:,.0f} events/s through the halls' rate-limited replay)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
