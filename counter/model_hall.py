"""What the hall server says, as the counter panel takes it in: retained state, events and devices' word.

A part of `CounterModel` (counter/model.py), split out to keep each module short; it holds the model's
memory of the hall (`world`, the visitors forwarded here and where the recent ones came from) and changes
nothing else. Like the model it is pure: no clock, no I/O. It imports the protocol and the model's own
state and types, never the model itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from broker import protocol as p
from counter.model_state import CounterInfo, DeviceInfo, Incoming, QueueInfo, World, as_int, as_str, device_problem
from counter.model_types import Alert, DeviceMessage, Effect, EventMessage, StateMessage

ORIGINS_KEPT = 64  # who forwarded the recent visitors, to name them while they are served here


class HallListener:
    """The model's handlers of the hall's word (mixed into CounterModel, which sets these in __init__)."""

    counter_id: str
    topics: tuple[str, ...]
    world: World
    incoming: OrderedDict[str, Incoming]
    origins: OrderedDict[str, str]

    def _on_StateMessage(self, event: StateMessage, effects: list[Effect]) -> None:
        part, data = event.part, event.data
        seq = as_int(data.get("seq"))
        if seq is None:
            return
        world = self.world
        if part == p.counter_part(self.counter_id):
            if seq < world.counter_seq:
                return
            world.counter_seq = seq
            self._set_counter(CounterInfo.from_payload(data), effects, seq)
        elif part == p.HALL_PART:
            counters = data.get("counters")
            if isinstance(counters, Mapping):
                world.counters = {str(k): str(v) for k, v in counters.items()}
        elif part.startswith("queue/") and part[len("queue/"):] in self.topics:
            topic = part[len("queue/"):]
            if seq < world.queue_seq.get(topic, -1):
                return
            world.queue_seq[topic] = seq
            world.queues[topic] = QueueInfo.from_payload(data)

    def _set_counter(self, info: CounterInfo, effects: list[Effect], seq: int | None) -> None:
        """This counter's state from the retained message (seq given) or from a reply (seq None)."""
        self.world.counter = info
        self.world.counters[self.counter_id] = info.status
        waiting = {str(t.get("number")): t for t in info.forwarded}
        for number, ticket in waiting.items():
            if number not in self.incoming:
                self._incoming(ticket, as_str(ticket.get("counter")), seq if seq is not None else -1, effects)
        if seq is not None:  # only the server's retained state can tell that a forwarded ticket left
            for number in [n for n, i in self.incoming.items() if n not in waiting and i.seq <= seq]:
                del self.incoming[number]
        current = info.ticket
        if current is not None:
            self._served(str(current.get("number")))

    def _incoming(self, ticket: Mapping[str, Any], from_counter: str | None, seq: int,
                  effects: list[Effect]) -> None:
        number = str(ticket.get("number"))
        self.incoming[number] = Incoming(number=number, from_counter=from_counter, note=str(ticket.get("note") or ""),
                                         topic=str(ticket.get("topic") or ""), lang=str(ticket.get("lang") or ""),
                                         issued_at=as_str(ticket.get("issued_at")), seq=seq)
        effects.append(Alert("warning", "forwarded_to_you", f"{number} from counter {from_counter or '?'}"))

    def _served(self, number: str) -> None:
        """The visitor is at this counter now: the alert is over; remember who sent them."""
        incoming = self.incoming.pop(number, None)
        if incoming is not None and incoming.from_counter:
            self.origins[number] = incoming.from_counter
            while len(self.origins) > ORIGINS_KEPT:
                self.origins.popitem(last=False)

    def _on_EventMessage(self, event: EventMessage, effects: list[Effect]) -> None:
        data = event.data
        ticket = data.get("ticket")
        if not isinstance(ticket, Mapping):
            if event.type == p.DAY_STARTED:
                self.incoming.clear()
                self.origins.clear()
            return
        number = str(ticket.get("number"))
        seq = as_int(data.get("seq")) or -1
        if event.type == p.TICKET_FORWARDED and data.get("to_counter") == self.counter_id:
            if number not in self.incoming:
                self._incoming(ticket, as_str(data.get("counter")), seq, effects)
            else:
                self.incoming[number].seq = max(self.incoming[number].seq, seq)
        elif number in self.incoming:
            if event.type == p.TICKET_CALLED and data.get("counter") == self.counter_id:
                self._served(number)
            else:  # called elsewhere, sent back to its topic, expired: no longer waiting for this counter
                del self.incoming[number]

    def _on_DeviceMessage(self, event: DeviceMessage, effects: list[Effect]) -> None:
        if event.role not in ("kiosk", "display"):
            return
        key = (event.role, event.device)
        data = event.data
        if not data:
            self.world.devices.pop(key, None)
            return
        printer = data.get("printer")
        info = DeviceInfo(status=str(data.get("status") or p.OFFLINE),
                          printer=as_str(printer.get("state")) if isinstance(printer, Mapping) else None)
        before = self.world.devices.get(key)
        self.world.devices[key] = info
        problem = device_problem(event.role, info)
        if problem is not None and (before is None or device_problem(event.role, before) != problem):
            effects.append(Alert(problem[0], problem[1], f"{event.role} {event.device}"))
