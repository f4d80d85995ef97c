"""The MQTT protocol of Vuoro, version 1: the ONLY place topics and payload shapes are defined.

Every device, the server and the CLI build and parse topics here, so that a hall
never has two spellings of one thing. Payloads are UTF-8 JSON objects with "v": 1.
Nothing here needs MQTT 5: reply topics are fixed per device, so 3.1.1 brokers work.
The JSON underneath (limits, error codes, ProtocolError) lives in broker/wire.py and is re-exported here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# The payload format (broker/wire.py), re-exported: the protocol stays every caller's one import.
from broker.wire import COMMAND_ID_MAX as COMMAND_ID_MAX
from broker.wire import FLOAT_CHARS_MAX as FLOAT_CHARS_MAX
from broker.wire import INT_DIGITS_MAX as INT_DIGITS_MAX
from broker.wire import JSON_DEPTH_MAX as JSON_DEPTH_MAX
from broker.wire import VERSION as VERSION
from broker.wire import Err as Err
from broker.wire import ProtocolError as ProtocolError
from broker.wire import decode_object as decode_object
from broker.wire import encode as encode
from broker.wire import json_kind, shown
from broker.wire import readable_id as readable_id

ROOT = "vuoro"

COMMAND_ROLES = ("kiosk", "counter", "admin", "web")
DEVICE_ROLES = ("kiosk", "counter", "display", "admin", "web")
DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HALL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")  # the hall's segment of every topic (and broker account)
NOTE_MAX = 200
REASON_MAX = 100
TOKEN_MAX = 64  # a ticket's page token (the server makes 22 characters: 128 bits, URL-safe base64)
COMMENT_MAX = 500  # a visitor's feedback comment
SCORES = (1, 2, 3, 4, 5)  # the feedback scale: five faces, 1 the worst
REPLAY_PAGE_MAX = 500  # events in one page of a `replay` answer

OUTCOMES = ("resolved", "handed_on")

# Event types: the event log's vocabulary.
TICKET_ISSUED = "ticket.issued"
TICKET_CALLED = "ticket.called"
TICKET_NOSHOW = "ticket.noshow"
TICKET_DONE = "ticket.done"
TICKET_FORWARDED = "ticket.forwarded"
TICKET_EXPIRED = "ticket.expired"
COUNTER_OPENED = "counter.opened"
COUNTER_PAUSED = "counter.paused"
COUNTER_CLOSED = "counter.closed"
DAY_STARTED = "day.started"
TICKET_FEEDBACK = "ticket.feedback"  # a visitor's rating of a visit that is done, from the ticket's web page
EVENT_TYPES = (TICKET_ISSUED, TICKET_CALLED, TICKET_NOSHOW, TICKET_DONE, TICKET_FORWARDED, TICKET_EXPIRED,
               COUNTER_OPENED, COUNTER_PAUSED, COUNTER_CLOSED, DAY_STARTED, TICKET_FEEDBACK)

# Ticket states.
WAITING = "waiting"
CALLED = "called"
DONE = "done"
NOSHOW = "noshow"
EXPIRED = "expired"
TICKET_STATES = (WAITING, CALLED, DONE, NOSHOW, EXPIRED)

# Counter states.
CLOSED = "closed"
OPEN = "open"
PAUSED = "paused"

# Device and server presence.
ONLINE = "online"
OFFLINE = "offline"
STOPPED = "stopped"


# ---------------------------------------------------------------- ticket numbers

def format_number(letter: str, n: int, digits: int = 3) -> str:
    """The one formatter of a ticket number (A001..., or A0001... in a hall whose rules say "four-digits"):
    every number of a hall has the same width all day, so tickets and displays never change layout."""
    if not 1 <= n < 10 ** digits:
        raise ValueError(f"ticket number {n} does not fit {digits} digits")
    return f"{letter}{n:0{digits}d}"


def spoken_number(number: str) -> str:
    """'B042' -> 'B 0 4 2': how announcements spell a number, digit by digit."""
    return " ".join(number)


# ---------------------------------------------------------------- retained state parts
# A part names one retained state message: its topic is `state/<part>`. The server tracks what changed
# by part, and clients cache what they receive by part, so the names live here with the topics.

HALL_PART = "hall"
CALLS_PART = "calls"
STATS_PART = "stats"  # today's figures so far (broker/stats.py): waits, served, first-contact resolution


def queue_part(topic_id: str) -> str:
    return "queue/" + topic_id


def counter_part(counter_id: str) -> str:
    return "counter/" + counter_id


def device_part(role: str, device: str) -> str:
    """Where a client caches a device's presence (not a state topic: presence has its own tree)."""
    return f"device/{role}/{device}"


SERVER_PART = "server"


# ---------------------------------------------------------------- topics

@dataclass(frozen=True)
class ParsedTopic:
    kind: str  # cmd, reply, event, state, device, server
    role: str | None = None
    device: str | None = None
    name: str | None = None  # event type, or state name ("hall", "queue/general"...)


def every_hall(*parts: str) -> str:
    """A filter over every hall's topics, for the city's accounts: every_hall("state", "#") is vuoro/+/state/#."""
    return "/".join((ROOT, "+", *parts))


# What the city's readers (the collector, the overview, Home Assistant) watch of every hall, besides its events
CITY_WATCH = (every_hall("state", "#"), every_hall("server"), every_hall("device", "#"))


class Topics:
    """Builds and parses the topic tree of one hall: vuoro/<hall>/..."""

    def __init__(self, hall: str) -> None:
        if not HALL_ID_RE.match(hall):
            raise ValueError(f"invalid hall id {hall!r}")
        self.hall = hall
        self.root = f"{ROOT}/{hall}/"

    # building
    def cmd(self, role: str, device: str) -> str:
        return self.root + "cmd/" + _checked(role, device)

    def reply(self, role: str, device: str) -> str:
        return self.root + "reply/" + _checked(role, device)

    def event(self, event_type: str) -> str:
        return self.root + "event/" + event_type

    def state(self, part: str) -> str:
        return self.root + "state/" + part

    def state_hall(self) -> str:
        return self.state(HALL_PART)

    def state_queue(self, topic_id: str) -> str:
        return self.state(queue_part(topic_id))

    def state_counter(self, counter_id: str) -> str:
        return self.state(counter_part(counter_id))

    def state_calls(self) -> str:
        return self.state(CALLS_PART)

    def state_stats(self) -> str:
        return self.state(STATS_PART)

    def device(self, role: str, device: str) -> str:
        if role not in DEVICE_ROLES or not DEVICE_RE.match(device):
            raise ValueError(f"invalid device {role}/{device}")
        return self.root + "device/" + role + "/" + device

    def server(self) -> str:
        return self.root + "server"

    # subscriptions
    def all_commands(self) -> str:
        return self.root + "cmd/#"

    def all_events(self) -> str:
        return self.root + "event/#"

    def all_state(self) -> str:
        return self.root + "state/#"

    def all_devices(self) -> str:
        return self.root + "device/#"

    def all_replies(self) -> str:
        return self.root + "reply/#"

    def everything(self) -> str:
        """The hall's whole tree: what its server (and only its server) may read and write."""
        return self.root + "#"

    # parsing
    def parse(self, topic: str) -> ParsedTopic:
        """Raises ProtocolError(bad_topic) for anything that is not this hall's tree."""
        if not topic.startswith(self.root):
            raise ProtocolError(Err.BAD_TOPIC, f"topic {topic!r} is not under {self.root!r}")
        parts = topic[len(self.root):].split("/")
        head = parts[0]
        if head in ("cmd", "reply") and len(parts) == 3:
            role, device = parts[1], parts[2]
            if role not in COMMAND_ROLES:
                raise ProtocolError(Err.BAD_TOPIC, f"unknown role {role!r} (known: {', '.join(COMMAND_ROLES)})")
            if not DEVICE_RE.match(device):
                raise ProtocolError(Err.BAD_TOPIC, f"invalid device id {device!r}")
            return ParsedTopic(head, role=role, device=device)
        if head == "event" and len(parts) == 2 and parts[1] in EVENT_TYPES:
            return ParsedTopic("event", name=parts[1])
        if head == "state" and len(parts) in (2, 3):
            return ParsedTopic("state", name="/".join(parts[1:]))
        if head == "device" and len(parts) == 3 and parts[1] in DEVICE_ROLES:
            return ParsedTopic("device", role=parts[1], device=parts[2])
        if head == "server" and len(parts) == 1:
            return ParsedTopic("server")
        raise ProtocolError(Err.BAD_TOPIC, f"topic {topic!r} is not part of protocol v{VERSION}")


def _checked(role: str, device: str) -> str:
    if role not in COMMAND_ROLES:
        raise ValueError(f"unknown role {role!r}")
    if not DEVICE_RE.match(device):
        raise ValueError(f"invalid device id {device!r}")
    return role + "/" + device


# ---------------------------------------------------------------- commands

FieldCheck = Callable[[Any], str | None]


def _string(max_len: int) -> FieldCheck:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, got {json_kind(value)}"
        if len(value) > max_len:
            return f"is longer than {max_len} characters"
        return None
    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {json_kind(value)}"


def _one_of(choices: tuple[str, ...]) -> FieldCheck:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {shown(value)}"
    return check


def _score(value: Any) -> str | None:
    if type(value) is not int or value not in SCORES:
        return f"must be a whole number from {SCORES[0]} to {SCORES[-1]}, got {shown(value)}"
    return None


def _seq(value: Any) -> str | None:
    return None if type(value) is int and value >= 0 else f"must be a sequence number (0 or more), got {shown(value)}"


def _string_list(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 20:
        return "must be a list of at most 20 topic ids"
    return None


@dataclass(frozen=True)
class OpSpec:
    required: Mapping[str, FieldCheck] = field(default_factory=dict)
    optional: Mapping[str, FieldCheck] = field(default_factory=dict)


OPS: Mapping[str, Mapping[str, OpSpec]] = {
    "kiosk": {
        "issue": OpSpec(required={"topic": _string(32)},
                        optional={"lang": _string(8), "priority": _boolean}),
    },
    "counter": {
        "next": OpSpec(optional={"topic": _string(32)}),
        "recall": OpSpec(),
        "noshow": OpSpec(),
        "done": OpSpec(required={"outcome": _one_of(OUTCOMES)}, optional={"matters": _string_list}),
        "forward": OpSpec(optional={"topic": _string(32), "counter": _string(32), "note": _string(NOTE_MAX)}),
        "pause": OpSpec(optional={"reason": _string(REASON_MAX)}),
        "open": OpSpec(),
        "close": OpSpec(),
    },
    "admin": {
        "ping": OpSpec(),
        "state": OpSpec(),
        "replay": OpSpec(required={"since": _seq}),
    },
    "web": {
        "feedback": OpSpec(required={"token": _string(TOKEN_MAX), "score": _score},
                           optional={"comment": _string(COMMENT_MAX)}),
        "replay": OpSpec(required={"since": _seq}),
    },
}
# Ops the server answers from its log without the engine: nothing changes, nothing is recorded.
READ_OPS = frozenset({"replay"})


@dataclass(frozen=True)
class Command:
    id: str
    role: str
    device: str
    op: str
    args: Mapping[str, Any]


def new_command_id() -> str:
    return uuid.uuid4().hex


def command_payload(op: str, command_id: str | None = None, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"v": VERSION, "id": command_id or new_command_id(), "op": op}
    payload.update({k: v for k, v in fields.items() if v is not None})
    return payload


def parse_command(raw: bytes | bytearray, role: str, device: str, *, hall: str, max_bytes: int) -> Command:
    """Validate a command; ProtocolError carries the command id whenever one could be read."""
    data = decode_object(raw, max_bytes=max_bytes)
    command_id = data.get("id")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= COMMAND_ID_MAX:
        raise ProtocolError(Err.BAD_REQUEST, f'"id" must be a string of 1-{COMMAND_ID_MAX} characters')
    if "hall" in data and data["hall"] != hall:
        raise ProtocolError(Err.WRONG_HALL, f"this is hall {hall!r}, not {shown(data['hall'])}", command_id=command_id)
    op = data.get("op")
    ops = OPS.get(role, {})
    if not isinstance(op, str) or op not in ops:
        raise ProtocolError(Err.UNKNOWN_OP, f"op {shown(op)} is not a {role} command (known: {', '.join(ops)})",
                            command_id=command_id)
    if role == "counter" and "counter" in data and op != "forward" and data["counter"] != device:
        raise ProtocolError(Err.WRONG_DEVICE, f"counter {device!r} cannot act as counter {shown(data['counter'])}",
                            command_id=command_id)
    spec = ops[op]
    args: dict[str, Any] = {}
    for name in spec.required:
        if data.get(name) is None:  # null counts as missing: optional nulls are dropped below
            raise ProtocolError(Err.BAD_FIELD, f'"{name}" is required for {op}', command_id=command_id)
    for name, check in {**spec.required, **spec.optional}.items():
        if name in data and data[name] is not None:
            problem = check(data[name])
            if problem:
                raise ProtocolError(Err.BAD_FIELD, f'"{name}" {problem}', command_id=command_id)
            args[name] = data[name]
    if op == "forward" and ("topic" in args) == ("counter" in args):
        raise ProtocolError(Err.BAD_FIELD, 'forward needs exactly one of "topic" or "counter"',
                            command_id=command_id)
    return Command(id=command_id, role=role, device=device, op=op, args=args)


def reply_ok(command_id: str, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "id": command_id, "ok": True, "result": dict(result)}


def reply_error(command_id: str | None, code: str, message: str,
                details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error.update(details)
    return {"v": VERSION, "id": command_id, "ok": False, "error": error}


# ---------------------------------------------------------------- events, state, presence

@dataclass(frozen=True)
class Event:
    seq: int
    at: str  # ISO 8601 with offset, in the hall's time zone
    type: str
    data: Mapping[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"v": VERSION, "seq": self.seq, "at": self.at, "type": self.type, **self.data}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Event:
        body = {k: v for k, v in payload.items() if k not in ("v", "seq", "at", "type")}
        return cls(seq=int(payload["seq"]), at=str(payload["at"]), type=str(payload["type"]), data=body)


def state_payload(seq: int, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "seq": seq, **fields}


def presence_payload(status: str, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "status": status, **fields}
