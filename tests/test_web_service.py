"""The hall server's part of the visitor's page, over a real broker: each ticket's token made at issue, the web's
feedback landing in the log and in today's figures, and the `replay` read-op that lets `vuoro web` catch up."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from pathlib import Path

import pytest

from broker import protocol as p
from broker import replay, service
from broker.client import CommandError, HallClient
from broker.config import HallConfig
from broker.store import Store
from tests.support.clock import FakeClock
from tests.support.mqtt_probe import Probe
from tests.support.wait import CONNECT_S, wait_until

STATS_S = CONNECT_S + 2 * service.STATS_MIN_S
URLSAFE = re.compile(r"^[A-Za-z0-9_-]{22}$")


def _clients(broker, hall: HallConfig, *names: tuple[str, str]) -> list[HallClient]:
    clients = [HallClient(broker.address, hall.id, role, device) for role, device in names]
    for client in clients:
        assert client.start()
    return clients


def test_every_ticket_gets_its_own_128_bit_token_kept_in_the_log_and_never_in_retained_state(
        amqtt_broker, hall: HallConfig, make_service, tmp_path: Path) -> None:
    make_service(amqtt_broker, db=tmp_path / "hall.sqlite")
    retained = Probe(amqtt_broker.address, f"vuoro/{hall.id}/state/#")
    (kiosk,) = _clients(amqtt_broker, hall, ("kiosk", "K1"))
    with kiosk:
        tickets = [kiosk.request("issue", topic="general")["ticket"] for _ in range(60)]
    tokens = [t["token"] for t in tickets]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert URLSAFE.match(token), token
        assert len(base64.urlsafe_b64decode(token + "==")) == 16  # 128 random bits (the issue asks >= 96)
    db = sqlite3.connect(tmp_path / "hall.sqlite")
    logged = [json.loads(body)["ticket"]["token"] for (body,) in
              db.execute("SELECT body FROM events WHERE type = ? ORDER BY seq", (p.TICKET_ISSUED,))]
    db.close()
    assert logged == tokens  # in the event log: the web server (and a restarted hall server) reads them there
    stats_topic = p.Topics(hall.id).state_stats()
    wait_until(lambda: any(m["hall"]["issued"] == 60 for m in retained.received(stats_topic)), STATS_S,
               "today's figures with the 60 tickets")
    bodies = [body.decode() for _, body, _ in retained.messages]
    assert not any(token in body for body in bodies for token in tokens)
    retained.close()


def test_feedback_from_the_web_lands_in_the_log_and_in_todays_figures(amqtt_broker, hall: HallConfig,
                                                                       make_service, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "STATS_MIN_S", 0.2)
    make_service(amqtt_broker, clock=FakeClock(), db=tmp_path / "hall.sqlite")
    topic = p.Topics(hall.id).state_stats()
    kiosk, counter, web = _clients(amqtt_broker, hall, ("kiosk", "K1"), ("counter", "1"), ("web", "web"))
    with kiosk, counter, web:
        token = kiosk.request("issue", topic="general")["ticket"]["token"]
        with pytest.raises(CommandError) as early:
            web.request("feedback", token=token, score=4)
        assert early.value.code == p.Err.VISIT_NOT_DONE
        counter.request("open")
        counter.request("next")
        counter.request("done", outcome="resolved")
        rated = web.request("feedback", token=token, score=4, comment="Nopeaa ja ystävällistä")["ticket"]
        assert rated["rated"] is True and "token" not in rated
        with pytest.raises(CommandError) as again:
            web.request("feedback", token=token, score=1)
        assert again.value.code == p.Err.ALREADY_RATED
        with pytest.raises(CommandError) as unknown:
            web.request("feedback", token="A" * 22, score=1)
        assert unknown.value.code == p.Err.UNKNOWN_TOKEN
        with pytest.raises(CommandError) as not_web:
            counter.request("feedback", token=token, score=5)  # only the web's account may send it
        assert not_web.value.code == p.Err.UNKNOWN_OP
    late = Probe(amqtt_broker.address, topic)
    wait_until(lambda: any(m.get("feedback", {}).get("hall", {}).get("ratings") == 1 for m in late.received(topic)),
               STATS_S, lambda: f"a rating in today's figures: {late.received(topic)[-1:]}")
    feedback = late.received(topic)[-1]["feedback"]
    late.close()
    assert feedback["hall"] == {"ratings": 1, "rating_mean": 4.0, "rating_counts": [0, 0, 0, 1, 0],
                                "response_rate": 1.0}
    assert feedback["counters"]["1"]["ratings"] == 1 and feedback["topics"]["general"]["rating_mean"] == 4.0
    store = Store(tmp_path / "hall.sqlite", hall.id)
    (event,) = [e for e in store.events() if e.type == p.TICKET_FEEDBACK]
    store.close()
    assert (event.data["score"], event.data["comment"], event.data["counter"]) == (4, "Nopeaa ja ystävällistä", "1")


def test_replay_pages_the_log_for_the_web_and_is_rate_limited_per_device(amqtt_broker, hall: HallConfig,
                                                                         make_service,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(p, "REPLAY_PAGE_MAX", 4)
    monkeypatch.setattr(replay, "BURST", 6)
    monkeypatch.setattr(replay, "PAGES_PER_S", 0.01)  # refilled only after the test
    make_service(amqtt_broker)
    kiosk, web, other = _clients(amqtt_broker, hall, ("kiosk", "K1"), ("web", "web"), ("web", "web2"))
    with kiosk, web, other:
        for _ in range(9):
            kiosk.request("issue", topic="general")
        seen: list[int] = []
        since, pages = 0, 0
        while True:
            page = web.request("replay", since=since)
            pages += 1
            seen += [event["seq"] for event in page["events"]]
            assert len(page["events"]) <= 4 and page["first"] == 1 and page["day_start"] == 1
            since = page["upto"]
            if not page["more"]:
                break
        assert seen == list(range(1, page["seq"] + 1)) and pages == 3  # day.started and nine tickets
        assert any(e["type"] == p.TICKET_ISSUED and e["ticket"]["token"] for e in web.request("replay", since=0)
                   ["events"])
        for _ in range(2):
            web.request("replay", since=since)
        with pytest.raises(CommandError) as limited:
            web.request("replay", since=0)
        assert limited.value.code == p.Err.RATE_LIMITED and limited.value.details["retry_after_s"] > 0
        assert other.request("replay", since=since)["events"] == []  # another device has its own budget
        assert kiosk.request("issue", topic="general")["ticket"]["number"] == "A010"  # and the hall runs on
        with pytest.raises(CommandError) as kiosk_replay:
            kiosk.request("replay", since=0)  # a kiosk has no business reading the log
        assert kiosk_replay.value.code == p.Err.UNKNOWN_OP


def test_the_replay_budget_refills_with_time() -> None:
    desk = replay.ReplayDesk()
    device = ("web", "web")
    assert all(desk.allow(device, 100.0) == 0.0 for _ in range(replay.BURST))
    wait = desk.allow(device, 100.0)
    assert wait == pytest.approx(1 / replay.PAGES_PER_S, abs=0.01)
    assert desk.allow(device, 100.0 + wait) == 0.0
    assert desk.allow(("admin", "it"), 100.0) == 0.0
