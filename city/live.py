"""What every hall looks like right now, from the central broker's retained messages: each hall's server, queues,
counters and devices. Pure (topics and payloads in, a picture out); the overview page, the Prometheus
endpoint and Home Assistant discovery all read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker import protocol as p

MAX_BYTES = 256 * 1024  # a retained state message is a few kB; anything far bigger is refused


@dataclass
class Device:
    role: str
    device: str
    status: str = p.OFFLINE
    since: str | None = None  # when it was last seen changing status (the collector's clock, ISO)
    printer: str | None = None  # a kiosk's printer state: online, paper_near_end, paper_out, offline...

    def public(self) -> dict[str, Any]:
        return {"role": self.role, "device": self.device, "status": self.status, "since": self.since,
                "printer": self.printer}


@dataclass
class Hall:
    id: str
    server: dict[str, Any] = field(default_factory=dict)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    hall: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    devices: dict[tuple[str, str], Device] = field(default_factory=dict)
    seq: int = 0  # the highest seq any message of the hall named

    @property
    def online(self) -> bool:
        return self.server.get("status") == p.ONLINE

    def public(self) -> dict[str, Any]:
        return {"hall": self.id, "server": self.server.get("status", "unknown"), "seq": self.seq,
                "day": self.hall.get("day"), "waiting": self.hall.get("waiting"),
                "queues": {t: {"waiting": q.get("waiting", 0), "expected_wait_s": q.get("expected_wait_s"),
                               "oldest_issued_at": q.get("oldest_issued_at")} for t, q in sorted(self.queues.items())},
                "counters": {c: s.get("status") for c, s in sorted(self.counters.items())},
                "devices": [d.public() for _, d in sorted(self.devices.items())],
                "today": self.stats.get("hall") or {}}


class CityState:
    def __init__(self) -> None:
        self.halls: dict[str, Hall] = {}
        self.version = 0  # grows with every change: the overview's streams send only what is new

    def hall(self, hall_id: str) -> Hall:
        found = self.halls.get(hall_id)
        if found is None:
            found = self.halls[hall_id] = Hall(hall_id)
        return found

    def apply(self, topic: str, payload: bytes, now_iso: str) -> str | None:
        """Take one message of the central broker; returns the hall it changed (None: not a state message, or
        refused). Every byte is hostile: a bad message is dropped, never raised."""
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != p.ROOT or not p.HALL_ID_RE.match(parts[1]):
            return None
        hall_id = parts[1]
        try:
            parsed = p.Topics(hall_id).parse(topic)
            body = p.decode_object(payload, max_bytes=MAX_BYTES) if payload else {}
        except p.ProtocolError:
            return None
        hall = self.hall(hall_id)
        seq = body.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > hall.seq:
            hall.seq = seq
        if parsed.kind == "server":
            hall.server = body
        elif parsed.kind == "state" and parsed.name:
            kind, _, name = parsed.name.partition("/")
            if kind == "queue" and name:
                _put(hall.queues, name, body)
            elif kind == "counter" and name:
                _put(hall.counters, name, body)
            elif parsed.name == p.HALL_PART:
                hall.hall = body
            elif parsed.name == p.STATS_PART:
                hall.stats = body
            else:
                return None
        elif parsed.kind == "device" and parsed.role and parsed.device:
            key = (parsed.role, parsed.device)
            if not body:  # a cleared presence: the device was removed
                hall.devices.pop(key, None)
            else:
                device = hall.devices.get(key) or hall.devices.setdefault(key, Device(*key))
                status = str(body.get("status", p.OFFLINE))
                if status != device.status or device.since is None:
                    device.since = now_iso
                device.status = status
                printer = body.get("printer")
                device.printer = str(printer.get("state")) if isinstance(printer, Mapping) else None
        elif parsed.kind == "event":
            pass  # events move seq only
        else:
            return None
        self.version += 1
        return hall_id

    def snapshot(self) -> dict[str, Any]:
        return {"version": self.version, "halls": [h.public() for _, h in sorted(self.halls.items())]}


def _put(into: dict[str, dict[str, Any]], name: str, body: dict[str, Any]) -> None:
    if body:
        into[name] = body
    else:  # an empty retained message clears the part (a topic or counter taken out of the hall)
        into.pop(name, None)
