"""The counter model's memory: what the hall server last said, and what the panel is in the middle of.

Plain mutable records, apart from the state machine (counter/model.py) so that the panel builder
(counter/model_panel.py) can read them without importing the machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker import protocol as p
from counter.model_types import FORWARD_TO_COUNTER, AlertView, SendCommand


@dataclass(frozen=True)
class CounterInfo:
    """This counter as the hall server last described it (state/counter/<id>, or a reply's "counter")."""

    status: str
    since: str | None
    reason: str | None
    ticket: Mapping[str, Any] | None
    forwarded: tuple[Mapping[str, Any], ...]
    served_today: int

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> CounterInfo:
        ticket = data.get("ticket")
        forwarded = data.get("forwarded")
        return cls(status=str(data.get("status") or p.CLOSED), since=as_str(data.get("since")),
                   reason=as_str(data.get("reason")), ticket=dict(ticket) if isinstance(ticket, Mapping) else None,
                   forwarded=tuple(dict(t) for t in forwarded if isinstance(t, Mapping))
                   if isinstance(forwarded, list) else (),
                   served_today=as_int(data.get("served_today")) or 0)


@dataclass(frozen=True)
class QueueInfo:
    waiting: int
    priority: int
    oldest_issued_at: str | None
    expected_wait_s: int | None

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> QueueInfo:
        return cls(waiting=as_int(data.get("waiting")) or 0, priority=as_int(data.get("priority")) or 0,
                   oldest_issued_at=as_str(data.get("oldest_issued_at")),
                   expected_wait_s=as_int(data.get("expected_wait_s")))


@dataclass(frozen=True)
class DeviceInfo:
    status: str  # online, offline, stopped
    printer: str | None  # a kiosk's printer state: online, paper_near_end, paper_out, offline, unknown


@dataclass
class Incoming:
    """A ticket forwarded to this counter, waiting for it: the alert, and the row in the queue."""

    number: str
    from_counter: str | None
    note: str
    topic: str
    lang: str
    issued_at: str | None
    seq: int  # the event or state seq it was learnt from: only newer state may say it has gone


@dataclass
class Pending:
    """The one command on its way; kept until the server answers it, however long that takes."""

    command_id: str
    op: str
    fields: tuple[tuple[str, Any], ...]
    action: str  # the panel action (done and handed_on are both op "done")
    sent_at: datetime
    unconfirmed: bool = False  # timed out: the server may or may not have acted on it yet
    retry_at: datetime | None = None
    attempts: int = 1

    def effect(self) -> SendCommand:
        return SendCommand(self.command_id, self.op, self.fields)


@dataclass
class ForwardDialog:
    number: str  # the visitor being forwarded: if another one is served by the time of confirming, refuse
    mode: str = FORWARD_TO_COUNTER
    target: tuple[str, str] | None = None  # (kind, id)
    note: str = ""


@dataclass
class SimpleDialog:
    name: str  # pause, close


@dataclass
class Notice:
    view: AlertView
    until: datetime


@dataclass
class World:
    """What the hall server and the devices have said; dropped in parts on a reconnect."""

    counter: CounterInfo | None = None
    counter_seq: int = -1
    counters: dict[str, str] = field(default_factory=dict)  # every counter's status, from state/hall
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    queue_seq: dict[str, int] = field(default_factory=dict)
    devices: dict[tuple[str, str], DeviceInfo] = field(default_factory=dict)


def device_problem(role: str, info: DeviceInfo) -> tuple[str, str] | None:
    """(level, code) of what staff should know about a kiosk or a display, or None when all is well."""
    if info.status == p.OFFLINE:
        return "error", f"{role}_offline"
    if info.status == p.STOPPED:
        return "info", f"{role}_stopped"
    if role == "kiosk" and info.printer in ("paper_out", "offline", "paper_near_end"):
        return ("warning" if info.printer == "paper_near_end" else "error"), f"printer_{info.printer}"
    return None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)
