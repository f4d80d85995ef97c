"""Every byte from the central broker is hostile: garbage on any hall's topics, forged replay answers and broken
retained state never stop the collector or the city picture, never reach the database as an event, and what is
valid among them still counts."""

from __future__ import annotations

import json
import random

from broker import protocol as p
from broker.mqtt import BrokerAddress
from city.collector import Collector
from city.live import CityState
from tests.support.postgres import city_dsn, postgres  # noqa: F401 -- fixtures

AT = "2026-12-07T09:00:00+02:00"
TOPICS = ["vuoro/north/event/ticket.issued", "vuoro/north/state/queue/general", "vuoro/north/state/hall",
          "vuoro/north/device/kiosk/K1", "vuoro/north/server", "vuoro/north/reply/admin/collector",
          "vuoro/../event/x", "vuoro/north", "vuoro/north/state/queue/", "elsewhere/north/event/x", "vuoro/+/event/#"]


def garbage(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        return b"[" * 5000 + b"]" * 5000
    if kind == 2:
        return json.dumps({"v": 1, "seq": rng.choice([-1, 0, "7", True, 2**70, 1.5, None]), "at": AT,
                           "type": "ticket.issued"}).encode()
    if kind == 3:
        return json.dumps({"ok": True, "id": "x", "result": {"events": [rng.choice([1, "a", None, {}, []])],
                                                             "more": "yes", "first": "1"}}).encode()
    if kind == 4:
        return json.dumps({"status": ["online"], "printer": "paper_out", "seq": {"x": 1}}).encode()
    return "\ud800".encode("utf-8", "surrogatepass")


def test_garbage_never_stops_the_collector(city_dsn: str) -> None:  # noqa: F811
    collector = Collector(BrokerAddress("127.0.0.1", 1), city_dsn)
    rng = random.Random(17)
    try:
        for _ in range(3000):
            collector._take(rng.choice(TOPICS), garbage(rng), rng.random() < 0.5)
        # a forged answer to a question that was asked: its broken events are refused, nothing else happens
        collector.tracks["north"].asking = "q1"
        valid = {"v": 1, "seq": 1, "at": AT, "type": "ticket.issued"}
        forged = {"v": p.VERSION, "ok": True, "id": "q1", "result": {"events": [{"seq": 1}, "x", valid]}}
        collector._take("vuoro/north/reply/admin/collector", json.dumps(forged).encode(), False)
        collector._flush(force=True)
        assert collector.counts.refused > 0
        from city.pgstore import CityStore

        store = CityStore(city_dsn)
        try:
            assert store.rows("north") == [(1, {"v": 1, "seq": 1, "at": AT, "type": "ticket.issued"})]
        finally:
            store.close()
    finally:
        collector.stop()


def test_broken_retained_state_leaves_the_picture_whole() -> None:
    city = CityState()
    rng = random.Random(5)
    for _ in range(3000):
        city.apply(rng.choice(TOPICS), garbage(rng), "2026-12-07T09:00:00+02:00")
    snapshot = city.snapshot()
    json.dumps(snapshot)  # always serialisable for the overview and /metrics
    for hall in snapshot["halls"]:
        assert p.HALL_ID_RE.match(hall["hall"])
