"""The hall server's read-only op `replay`: a page of the event log for a device that missed events (`vuoro web`
catching up, an admin tool), answered from the log without the engine, and rate-limited per device.

May import protocol and store only: the service calls `ReplayDesk.answer` from its one thread.
"""

from __future__ import annotations

import json

from broker import protocol as p
from broker.store import Store

PAGES_PER_S, BURST = 5.0, 20  # replay pages a device may ask for: a catch-up never starves the hall
PAGE_BYTES = 256 * 1024  # events in one replay answer, at most (and at most protocol.REPLAY_PAGE_MAX)
DEVICES_KEPT = 1000  # devices come and go: the oldest budget is forgotten past this many


class ReplayDesk:
    """Answers `replay` commands: token buckets per (role, device), pages from the store."""

    def __init__(self) -> None:
        self._budget: dict[tuple[str, str], tuple[float, float]] = {}  # device -> (pages left, at)

    def allow(self, device: tuple[str, str], clock: float) -> float:
        """0.0 when the device may have a page now (and it is counted), else the seconds until it may."""
        left, at = self._budget.get(device, (float(BURST), clock))
        left = min(float(BURST), left + (clock - at) * PAGES_PER_S)
        if left < 1.0:
            self._budget[device] = (left, clock)
            return round((1.0 - left) / PAGES_PER_S, 2)
        self._budget[device] = (left - 1.0, clock)
        if len(self._budget) > DEVICES_KEPT:
            self._budget.pop(next(iter(self._budget)))
        return 0.0

    def answer(self, store: Store, command: p.Command, clock: float) -> bytes:
        """A `replay` page: events after `since`, straight from the log. The result says up to which seq it goes
        (`upto`), whether there is `more`, the log's `first` seq (older days may be purged) and `day_start`, the
        seq of today's day.started: where a reader of today's queue begins. StorageFault goes up."""
        wait = self.allow((command.role, command.device), clock)
        if wait:
            return p.encode(p.reply_error(command.id, p.Err.RATE_LIMITED, f"too many replay pages; ask again in "
                                          f"{wait} s", {"retry_after_s": wait}))
        since = int(command.args["since"])
        bodies, first = store.page_after(since, p.REPLAY_PAGE_MAX, PAGE_BYTES)
        last = store.last_seq()  # what is committed: the engine may hold this batch's events already
        events = [json.loads(body) for body in bodies]
        upto = int(events[-1]["seq"]) if events else max(since, last)
        return p.encode(p.reply_ok(command.id, {"events": events, "upto": upto, "seq": last, "more": upto < last,
                                                "first": first, "day_start": store.replay_start()}))
