"""The hall server's statistics: today's figures on the retained state/stats, and the daily purge of old rows."""

from __future__ import annotations

import sqlite3
import time
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
from tests.test_report import write_week


def test_todays_figures_are_retained_for_panels_and_displays(amqtt_broker, hall: HallConfig, make_service,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "STATS_MIN_S", 0.2)
    clock = FakeClock()
    make_service(amqtt_broker, clock=clock)
    topic = p.Topics(hall.id).state_stats()
    kiosk = HallClient(amqtt_broker.address, hall.id, "kiosk", "K1")
    counter = HallClient(amqtt_broker.address, hall.id, "counter", "1")
    assert kiosk.start(timeout=10) and counter.start(timeout=10)
    with kiosk, counter:
        kiosk.request("issue", topic="general")
        kiosk.request("issue", topic="taxes")
        counter.request("open")
        clock.advance(minutes=3)
        counter.request("next")
        clock.advance(minutes=6)
        counter.request("done", outcome="resolved")
    late = Probe(amqtt_broker.address, topic)  # joins afterwards: the message is retained
    deadline = time.monotonic() + 10
    while not any(m["hall"]["served"] == 1 for m in late.received(topic)):
        assert time.monotonic() < deadline, late.received(topic)
        time.sleep(0.05)
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
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(db) as conn:
            days = conn.execute("SELECT DISTINCT day FROM daily ORDER BY day").fetchall()
            tickets = conn.execute("SELECT COUNT(*) FROM events WHERE type = 'ticket.issued'").fetchone()[0]
        if len(days) == 5:
            break
        assert time.monotonic() < deadline, days
        time.sleep(0.05)
    assert [d for (d,) in days] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]
    assert tickets == 0
