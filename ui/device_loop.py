"""The scaffolding every device's controller shares (kiosk, counter, display): one copy of it.

A device's model may be touched from the UI thread only, while messages arrive on paho's thread and
slow work (a command's round trip, printing) must never freeze the screen. So each controller:

- posts what arrives from another thread onto a thread-safe inbox (`DeviceLoop.post`), and `wake`s the
  UI thread, which drains it into the model (`DeviceLoop.posted`) when it pumps;
- hands slow jobs to one `Worker` thread, which outlives any exception and posts the outcome back.

No Kivy, no model and no protocol here: only the threads, queues and the clock. (For now in kiosk/, the
first device; the package move takes it to the shared UI package.)
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
In = TypeVar("In")
Job = TypeVar("Job")
LEVELS = {"info": logging.INFO, "warning": logging.WARNING}  # an alert's level; anything else is an error


class DeviceLoop(Generic[In]):
    """The clock, the inbox from other threads and the UI thread's wake-up of one device's controller."""

    def __init__(self, tz: tzinfo, clock: Clock | None, wake: Callable[[], None] | None) -> None:
        self.clock: Clock = clock or (lambda: datetime.now(tz))
        self.wake = wake or (lambda: None)  # set by the UI: schedule a pump() on the UI thread soon
        self.inbox: queue.SimpleQueue[In] = queue.SimpleQueue()

    def post(self, item: In) -> None:
        """Any thread: queue an input for the model, and ask the UI thread to pump soon."""
        self.inbox.put(item)
        self.wake()

    def posted(self) -> Iterator[In]:
        """The UI thread: what other threads posted, in the order it arrived, until the inbox is empty."""
        while True:
            try:
                yield self.inbox.get_nowait()
            except queue.Empty:
                return

    def hook_link(self, link: Any, up: In | None, down: In, *, announce_first: bool = False) -> None:
        """Post `up` when the broker connection comes (around the client's own handler, which announces the
        device's presence: after it when `announce_first`, else before) and `down` when it goes."""
        announce = link.on_connected

        def connected() -> None:
            if not announce_first and up is not None:
                self.post(up)
            if announce is not None:
                announce()
            if announce_first and up is not None:
                self.post(up)

        link.on_connected = connected
        link.on_disconnected = lambda: self.post(down)


class Worker(Generic[Job]):
    """One daemon thread doing a device's slow jobs in order; it outlives any exception of a job."""

    def __init__(self, name: str, do: Callable[[Job], None], failed: str, logger: logging.Logger = log) -> None:
        self.do, self.failed, self.log = do, failed, logger  # failed: the log line of a job that raised (%r: it)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, job: Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """Ask the thread to end after the jobs already queued (it is joined by `join`)."""
        self._jobs.put(None)

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self.do(job)
            except Exception:  # the worker outlives any surprise; the model's timers still run
                self.log.exception(self.failed, job)


def keep_latest(items: list[Any], item: Any, kept: int) -> list[Any]:
    """A new list of the latest `kept` items (a new list: the UI thread may be reading the old one)."""
    return [*items[-(kept - 1):], item]
