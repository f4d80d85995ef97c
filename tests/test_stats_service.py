"""The hall server's statistics: today's figures on the retained state/stats, and the daily purge of old rows."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broker import protocol as p
from broker import service
from broker.client import HallClient
from broker.config import HallConfig
from tests.support.clock import FakeClock
from tests.support.mqtt_probe import Probe
from tests.support.wait import CONNECT_S, wait_until
from tests.test_report import write_week

# The server's own rhythm (taken before a test shortens it): the figures or the purge come within two of its
# periods after it has connected, on any machine
STATS_S = CONNECT_S + 2 * service.STATS_MIN_S
PURGE_S = CONNECT_S + 2 * service.TICK_S


def test_todays_figures_are_retained_for_panels_and_displays(amqtt_broker, hall: HallConfig, make_service,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "STATS_MIN_S", 0.2)
    clock = FakeClock()
    make_service(amqtt_broker, clock=clock)
    topic = p.Topics(hall.id).state_stats()
    kiosk = HallClient(amqtt_broker.address, hall.id, "kiosk", "K1")
    counter = HallClient(amqtt_broker.address, hall.id, "counter", "1")
    assert kiosk.start() and counter.start()
    with kiosk, counter:
        kiosk.request("issue", topic="general")
        kiosk.request("issue", topic="taxes")
        counter.request("open")
        clock.advance(minutes=3)
        counter.request("next")
        clock.advance(minutes=6)
        counter.request("done", outcome="resolved")
    late = Probe(amqtt_broker.address, topic)  # joins afterwards: the message is retained
    wait_until(lambda: any(m["hall"]["served"] == 1 for m in late.received(topic)), STATS_S,
               lambda: f"today's figures with one served on {topic}: {late.received(topic)}")
    figures = late.received(topic)[-1]
    assert figures["v"] == 1 and figures["day"] == "2026-11-30" and figures["seq"] >= 6
    assert figures["hall"]["issued"] == 2 and figures["hall"]["wait_mean_s"] == 180
    assert figures["topics"]["general"]["first_contact_resolution"] == 1.0
    assert figures["topics"]["taxes"]["called"] == 0
    assert figures["counters"]["1"]["served"] == 1 and figures["counters"]["1"]["serving_min"] == 6
    late.close()


def test_the_server_purges_ticket_rows_older_than_the_hall_keeps_them(amqtt_broker, hall: HallConfig,
                                                                     make_service, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "TICK_S", 0.05)
    db = tmp_path / "hall.sqlite"
    write_week(db, hall)  # 2026-11-23 to 27
    clock = FakeClock(datetime(2027, 3, 1, 9, 0, tzinfo=ZoneInfo(hall.timezone)))  # more than 90 days later
    make_service(amqtt_broker, clock=clock, db=db)
    def daily_rows() -> list[tuple[str]]:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT DISTINCT day FROM daily ORDER BY day").fetchall()

    def five_days() -> list[tuple[str]]:
        rows = daily_rows()
        return rows if len(rows) == 5 else []

    days = wait_until(five_days, PURGE_S, lambda: f"the daily figures of five days: {daily_rows()}")
    with sqlite3.connect(db) as conn:
        tickets = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'ticket.issued'").fetchone()[0]
    assert [d for (d,) in days] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    assert tickets == 0
