"""The counter panel's glue between the pure CounterModel and the hall server. No Kivy here.

Why a separate layer: the model must be touched from one thread only, while replies, retained state,
events and device presence arrive on paho's thread, and waiting for the hall server must never freeze
the panel. So, as in the kiosk:

- everything that arrives from another thread becomes a model Input on a thread-safe queue, in the order
  it arrived (connection changes included, so a reconnect is seen before the state that follows it);
- the UI thread calls `pump()` (on its clock, and whenever `wake` asks it to) to drain that queue into
  the model, and hands the model's commands to a worker thread;
- the worker sends each command with `HallClient.request`, the very call `vuoro call` makes, so the
  panel and the command line share one client path (same id on every re-send, same timeouts).

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
from counter.model import CounterModel
from counter.model_types import (
    Alert,
    CounterSettings,
    DeviceMessage,
    Effect,
    EventMessage,
    Input,
    Link,
    Panel,
    Reply,
    SendCommand,
    ServerWord,
    StateMessage,
    Tick,
    TimedOut,
)
from ui.device_loop import LEVELS, Clock, DeviceLoop, Worker, keep_latest

log = logging.getLogger(__name__)

ALERTS_KEPT = 50  # the latest alerts, for the log and the tests (each is also logged)
SENT_KEPT = 50  # the latest commands sent: a panel runs for months, one command or more a visit


class CounterController(DeviceLoop[Input]):
    """Owns the model, the hall client and a worker thread; the UI calls press/tick/pump and draws panel()."""

    def __init__(self, hall: HallConfig, address: BrokerAddress, counter_id: str, *, lang: str | None = None,
                 settings: CounterSettings | None = None, clock: Clock | None = None, mqtt_version: str = "3.1.1",
                 wake: Callable[[], None] | None = None) -> None:
        super().__init__(hall.tz, clock, wake)
        self.hall = hall
        self.model = CounterModel(hall, counter_id, self.clock(), settings, lang=lang)  # ValueError: unknown id
        self.client = HallClient(address, hall.id, "counter", counter_id, version=mqtt_version, presence=True,
                                 watch=True, listener=self._on_message,
                                 presence_fields={"app": "counter", "app_version": __version__})
        # Link(True) before the client's own handler announces this device: subscriptions are live then,
        # and no retained message of this connection has been handled yet
        self.hook_link(self.client.link, Link(True), Link(False))
        self.alerts: list[Alert] = []  # the latest ALERTS_KEPT, for the log and the tests
        self.sent: list[SendCommand] = []  # the latest SENT_KEPT commands handed to the worker (tests, the bench)
        self.sent_count = 0  # every command handed to the worker since start
        self._worker: Worker[SendCommand] = Worker(f"counter-{counter_id}-worker", self._work,
                                                   "counter command %r failed", log)
        self._panel: Panel | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 0.0) -> CounterController:
        """Connect in the background (the panel says it is connecting until the server speaks)."""
        self._worker.start()
        self.client.start(timeout=timeout)
        return self

    def stop(self) -> None:
        self._worker.stop()
        self.client.close()
        self._worker.join(5)

    # ------------------------------------------------------------ the UI thread's side

    def press(self, action: Input) -> Panel:
        """A button or a key: feed its action now (the UI thread), then return the new panel."""
        self.act(action)
        return self.panel()

    def act(self, action: Input) -> bool:
        """Feed a button's or a key's action; True when it sent a command (which is then on its way already)."""
        sent = self.sent_count
        self._feed(action)
        return self.sent_count > sent

    def tick(self) -> Panel:
        """About once a second: the serving timer, expiring notices, retries, and anything queued."""
        self.pump()
        self._feed(Tick())
        return self.panel()

    def pump(self) -> bool:
        """Drain what other threads posted into the model; True when anything was fed."""
        fed = False
        for event in self.posted():
            self._feed(event)
            fed = True
        return fed

    def panel(self) -> Panel:
        """The panel to draw; the same object while nothing visible changed (cheap to compare)."""
        panel = self.model.panel()
        if panel != self._panel:
            self._panel = panel
        return self._panel

    @property
    def synced(self) -> bool:
        return self.model.synced

    def _feed(self, event: Input) -> None:
        for effect in self.model.feed(event, self.clock()):
            self._perform(effect)

    def _perform(self, effect: Effect) -> None:
        if isinstance(effect, SendCommand):
            self.sent = keep_latest(self.sent, effect, SENT_KEPT)
            self.sent_count += 1
            self._worker.put(effect)
            time.sleep(0)  # hand the interpreter to the worker now: the command leaves before anything is drawn
        elif isinstance(effect, Alert):
            self.alerts = keep_latest(self.alerts, effect, ALERTS_KEPT)
            log.log(LEVELS.get(effect.level, logging.ERROR), "counter %s: %s %s", self.model.counter_id, effect.code,
                    effect.detail)

    # ------------------------------------------------------------ other threads

    def _on_message(self, topic: p.ParsedTopic, data: dict[str, Any]) -> None:
        """paho's thread: what the panel depends on, as model inputs in arrival order."""
        if topic.kind == "state" and topic.name:
            self.post(StateMessage(topic.name, data))
        elif topic.kind == "event" and topic.name:
            self.post(EventMessage(topic.name, data))
        elif topic.kind == "device" and topic.role and topic.device:
            self.post(DeviceMessage(topic.role, topic.device, data))
        elif topic.kind == "server":
            status = data.get("status")
            self.post(ServerWord(status if isinstance(status, str) else None))

    def _work(self, job: SendCommand) -> None:
        """The worker's thread: one command's round trip, its answer posted back."""
        self.post(self._send(job))

    def _send(self, job: SendCommand) -> Input:
        timeout = self.model.settings.command_timeout_s
        try:
            result = self.client.request(job.op, timeout, command_id=job.command_id, **job.kwargs())
        except ServerUnavailable:
            return TimedOut(job.command_id)
        except CommandError as exc:
            return Reply(job.command_id, False, code=exc.code, details=exc.details)
        return Reply(job.command_id, True, result)
