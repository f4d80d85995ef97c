"""The hall server for the memory soaks: the real HallService on the real broker, whose clock a bench moves on
by a day at a time.

Why: a topic has 999 numbers a day, so 10,000 visits need a dozen days; and a device that runs for months lives
through a new day every night (numbers restart, counters close, the board clears). This process is `vuoro
server --always-open` (same HallService, SQLite log, broker) with one difference: its clock is the wall clock
plus whole days, one more each time the bench writes `DAY` on its stdin (answered `DAY <n>`); the next command
or tick starts the new day. The devices keep their own wall clocks.

Run by benchlib.DayServer: `python bench/day_server.py HALL.toml DB BROKER_URL`; prints `... ready` when serving.
"""

from __future__ import annotations

import signal
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class DayClock:
    """Wall time in the hall's zone, `days` ahead."""

    def __init__(self, tz: Any) -> None:
        self.tz = tz
        self.days = 0

    def now(self) -> datetime:
        return datetime.now(self.tz) + timedelta(days=self.days)


def main(argv: list[str] | None = None) -> int:
    from broker.config import load_hall
    from broker.mqtt import BrokerAddress
    from broker.service import HallService

    hall_path, db, url = argv if argv is not None else sys.argv[1:]
    hall = load_hall(Path(hall_path))
    clock = DayClock(hall.tz)
    service = HallService(hall, db, BrokerAddress.parse(url), always_open=True, clock=clock)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if not service.start(timeout=15):
        print("day_server: no broker", file=sys.stderr, flush=True)
        return 1

    def read() -> None:
        for line in sys.stdin:
            if line.strip() == "DAY":
                clock.days += 1
                print(f"DAY {clock.days}", flush=True)
        stop.set()  # the bench is gone

    threading.Thread(target=read, daemon=True).start()
    print(f"day_server: hall {hall.id} on {url}, log {db}; ready", flush=True)
    try:
        while not stop.is_set() and service.fatal is None:
            stop.wait(0.5)
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
