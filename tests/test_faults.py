"""Crashes and outages with real processes: SIGKILL mid-burst, a broker restart, presence of the server."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from broker import protocol as p
from broker.client import HallClient
from tests.support.brokers import ServerProcess
from tests.support.mqtt_probe import Probe

pytestmark = pytest.mark.slow
TOPICS = ["general", "permits", "parking", "social", "taxes", "appointments"]


def _issued_numbers(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT body FROM events WHERE type = 'ticket.issued' ORDER BY seq").fetchall()
    return [(json.loads(b)["ticket"]["issued_at"][:10], json.loads(b)["ticket"]["number"]) for (b,) in rows]


class Burst:
    """Kiosks that pipeline issue commands and remember every acknowledged reply."""

    def __init__(self, broker, hall, kiosks: int, per_kiosk: int) -> None:
        self.clients = [HallClient(broker.address, hall.id, "kiosk", f"K{i}", presence=False) for i in range(kiosks)]
        for client in self.clients:
            assert client.start(10)
        self.commands = [(client, p.new_command_id(), TOPICS[(i + j) % len(TOPICS)])
                         for i, client in enumerate(self.clients) for j in range(per_kiosk)]
        self.acked: dict[str, str] = {}
        self.lock = threading.Lock()

    def _record(self, reply: dict) -> None:
        if reply.get("ok"):
            with self.lock:
                self.acked[reply["id"]] = reply["result"]["ticket"]["number"]

    def fire(self) -> None:
        for client, command_id, topic in self.commands:
            client.submit("issue", self._record, command_id=command_id, topic=topic)

    def wait_acked(self, count: int, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return len(self.acked)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def test_sigkill_mid_burst_keeps_every_acknowledged_ticket(any_broker, hall, tmp_path):
    db = tmp_path / "hall.sqlite"
    server = ServerProcess(db, any_broker.address).start()
    burst = Burst(any_broker, hall, kiosks=4, per_kiosk=400)
    try:
        burst.fire()
        assert burst.wait_acked(200) >= 200
        server.kill()
        before_kill = dict(burst.acked)
        assert len(before_kill) < len(burst.commands), "the burst ended before the kill: nothing was tested"
        logged = {number for _, number in _issued_numbers(db)}
        assert set(before_kill.values()) <= logged, "an acknowledged ticket is missing from the log"

        server = ServerProcess(db, any_broker.address).start()
        # every kiosk retries what it has not heard back about, with the same ids, as HallClient.request does
        burst.acked.clear()
        burst.fire()
        assert burst.wait_acked(len(burst.commands), timeout=60) == len(burst.commands)
        for command_id, number in before_kill.items():
            assert burst.acked[command_id] == number, "a retried command got a different ticket"
        issued = _issued_numbers(db)
        assert len(issued) == len(burst.commands), "a command was processed twice or not at all"
        duplicates = [k for k, n in Counter(issued).items() if n > 1]
        assert duplicates == [], f"numbers handed out twice: {duplicates[:5]}"
    finally:
        burst.close()
        server.stop()


def test_server_presence_goes_offline_on_kill_and_stopped_on_clean_stop(any_broker, tmp_path):
    probe = Probe(any_broker.address, "vuoro/kvarnby/server")
    server = ServerProcess(tmp_path / "a.sqlite", any_broker.address).start()
    assert probe.wait("vuoro/kvarnby/server")[-1]["status"] == p.ONLINE
    server.kill()
    deadline = time.monotonic() + 10
    while probe.received("vuoro/kvarnby/server")[-1]["status"] != p.OFFLINE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.received("vuoro/kvarnby/server")[-1]["status"] == p.OFFLINE
    server = ServerProcess(tmp_path / "a.sqlite", any_broker.address).start()
    assert server.stop() == 0
    deadline = time.monotonic() + 5
    while probe.received("vuoro/kvarnby/server")[-1]["status"] != p.STOPPED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert probe.received("vuoro/kvarnby/server")[-1]["status"] == p.STOPPED
    probe.close()


def test_broker_restart_while_serving_loses_nothing(any_broker, hall, tmp_path):
    db = tmp_path / "hall.sqlite"
    server = ServerProcess(db, any_broker.address).start()
    kiosk = HallClient(any_broker.address, hall.id, "kiosk", "K1")
    desk = HallClient(any_broker.address, hall.id, "counter", "1")
    try:
        assert kiosk.start(10) and desk.start(10)
        kiosk.request("issue", topic="general")
        kiosk.request("issue", topic="general")
        desk.request("open")
        serving = desk.request("next")["ticket"]["number"]

        any_broker.stop()
        outcome: dict = {}
        # a kiosk press during the outage: retried with the same id until the broker is back
        presser = threading.Thread(target=lambda: outcome.update(kiosk.request("issue", timeout=20, topic="taxes")))
        presser.start()
        time.sleep(1.0)
        any_broker.start()
        presser.join(25)
        assert outcome["ticket"]["number"] == "E001"

        observer = HallClient(any_broker.address, hall.id, "admin", "watch", watch=True, presence=False)
        assert observer.start(10)
        # the broker lost its retained messages; the server published them again on reconnect
        assert observer.wait_for(lambda s: s.get("counter/1", {}).get("ticket", {}) and
                                 s["counter/1"]["ticket"]["number"] == serving, timeout=10)
        assert observer.wait_for(lambda s: s.get("server", {}).get("status") == p.ONLINE, timeout=10)
        done = desk.request("done", timeout=10, outcome="resolved")["ticket"]
        assert done["number"] == serving and done["state"] == p.DONE
        assert desk.request("next", timeout=10)["ticket"]["number"] == "A002"
        observer.close()
        numbers = [n for _, n in _issued_numbers(db)]
        assert numbers == ["A001", "A002", "E001"]
    finally:
        kiosk.close()
        desk.close()
        assert server.stop() == 0
