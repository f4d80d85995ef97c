"""The counter panel's glue against a real hall server on a real broker: no window, the test plays the UI thread.

The test thread calls pump()/tick()/press() as the Kivy clock would. Everything else is real: the broker
(the embedded amqtt and a real Mosquitto), the hall server with its SQLite log, the kiosks' and displays'
retained presence, a kiosk process killed so that the broker publishes its Last Will, a broker restart.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker import protocol as p
from broker.client import HallClient
from broker.config import HallConfig
from broker.service import HallService
from counter.controller import CounterController
from counter.model_types import (
    ChooseTarget,
    ConfirmForward,
    CounterSettings,
    Done,
    Key,
    Next,
    Open,
    OpenForward,
    Panel,
    SetNote,
)
from counter.texts import panel_lines
from tests.support.brokers import ROOT, AmqttBroker, MosquittoBroker, ServerProcess
from tests.support.wait import CONNECT_S, wait_until

pytestmark = pytest.mark.slow
Make = Callable[..., CounterController]
SETTINGS = CounterSettings()
# A panel getting where a test expects: a command's timeout and its retry, twice over (a reconnect included)
PANEL_S = 2 * (SETTINGS.command_timeout_s + SETTINGS.retry_s)


@pytest.fixture
def make_desk(hall: HallConfig) -> Iterator[Make]:
    made: list[CounterController] = []

    def make(broker: AmqttBroker | MosquittoBroker, counter_id: str = "1", lang: str = "en") -> CounterController:
        controller = CounterController(hall, broker.address, counter_id, lang=lang).start(timeout=CONNECT_S)
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.stop()


def wait_panel(controller: CounterController, predicate: Callable[[Panel], bool], timeout: float = PANEL_S) -> Panel:
    """Play the UI thread: tick until the panel satisfies the predicate."""
    def reached() -> Panel | None:
        panel = controller.tick()
        return panel if predicate(panel) else None

    return wait_until(reached, timeout, lambda: f"the panel to get there; it says {panel_lines(controller.panel())}")


def synced(controller: CounterController) -> Panel:
    return wait_panel(controller, lambda panel: controller.synced)


def serving(number: str | None) -> Callable[[Panel], bool]:
    return lambda panel: (panel.current.number if panel.current else None) == number


def issue(client: HallClient, topic: str = "general", lang: str = "fi") -> str:
    return str(client.request("issue", topic=topic, lang=lang)["ticket"]["number"])


@pytest.fixture
def kiosk(hall: HallConfig, amqtt_broker: AmqttBroker) -> Iterator[HallClient]:
    client = HallClient(amqtt_broker.address, hall.id, "kiosk", "cli", presence=False)
    assert client.start()
    yield client
    client.close()


def test_the_panel_calls_serves_and_forwards_through_the_hall_server(
        make_desk: Make, make_service: Callable, amqtt_broker: AmqttBroker, kiosk: HallClient, tmp_path: Path) -> None:
    service: HallService = make_service(amqtt_broker)
    front, specialist = make_desk(amqtt_broker, "1"), make_desk(amqtt_broker, "4")
    synced(front)
    synced(specialist)
    front.press(Key("8"))
    specialist.press(Open())
    wait_panel(front, lambda panel: panel.header.status == p.OPEN)
    first, second = issue(kiosk, "general", "fi"), issue(kiosk, "general", "sv")
    wait_panel(front, lambda panel: panel.queues[0].waiting == 2)
    front.press(Key("enter"))
    panel = wait_panel(front, serving(first))
    assert panel.current is not None and panel.current.lang == "fi"
    assert service.engine.state.counters["1"].current == first
    wait_panel(specialist, lambda panel: panel.header.status == p.OPEN)
    front.press(OpenForward())
    wait_panel(front, lambda panel: any(i.id == "4" and i.enabled for i in panel.dialog.items)  # type: ignore[union-attr]
               if panel.dialog else False)
    front.press(ChooseTarget("counter", "4"))
    front.press(SetNote("extension permit"))
    front.press(ConfirmForward())
    wait_panel(front, serving(None))
    panel = wait_panel(specialist, lambda panel: any(a.id == f"forward:{first}" for a in panel.alerts))
    assert "was forwarded to you by Counter 1: “extension permit”" in "\n".join(panel_lines(panel))
    specialist.press(Key("enter"))
    panel = wait_panel(specialist, serving(first))
    assert panel.current is not None and panel.current.from_counter == "Counter 1"
    assert not any(a.id.startswith("forward:") for a in panel.alerts)
    specialist.press(Key("+"))
    wait_panel(specialist, lambda panel: panel.current is not None and panel.current.recalls == 1)
    specialist.press(Done("resolved"))
    wait_panel(specialist, serving(None))
    front.press(Next())
    wait_panel(front, serving(second))
    # what the statistics will read: the event log holds the forward, and every command once
    with sqlite3.connect(tmp_path / "hall.sqlite") as db:
        types = [row[0] for row in db.execute("SELECT type FROM events ORDER BY seq")]
    assert types.count(p.TICKET_FORWARDED) == 1 and types.count(p.TICKET_CALLED) == 4  # next, next, recall, next
    assert [c.op for c in front.sent] == ["open", "next", "forward", "next"]
    assert [c.op for c in specialist.sent] == ["open", "next", "recall", "done"]


def vuoro(*args: str) -> subprocess.CompletedProcess[str]:
    """`vuoro ...` as a person runs it (a process of its own: the CLI sets its own signal handling)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VUORO_HALL", "VUORO_BROKER")}
    return subprocess.run([sys.executable, "-m", "vuoro.cli", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=env)


def test_the_command_line_and_the_panel_act_on_one_counter(make_desk: Make, make_service: Callable,
                                                           amqtt_broker: AmqttBroker, kiosk: HallClient) -> None:
    make_service(amqtt_broker)
    desk = make_desk(amqtt_broker, "1")
    synced(desk)
    number = issue(kiosk)
    common = ["--broker", amqtt_broker.address.url]
    assert vuoro("call", "1", "open", *common).returncode == 0
    called = vuoro("call", "1", "next", *common)
    assert called.returncode == 0 and number in called.stdout
    wait_panel(desk, serving(number))  # the panel follows what `vuoro call` did
    desk.press(Key("1"))
    wait_panel(desk, serving(None))
    refused = vuoro("call", "1", "recall", *common)  # and the command line sees what the panel did
    assert refused.returncode == 1 and "no_ticket" in refused.stderr


def test_presence_is_retained_and_said_goodbye(make_desk: Make, make_service: Callable, amqtt_broker: AmqttBroker,
                                               hall: HallConfig) -> None:
    make_service(amqtt_broker)
    desk = make_desk(amqtt_broker, "3")
    synced(desk)
    with HallClient(amqtt_broker.address, hall.id, "admin", "observer", presence=False, watch=True) as watcher:
        assert watcher.start()
        assert watcher.wait_for(lambda s: s.get("device/counter/3", {}).get("status") == p.ONLINE)
        device = watcher.snapshot()["device/counter/3"]
        assert device["app"] == "counter" and device["app_version"]
        desk.stop()
        assert watcher.wait_for(lambda s: s.get("device/counter/3", {}).get("status") == p.STOPPED)


KIOSK_SCRIPT = """
import sys, time
from broker.client import HallClient
from broker.mqtt import BrokerAddress
client = HallClient(BrokerAddress.parse(sys.argv[1]), "kvarnby", "kiosk", "K1",
                    presence_fields={"app": "kiosk", "printer": {"state": "paper_out", "paper": "out",
                                                                 "message": "the paper roll is empty"}})
assert client.start(10)
print("up", flush=True)
time.sleep(60)
"""


def test_hall_alerts_from_a_kiosk_out_of_paper_and_then_gone(make_desk: Make, make_service: Callable,
                                                             amqtt_broker: AmqttBroker, hall: HallConfig) -> None:
    make_service(amqtt_broker)
    desk = make_desk(amqtt_broker, "1")
    synced(desk)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KIOSK_SCRIPT, amqtt_broker.address.url], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        panel = wait_panel(desk, lambda panel: any(a.id == "kiosk:K1" for a in panel.alerts))
        assert "Kiosk “Kiosk at the entrance” is out of paper: change the roll" in panel_lines(panel)
        proc.send_signal(signal.SIGKILL)  # no goodbye: the broker publishes the kiosk's Last Will
        proc.wait(5)
        panel = wait_panel(desk, lambda panel: "Kiosk “Kiosk at the entrance” is offline" in panel_lines(panel))
        assert next(a for a in panel.alerts if a.id == "kiosk:K1").level == "error"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_a_broker_restart_while_serving_keeps_the_visitor_refuses_and_resyncs(
        make_desk: Make, hall: HallConfig, tmp_path: Path, kind: str) -> None:
    broker: AmqttBroker | MosquittoBroker = AmqttBroker() if kind == "amqtt" else MosquittoBroker()
    broker.start()
    server = ServerProcess(tmp_path / "hall.sqlite", broker.address).start()
    kiosk = HallClient(broker.address, hall.id, "kiosk", "cli", presence=False)
    try:
        assert kiosk.start()
        desk = make_desk(broker, "1")
        synced(desk)
        desk.press(Open())
        first, second = issue(kiosk), issue(kiosk)
        wait_panel(desk, lambda panel: panel.queues[0].waiting == 2)
        desk.press(Next())
        wait_panel(desk, serving(first))

        broker.stop()
        panel = wait_panel(desk, lambda panel: panel.header.link == "offline")
        assert panel.current is not None and panel.current.number == first and panel.current.stale
        lines = panel_lines(panel)
        assert "No connection to the hall server. Nothing is sent; the visitor stays on screen." in lines
        sent = len(desk.sent)
        for key in ("1", "enter", "+"):
            panel = desk.press(Key(key))
            assert panel.notice is not None and panel.notice.text.id == "counter.refused.offline"
        assert len(desk.sent) == sent  # nothing was queued to go out later

        broker.start()
        panel = wait_panel(desk, lambda panel: panel.header.link == "online" and panel.current is not None
                           and not panel.current.stale)
        assert panel.current is not None and panel.current.number == first
        desk.press(Key("1"))
        wait_panel(desk, serving(None))
        desk.press(Key("enter"))
        wait_panel(desk, serving(second))
    finally:
        kiosk.close()
        assert server.stop() == 0
        broker.close()
    with sqlite3.connect(tmp_path / "hall.sqlite") as db:
        called = [json.loads(body)["ticket"]["number"] for (body,) in
                  db.execute("SELECT body FROM events WHERE type = 'ticket.called' ORDER BY seq")]
    assert called == [first, second]  # each visitor called once: nothing doubled, nothing lost


def test_a_hall_server_gone_is_said_and_its_return_resyncs(make_desk: Make, amqtt_broker: AmqttBroker,
                                                          hall: HallConfig, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "hall.sqlite", amqtt_broker.address).start()
    desk = make_desk(amqtt_broker, "1")
    synced(desk)
    desk.press(Open())
    wait_panel(desk, lambda panel: panel.header.status == p.OPEN)
    server.kill()
    panel = wait_panel(desk, lambda panel: panel.header.link == "no_server")
    assert "The hall server is not answering. Nothing is sent; the visitor stays on screen." in panel_lines(panel)
    panel = desk.press(Key("enter"))
    assert panel.notice is not None and panel.notice.text.id == "counter.refused.offline"
    server = ServerProcess(tmp_path / "hall.sqlite", amqtt_broker.address).start()
    try:
        wait_panel(desk, lambda panel: panel.header.link == "online" and panel.header.status == p.OPEN)
    finally:
        assert server.stop() == 0


def test_snapshots_of_the_panel_in_each_language_from_the_command_line(
        make_service: Callable, amqtt_broker: AmqttBroker, tmp_path: Path, kiosk: HallClient, hall: HallConfig,
        pictures: Callable[[str], Path]) -> None:
    make_service(amqtt_broker)
    desk = HallClient(amqtt_broker.address, hall.id, "counter", "2", presence=False)
    specialist = HallClient(amqtt_broker.address, hall.id, "counter", "6", presence=False)
    try:
        assert desk.start() and specialist.start()
        desk.request("open")
        specialist.request("open")
        for topic, lang in [("taxes", "en"), ("general", "se"), ("general", "fi"), ("parking", "sv")]:
            issue(kiosk, topic, lang)
        specialist.request("next")  # E001 (en) at counter 6, sent on to counter 2 with a note
        specialist.request("forward", counter="2", note="payment plan")
        desk.request("next")  # the forwarded one comes first
        desk.request("recall")
    finally:
        desk.close()
        specialist.close()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(ROOT), KIVY_HOME=str(tmp_path / "kivy"), XDG_RUNTIME_DIR=str(tmp_path))
    from PIL import Image

    for lang in hall.languages:
        png = pictures("counter") / f"panel-{lang}.png"
        run = subprocess.run([sys.executable, "-m", "vuoro.cli", "counter", "--broker", amqtt_broker.address.url,
                              "--id", "2", "--lang", lang, "--snapshot", str(png)],
                             capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"written to {png}" in run.stdout
        assert Image.open(png).size == (1280, 800) and png.stat().st_size < 400_000
    refused = subprocess.run([sys.executable, "-m", "vuoro.cli", "counter", "--broker", amqtt_broker.address.url,
                              "--id", "99", "--snapshot", str(tmp_path / "x.png")], capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=60)
    assert refused.returncode == 2 and "counter '99' is not in hall" in refused.stderr


def test_a_panel_that_runs_for_months_keeps_only_its_latest_commands(
        make_desk: Make, make_service: Callable, amqtt_broker: AmqttBroker, kiosk: HallClient) -> None:
    from counter.controller import SENT_KEPT

    make_service(amqtt_broker)
    desk = make_desk(amqtt_broker, "2")
    synced(desk)
    desk.press(Open())
    wait_panel(desk, lambda panel: panel.header.status == p.OPEN)
    numbers = [issue(kiosk) for _ in range(SENT_KEPT + 5)]
    for number in numbers:
        wait_panel(desk, lambda panel: desk.model.pending is None and panel.queues[0].waiting >= 1)
        assert desk.act(Next())  # still says it sent, with the list at its bound
        wait_panel(desk, serving(number))
    assert desk.sent_count == len(numbers) + 1
    assert len(desk.sent) == SENT_KEPT and [c.op for c in desk.sent] == ["next"] * SENT_KEPT
