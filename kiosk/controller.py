"""The kiosk's glue between the pure KioskModel, the hall server, and the printer. No Kivy here.

Why a separate layer: the model must be touched from one thread only (it is not thread-safe), while
replies, server status and printer status arrive on paho's and the printer monitor's threads, and
printing or waiting for the server must never freeze the screen. So:

- everything that arrives from another thread becomes a model Input on a thread-safe queue;
- the UI thread calls `pump()` (on its clock, and whenever `wake` asks it to) to drain that queue
  into the model and to hand the model's effects to a worker thread;
- the worker thread does the slow things (an issue request, printing) and posts their outcome back.

The inbox, the wake-up and the worker are the devices' shared scaffolding (ui/device_loop.py).
Tests drive it without a window: call `pump()` from the test thread, as the UI would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from broker import __version__
from broker import protocol as p
from broker.client import CommandError, HallClient, ServerUnavailable
from broker.config import HallConfig
from broker.mqtt import BrokerAddress
from kiosk.model import KioskModel
from kiosk.model_types import (
    Alert,
    Effect,
    HallState,
    Input,
    IssueError,
    IssueOk,
    IssueTimedOut,
    KioskSettings,
    PrinterStatus,
    PrintResult,
    PrintTicket,
    Screen,
    SendIssue,
    ServerStatus,
    Tick,
)
from kiosk.printer import PaperOut, Printer, PrinterError, StatusMonitor
from kiosk.printer import PrinterStatus as DeviceStatus
from kiosk.ticket import build_ticket
from ui import i18n
from ui.device_loop import LEVELS, Clock, DeviceLoop, Worker, keep_latest

log = logging.getLogger(__name__)

STARTUP_GRACE_S = 5.0  # no broker or server this long after start: out of service, not "starting"
ALERTS_KEPT = 50  # the latest alerts, for the UI's log and the tests (each is also logged)
TICKETS_KEPT = 50  # the latest tickets issued here: a kiosk runs for months (~1.5 KB a ticket, ~100 MB a year)


class KioskController(DeviceLoop[Input]):
    """Owns the model, the hall client, the printer and a worker thread; the UI calls press/tick/pump."""

    def __init__(self, hall: HallConfig, address: BrokerAddress, device_id: str, printer_uri: str, *,
                 settings: KioskSettings | None = None, clock: Clock | None = None, mqtt_version: str = "3.1.1",
                 status_interval: float = 5.0, wake: Callable[[], None] | None = None) -> None:
        super().__init__(hall.tz, clock, wake)
        self.hall = hall
        self.model = KioskModel(hall, self.clock(), settings or KioskSettings(), new_id=p.new_command_id)
        self.printer = Printer(printer_uri)  # a bad URI raises ValueError now; a missing printer is only a status
        self.monitor = StatusMonitor(self.printer, self._on_printer_status, interval=status_interval)
        self.client = HallClient(address, hall.id, "kiosk", device_id, version=mqtt_version, presence=True,
                                 watch=True, listener=self._on_message,
                                 presence_fields={"app": "kiosk", "app_version": __version__,
                                                  "printer": self.printer.last_status.payload()})
        self.hook_link(self.client.link, None, ServerStatus(False))  # the link or the server's will changed
        self.alerts: list[Alert] = []  # the latest ALERTS_KEPT, for the UI's log and the tests
        self.tickets: list[dict[str, Any]] = []  # the latest TICKETS_KEPT the server issued here (raw replies)
        self._worker: Worker[Effect] = Worker(f"kiosk-{device_id}-worker", self._work, "kiosk job %r failed", log)
        self._server_word: bool | None = None  # the server's own retained status: online or not
        self._online: bool | None = None  # what the model was last told
        self._screen: Screen | None = None
        self._started = time.monotonic()

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 0.0) -> KioskController:
        """Connect in the background (the kiosk shows out-of-service until the server speaks)."""
        self._worker.start()
        self.monitor.start()
        self.client.start(timeout=timeout)
        return self

    def stop(self) -> None:
        self._worker.stop()
        self.monitor.stop()
        self.client.close()
        self._worker.join(5)
        self.printer.close()

    # ------------------------------------------------------------ the UI thread's side

    def press(self, action: Input) -> Screen:
        """A button was pressed: feed its action now (the UI thread), then return the new screen."""
        self._feed(action)
        return self.screen()

    def tick(self) -> Screen:
        """About once a second: timeouts, link state and anything queued."""
        self.pump()
        self._feed(Tick())
        return self.screen()

    def pump(self) -> bool:
        """Drain what other threads posted into the model; True when anything was fed."""
        fed = self._check_online()
        for event in self.posted():
            if isinstance(event, ServerStatus):  # the link or the server's will changed: recompute
                fed = self._check_online() or fed
                continue
            self._feed(event)
            fed = True
        return fed

    def screen(self) -> Screen:
        """The screen to draw; the same object while nothing visible changed (cheap to compare)."""
        screen = self.model.screen()
        if screen != self._screen:
            self._screen = screen
        return self._screen

    @property
    def synced(self) -> bool:
        """The server is online and the hall state arrived: what a snapshot waits for."""
        return self.model.server is True and self.model.hall_state is not None

    def _feed(self, event: Input) -> None:
        for effect in self.model.feed(event, self.clock()):
            self._perform(effect)

    def _check_online(self) -> bool:
        online = self.client.connected and self._server_word is True
        if online is self._online:
            return False
        starting = time.monotonic() - self._started < STARTUP_GRACE_S
        if not online and self._online is None and self._server_word is None and starting:
            return False  # still starting: the model already says so ("starting")
        self._online = online
        self._feed(ServerStatus(online))
        return True

    def _perform(self, effect: Effect) -> None:
        if isinstance(effect, Alert):
            self.alerts = keep_latest(self.alerts, effect, ALERTS_KEPT)
            log.log(LEVELS.get(effect.level, logging.ERROR), "kiosk alert %s %s", effect.code, effect.detail)
            if effect.code.startswith("printer_"):
                self.monitor.poke()
            return
        if isinstance(effect, SendIssue):
            self.monitor.poke()  # a fresh paper reading before the ticket prints
        self._worker.put(effect)

    # ------------------------------------------------------------ other threads

    def _on_message(self, topic: p.ParsedTopic, data: dict[str, Any]) -> None:
        """paho's thread: keep only what the kiosk screen depends on."""
        if topic.kind == "server":
            self._server_word = data.get("status") == p.ONLINE
            self.post(ServerStatus(self._server_word))
        elif topic.kind == "state" and topic.name == p.HALL_PART and data:
            self.post(HallState.from_payload(data))

    def _on_printer_status(self, status: DeviceStatus) -> None:
        """The monitor's or the worker's thread: tell the model, and everyone watching the device status."""
        self.post(PrinterStatus(status.code))
        self.client.set_presence(printer=status.payload())

    def _work(self, job: Effect) -> None:
        """The worker's thread: the slow effects, each posting its outcome back."""
        if isinstance(job, SendIssue):
            self.post(self._issue(job))
        elif isinstance(job, PrintTicket):
            self.post(self._print(job))

    def _issue(self, job: SendIssue) -> Input:
        fields: dict[str, Any] = {"topic": job.topic, "lang": job.lang, "priority": True if job.priority else None}
        if job.matter is not None:
            fields["matter"] = job.matter
        timeout = self.model.settings.issue_timeout_s
        try:
            result = self.client.request("issue", timeout, command_id=job.command_id, **fields)
        except ServerUnavailable:
            return IssueTimedOut(job.command_id)
        except CommandError as exc:
            return IssueError.from_details(job.command_id, exc.code, exc.details)
        ticket = dict(result.get("ticket") or {})
        self.tickets = keep_latest(self.tickets, ticket, TICKETS_KEPT)
        return IssueOk(job.command_id, ticket)

    def _print(self, job: PrintTicket) -> Input:
        ticket = job.ticket
        try:
            layout = build_ticket(self.hall, ticket.raw, ticket.lang, i18n.ticket_labels(ticket.lang),
                                  paper=self.printer.paper)
            self.printer.print_ticket(layout)
        except PaperOut:
            return PrintResult(job.command_id, False, "out")
        except PrinterError:
            return PrintResult(job.command_id, False, "offline")
        return PrintResult(job.command_id, True)
