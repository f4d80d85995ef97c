"""The kiosk's glue against a real hall server on a real broker, with a preview or a fake ESC/POS printer.

No window: the test thread plays the UI thread and calls pump(), as the Kivy clock would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broker.client import HallClient
from broker.config import HallConfig
from broker.service import HallService
from kiosk.controller import KioskController
from kiosk.fake_printer import FakeEscposPrinter
from kiosk.model_types import ChooseLanguage, ChooseTopic, KioskSettings, Screen
from tests.support.brokers import AmqttBroker
from tests.support.clock import FakeClock
from tests.support.wait import CONNECT_S, wait_until
from ui.i18n import render

Make = Callable[..., KioskController]
SETTINGS = KioskSettings()
# A screen getting where a test expects: the kiosk's own patience with a ticket (send, send again, give up)
SCREEN_S = 2 * SETTINGS.issue_timeout_s + CONNECT_S


@pytest.fixture
def make_controller(hall: HallConfig, amqtt_broker: AmqttBroker) -> Iterator[Make]:
    made: list[KioskController] = []

    def make(printer: str, *, device: str = "K1", clock: Callable[[], datetime] | None = None) -> KioskController:
        controller = KioskController(hall, amqtt_broker.address, device, printer, clock=clock,
                                     status_interval=0.2).start(timeout=CONNECT_S)
        made.append(controller)
        return controller

    yield make
    for controller in made:
        controller.stop()


def wait_screen(controller: KioskController, predicate: Callable[[Screen], bool],
                timeout: float = SCREEN_S) -> Screen:
    """Play the UI thread: pump until the screen satisfies the predicate."""
    def reached() -> Screen | None:
        controller.pump()
        screen = controller.tick()
        return screen if predicate(screen) else None

    return wait_until(reached, timeout, lambda: f"the screen to get there; it shows {controller.screen()}")


def texts(screen: Screen) -> list[str]:
    return [render(item, screen.lang) for item in (*screen.title, *screen.body)]


def draw_ticket(controller: KioskController, lang: str = "sv", topic: str = "general") -> Screen:
    wait_screen(controller, lambda s: s.name == "start" and controller.synced)
    assert controller.press(ChooseLanguage(lang)).name == "topic"
    assert controller.press(ChooseTopic(topic)).name == "issuing"
    return wait_screen(controller, lambda s: s.name in ("ticket", "paper_out") and s.ticket is not None)


def test_ticket_number_is_the_servers_and_the_ticket_is_printed(make_controller: Make, make_service: Callable,
                                                                 amqtt_broker: AmqttBroker, tmp_path: Path) -> None:
    service: HallService = make_service(amqtt_broker)
    controller = make_controller(f"preview://{tmp_path / 'tickets'}")
    screen = draw_ticket(controller, "fi", "permits")
    assert screen.name == "ticket"
    assert screen.ticket is not None and screen.ticket.number.startswith("B")
    assert screen.ticket.number in service.engine.state.tickets  # the server's number, not one made up here
    assert controller.tickets[-1]["number"] == screen.ticket.number
    screen = wait_screen(controller, lambda s: any(getattr(line, "id", "") == "ticket.take" for line in s.body))
    pngs = list((tmp_path / "tickets").glob("*.png"))
    assert len(pngs) == 1 and screen.ticket is not None and screen.ticket.number in pngs[0].name
    assert screen.lang == "fi" and "Rakennusluvat" in texts(screen)


def test_paper_out_shows_the_number_large_and_the_ticket_stays_issued(make_controller: Make, make_service: Callable,
                                                                      amqtt_broker: AmqttBroker) -> None:
    service: HallService = make_service(amqtt_broker)
    with FakeEscposPrinter(serial=False, tcp=True) as fake:
        controller = make_controller(fake.tcp_uri)
        wait_screen(controller, lambda s: controller.model.printer == "ok")
        fake.set_paper("out")  # runs out between the last status poll and this visitor
        screen = draw_ticket(controller)
        screen = wait_screen(controller, lambda s: s.name == "paper_out")
    assert screen.flags.big_number and screen.ticket is not None
    assert service.engine.state.tickets[screen.ticket.number].state == "waiting"
    assert getattr(screen.body[0], "id", "") == "paper_out.title"
    assert any(a.code == "ticket_not_printed" for a in controller.alerts)


def test_server_gone_is_out_of_service_and_no_number_is_made_up(make_controller: Make, make_service: Callable,
                                                                 amqtt_broker: AmqttBroker, tmp_path: Path) -> None:
    service: HallService = make_service(amqtt_broker)
    controller = make_controller(f"preview://{tmp_path / 'tickets'}")
    wait_screen(controller, lambda s: s.name == "start" and controller.synced)
    service.stop()
    screen = wait_screen(controller, lambda s: s.name == "out_of_service")
    assert controller.press(ChooseLanguage("sv")).name == "out_of_service"
    assert screen.ticket is None and controller.tickets == []
    assert not (tmp_path / "tickets").exists() or not list((tmp_path / "tickets").glob("*.png"))


def test_no_server_at_all_is_out_of_service_after_the_start_grace(make_controller: Make, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kiosk.controller.STARTUP_GRACE_S", 0.3)
    controller = make_controller(f"preview://{tmp_path / 'tickets'}")
    screen = wait_screen(controller, lambda s: s.name == "out_of_service" and controller.model.server is False)
    assert not controller.synced and screen.ticket is None


def test_at_night_the_kiosk_says_closed_and_when_it_opens(make_controller: Make, make_service: Callable,
                                                          amqtt_broker: AmqttBroker, tmp_path: Path) -> None:
    night = FakeClock(datetime(2026, 11, 30, 22, 30, tzinfo=ZoneInfo("Europe/Helsinki")))  # a Monday night
    make_service(amqtt_broker, clock=night, always_open=False)
    controller = make_controller(f"preview://{tmp_path / 'tickets'}", clock=night.now)
    screen = wait_screen(controller, lambda s: s.name == "closed" and controller.synced)
    assert "08:00" in " ".join(texts(screen))  # tomorrow at eight, in every hall language
    assert controller.press(ChooseLanguage("sv")).name == "closed"


def test_presence_is_retained_with_version_and_printer_status(make_controller: Make, make_service: Callable,
                                                              amqtt_broker: AmqttBroker, hall: HallConfig) -> None:
    make_service(amqtt_broker)
    with FakeEscposPrinter(serial=False, tcp=True) as fake:
        controller = make_controller(fake.tcp_uri, device="K7")
        wait_screen(controller, lambda s: controller.model.printer == "ok")
        fake.set_paper("out")
        wait_screen(controller, lambda s: controller.model.printer == "out")
        with HallClient(amqtt_broker.address, hall.id, "admin", "observer", presence=False, watch=True) as watcher:
            assert watcher.start()
            assert watcher.wait_for(lambda state: state.get("device/kiosk/K7", {}).get("printer", {}).get("state")
                                    == "paper_out"), watcher.snapshot().get("device/kiosk/K7")
            device = watcher.snapshot()["device/kiosk/K7"]
    assert device["status"] == "online" and device["app"] == "kiosk" and device["app_version"]


def test_a_kiosk_that_runs_for_months_keeps_only_its_latest_tickets(make_controller: Make, make_service: Callable,
                                                                     amqtt_broker: AmqttBroker) -> None:
    from kiosk.controller import TICKETS_KEPT
    from kiosk.model_types import Done

    make_service(amqtt_broker)
    with FakeEscposPrinter(serial=False, tcp=True) as fake:
        controller = make_controller(fake.tcp_uri, device="K9")
        numbers = []
        for _ in range(TICKETS_KEPT + 5):
            screen = draw_ticket(controller)
            assert screen.ticket is not None
            numbers.append(screen.ticket.number)
            assert controller.press(Done()).name == "start"
        assert [t["number"] for t in controller.tickets] == numbers[-TICKETS_KEPT:]  # the latest, oldest gone
