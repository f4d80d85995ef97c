"""`vuoro collect` on real parts: three hall servers, each on its own Mosquitto bridged over TLS to a central
Mosquitto, the collector writing into the machine's PostgreSQL (a fresh database for the test). During a
simulated morning the bridge of one hall, the central broker and the collector are killed in turn; afterwards
the central tables equal the union of the hall logs, row by row, each event once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from city.collector import AUDIT_S, REPLY_S, Collector
from tests.support.city import City, CollectorProcess, Morning, running_city
from tests.support.postgres import city_dsn, postgres  # noqa: F401 -- fixtures
from tests.support.wait import CONNECT_S, wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

HALLS = ["north", "south", "harbour"]
BRIDGE_S = 10.0 + CONNECT_S  # Mosquitto's bridge restart_timeout is 1..10 s (assets/mosquitto/bridge.conf)
# after the last outage: a bridge back, then a hall's audit (AUDIT_S) or a gap's question, answered in pages
CATCH_UP_S = BRIDGE_S + AUDIT_S + 3 * REPLY_S
STEP = 25  # tickets every hall issues between two events of the morning


@pytest.fixture
def city() -> Iterator[City]:
    with running_city(list(HALLS)) as town:
        yield town


def central_rows(dsn: str, hall: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            return [(int(s), dict(b)) for s, b in conn.execute(
                "SELECT seq, body FROM events WHERE hall = %s ORDER BY seq", (hall,))]
    except psycopg.errors.UndefinedTable:
        return []


def equal_to_halls(city: City, dsn: str) -> bool:
    return all(central_rows(dsn, h.id) == h.log() for h in city.halls.values())


def differences(city: City, dsn: str) -> str:
    out = []
    for hall in city.halls.values():
        central, own = central_rows(dsn, hall.id), hall.log()
        out.append(f"{hall.id}: hall {len(own)} events (to {own[-1][0] if own else 0}), centre {len(central)}")
    return "; ".join(out)


def test_the_centre_equals_the_union_of_the_hall_logs_after_outages(city: City, city_dsn: str) -> None:  # noqa: F811
    collector = CollectorProcess(city, city_dsn).start()
    morning = Morning(city).start()
    try:
        wait_until(morning.progressed(STEP), CATCH_UP_S, "the morning under way")
        north = city.halls["north"]
        north.link.cut()  # the city's network to one hall goes down; the hall goes on
        wait_until(morning.progressed(STEP), CATCH_UP_S, "the morning going on without the bridge")
        north.link.mend()
        assert city.central is not None
        assert city.central.proc is not None
        city.central.proc.kill()  # SIGKILL: the centre goes down, with what it had queued
        city.central.stop()
        wait_until(morning.progressed(STEP), CATCH_UP_S, "the morning going on without the centre")
        city.central.start()
        wait_until(morning.progressed(STEP), CATCH_UP_S, "the morning going on")
        collector.kill()  # SIGKILL: what it held and had not written is gone
        wait_until(morning.progressed(STEP), CATCH_UP_S, "the morning going on without the collector")
        collector.start()
        wait_until(morning.progressed(STEP), CATCH_UP_S, "the morning going on")
    finally:
        morning.stop()
    try:
        wait_until(lambda: equal_to_halls(city, city_dsn), CATCH_UP_S,
                   lambda: f"the centre to equal the halls: {differences(city, city_dsn)}; the collector said: "
                   f"{collector.output()[-3000:]}")
    finally:
        assert collector.stop() == 0
    print(collector.output().strip().splitlines()[-1], differences(city, city_dsn))
    assert not morning.errors
    with psycopg.connect(city_dsn) as conn:
        halls = sorted(h for (h,) in conn.execute("SELECT hall FROM halls"))
        marks: dict[str, int] = dict(conn.execute("SELECT hall, contiguous FROM halls").fetchall())
    assert halls == sorted(HALLS)
    assert marks == {h.id: h.log()[-1][0] for h in city.halls.values()}
    assert all(morning.issued[h] >= 6 * STEP for h in HALLS)


def test_a_collector_writes_in_batches_and_asks_every_hall(city: City, city_dsn: str) -> None:  # noqa: F811
    from city.account import load_account

    address = load_account(city.account("collector")).address(city.central_address)
    collector = Collector(address, city_dsn, audit_s=AUDIT_S)
    assert collector.start(CONNECT_S)
    morning = Morning(city, pace_s=0.005).start()
    try:
        wait_until(morning.progressed(2 * STEP), CATCH_UP_S, "the morning under way")
    finally:
        morning.stop()
    try:
        wait_until(lambda: _stepped(collector) and equal_to_halls(city, city_dsn), CATCH_UP_S,
                   lambda: f"the centre to equal the halls: {differences(city, city_dsn)}")
    finally:
        collector.stop()
    counts = collector.counts
    assert counts.written == sum(len(h.log()) for h in city.halls.values())
    assert counts.batches < counts.written  # events go in batches, not one by one
    assert counts.replays >= len(HALLS)  # each hall was asked at start
    assert not counts.refused and not counts.db_errors


def _stepped(collector: Collector) -> bool:
    collector.step(0.1)
    return True
