"""The queue as a pure state machine: (state, command, now) -> events + reply.

The engine checks a command completely before it emits anything, so a refusal
leaves the state and the log untouched. Every change goes through
`HallState.apply`, the same function that replays the log at start.
Time is passed in; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker import protocol as p
from broker.config import HallConfig
from broker.estimate import Estimate, estimate_wait
from broker.hallstate import QUEUE_PREVIEW, HallState, Ticket
from broker.protocol import Err, ProtocolError
from broker.routing import FORWARDED, next_source
from broker.waitmodel import epoch_s

MAX_NUMBER = 999  # with the default rules (numbers = "refuse"): config.Rules.max_number


@dataclass
class Outcome:
    """What one command did: the events to commit (maybe a day rollover even on refusal) and the reply."""

    events: list[p.Event]
    reply: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.reply.get("ok"))


class Engine:
    def __init__(self, hall: HallConfig, *, always_open: bool = False, state: HallState | None = None) -> None:
        self.hall = hall
        self.always_open = always_open
        self.state = state or HallState(hall)
        self._pending: list[p.Event] = []

    # ------------------------------------------------------------ entry points

    def handle(self, command: p.Command, now: datetime) -> Outcome:
        self._pending = []
        self._roll_day(now)
        try:
            result = self._dispatch(command, now)
            reply = p.reply_ok(command.id, result)
        except ProtocolError as exc:
            reply = p.reply_error(command.id, exc.code, exc.message, exc.details)
        except Exception as exc:  # a bug of ours must not stop the hall: answer, and keep what was applied
            reply = p.reply_error(command.id, Err.INTERNAL, f"internal error in {command.op}: "
                                  f"{type(exc).__name__}: {exc}")
        return Outcome(self._take(), reply)

    def tick(self, now: datetime) -> list[p.Event]:
        """Run by the service every few seconds: day rollover and the expiry after closing."""
        self._pending = []
        self._roll_day(now)
        if not self.always_open:
            self._expire_after_close(now)
        return self._take()

    def apply(self, event: p.Event) -> None:
        self.state.apply(event)

    # ------------------------------------------------------------ plumbing

    def _take(self) -> list[p.Event]:
        events, self._pending = self._pending, []
        return events

    def _emit(self, event_type: str, now: datetime, **data: Any) -> p.Event:
        event = p.Event(seq=self.state.seq + 1, at=_iso(now), type=event_type, data=data)
        self.state.apply(event)
        number = data.get("ticket", {}).get("number") if isinstance(data.get("ticket"), dict) else None
        if number is not None:
            data["ticket"] = self.state.tickets[number].public()  # the ticket as the event left it
        self._pending.append(event)
        return event

    def _dispatch(self, command: p.Command, now: datetime) -> dict[str, Any]:
        if command.op in p.READ_OPS:  # the server answers these from its log; the engine holds no history
            raise ProtocolError(Err.UNKNOWN_OP, f"{command.op} is answered by the hall server, not the engine")
        match command.role, command.op:
            case "kiosk", "issue":
                return self._issue(command, now)
            case "web", "feedback":
                return self._feedback(command, now)
            case "admin", "ping":
                return {"pong": True, "seq": self.state.seq}
            case "admin", "state":
                return self.snapshot(now)
            case "counter", _:
                return self._counter_op(command, now)
        # parse_command lets no such command through: one made by hand is refused, and the server counts it
        raise ProtocolError(Err.UNKNOWN_OP, f"op {command.op!r} is not a {command.role} command the engine handles")

    def _counter_op(self, command: p.Command, now: datetime) -> dict[str, Any]:
        counter, args = command.device, command.args
        if counter not in self.hall.counters:
            raise ProtocolError(Err.UNKNOWN_COUNTER, f"counter {counter!r} is not in hall "
                                f"{self.hall.id!r} (known: {', '.join(self.hall.counters)})")
        match command.op:
            case "next":
                return self._op_next(counter, args, now)
            case "recall":
                return self._op_recall(counter, args, now)
            case "noshow":
                return self._op_noshow(counter, args, now)
            case "done":
                return self._op_done(counter, args, now)
            case "forward":
                return self._op_forward(counter, args, now)
            case "pause":
                return self._op_pause(counter, args, now)
            case "open":
                return self._op_open(counter, args, now)
            case "close":
                return self._op_close(counter, args, now)
        raise ProtocolError(Err.UNKNOWN_OP, f"op {command.op!r} is not a counter command the engine handles")

    # ------------------------------------------------------------ the day

    def _roll_day(self, now: datetime) -> None:
        today = now.date().isoformat()
        state = self.state
        if state.day is not None and today <= state.day:
            return  # same day, or the clock stepped back: never restart numbers twice in a day
        if state.day is not None:
            for ticket in self._open_tickets():
                self._emit(p.TICKET_EXPIRED, now, ticket={"number": ticket.number}, reason="day_end")
            for counter in state.counters.values():
                if counter.status != p.CLOSED:
                    self._emit(p.COUNTER_CLOSED, now, counter=counter.id, reason="day_end")
        self._emit(p.DAY_STARTED, now, day=today,
                   service_time_s={t: round(s, 1) for t, s in state.service_time_s.items()},
                   model=state.model.snapshot())

    def _expire_after_close(self, now: datetime) -> None:
        closes = self.hall.hours.closing_time(now.date(), now.tzinfo)
        grace = self.hall.rules.expire_after_close_min * 60
        if closes is None or (now - closes).total_seconds() < grace:
            return
        for ticket in self._open_tickets():
            if ticket.state == p.WAITING:
                self._emit(p.TICKET_EXPIRED, now, ticket={"number": ticket.number}, reason="after_close")

    def _open_tickets(self) -> list[Ticket]:
        return sorted((t for t in self.state.tickets.values() if t.state in (p.WAITING, p.CALLED)),
                      key=lambda t: t.order)

    # ------------------------------------------------------------ kiosk

    def _issue(self, command: p.Command, now: datetime) -> dict[str, Any]:
        args = command.args
        topic = self.hall.topics.get(args["topic"])
        if topic is None:
            raise ProtocolError(Err.UNKNOWN_TOPIC, f"topic {args['topic']!r} is not in hall {self.hall.id!r} "
                                f"(known: {', '.join(self.hall.topics)})")
        lang = args.get("lang", self.hall.main_language)
        if lang not in self.hall.languages:
            raise ProtocolError(Err.UNKNOWN_LANG, f"language {lang!r} is not one of this hall's "
                                f"({', '.join(self.hall.languages)})")
        priority = bool(args.get("priority", False))
        if priority and not self.hall.rules.priority_allowed:
            raise ProtocolError(Err.PRIORITY_NOT_ALLOWED, "this hall does not issue priority tickets")
        if not self.always_open and not self.hall.hours.accepts_tickets(now):
            next_open = self.hall.hours.next_opening(now)
            raise ProtocolError(Err.HALL_CLOSED, "the hall is not issuing tickets now",
                                details={"next_open": None if next_open is None else _iso(next_open)})
        n = self._free_number(topic.id, topic.letter)
        ahead = self.state.priority_waiting(topic.id) if priority else len(self.state.waiting[topic.id])
        estimate = self.expected_wait(topic.id, priority, now)
        ticket = {"number": p.format_number(topic.letter, n, self.hall.rules.number_digits), "topic": topic.id,
                  "lang": lang, "priority": priority, "issued_at": _iso(now), "ahead": ahead,
                  "expected_wait_s": estimate.wait_s, "expected_wait_range_s": [estimate.low_s, estimate.high_s]}
        token = args.get("token")  # made by the service: the engine draws no random numbers
        if isinstance(token, str):
            ticket["token"] = token
        event = self._emit(p.TICKET_ISSUED, now, ticket=ticket, device=command.device)
        if isinstance(token, str):  # only the issue event (replayed at start) and the reply carry it
            event.data["ticket"]["token"] = token
        return {"ticket": event.data["ticket"]}

    # ------------------------------------------------------------ web

    def _feedback(self, command: p.Command, now: datetime) -> dict[str, Any]:
        """A visitor's rating of their visit, from the ticket's page: once, and only after it ended done."""
        args = command.args
        number = self.state.tokens.get(args["token"])
        if number is None:
            raise ProtocolError(Err.UNKNOWN_TOKEN, "no ticket of today has this token")
        ticket = self.state.tickets[number]
        if ticket.rated:
            raise ProtocolError(Err.ALREADY_RATED, f"ticket {number} has already been rated")
        if ticket.state != p.DONE:
            raise ProtocolError(Err.VISIT_NOT_DONE, f"ticket {number} is {ticket.state}: a visit is rated once "
                                "it is done", details={"state": ticket.state})
        comment = str(args.get("comment") or "").strip()
        self._emit(p.TICKET_FEEDBACK, now, ticket={"number": number}, topic=ticket.topic, counter=ticket.counter,
                   score=int(args["score"]), **({"comment": comment} if comment else {}))
        return {"ticket": self.state.tickets[number].public()}

    def _free_number(self, topic: str, letter: str) -> int:
        """The topic's next number. Past the last one the hall's rules refuse more, or ("wrap") go on from 1,
        skipping numbers whose tickets are still waiting or at a counter: a number is never in use twice."""
        rules = self.hall.rules
        n = self.state.next_number[topic]
        if rules.numbers != "wrap":
            if n > rules.max_number:
                raise ProtocolError(Err.NUMBERS_EXHAUSTED, f"all {rules.max_number} numbers of topic {topic!r} "
                                    "are used today")
            return n
        for step in range(rules.max_number):
            candidate = (n - 1 + step) % rules.max_number + 1
            held = self.state.tickets.get(p.format_number(letter, candidate, rules.number_digits))
            if held is None or held.state not in (p.WAITING, p.CALLED):
                return candidate
        raise ProtocolError(Err.NUMBERS_EXHAUSTED, f"all {rules.max_number} numbers of topic {topic!r} are in use")

    def expected_wait(self, topic: str, priority: bool = False, now: datetime | None = None) -> Estimate:
        """The wait of a ticket drawn now, and its range, from the learned model (broker/estimate.py).

        Without `now`, the time of the last event: the state as it was then (no clock is read here).
        """
        if now is not None:
            return estimate_wait(self.state, topic, priority, now.timestamp())
        # before any event nothing is under way, so the moment does not matter
        return estimate_wait(self.state, topic, priority, epoch_s(self.state.last_at) if self.state.last_at else 0.0)

    # ------------------------------------------------------------ counter

    def _counter_result(self, counter_id: str, ticket: Ticket | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {"counter": self.counter_state(counter_id)}
        if ticket is not None:
            result["ticket"] = ticket.public()
        return result

    def _require_current(self, counter_id: str) -> Ticket:
        ticket = self.state.current_ticket(counter_id)
        if ticket is None:
            raise ProtocolError(Err.NO_TICKET, f"counter {counter_id} has no visitor called")
        return ticket

    def _close_visit(self, counter_id: str, now: datetime) -> None:
        """An open visit ends as resolved when staff move on without saying otherwise."""
        current = self.state.current_ticket(counter_id)
        if current is not None:
            self._emit(p.TICKET_DONE, now, ticket={"number": current.number}, counter=counter_id,
                       outcome="resolved", matters=[current.topic], auto=True)

    def pick_next(self, counter_id: str, only_topic: str | None = None) -> Ticket | None:
        """Forwarded to this counter first, then the first tier with anyone waiting, longest wait first
        (broker/routing.py: the rule the expected wait plays forward too); `only_topic` looks at that topic
        only, and then not at those forwarded here."""
        state = self.state
        counter = state.counters[counter_id]
        tiers = self.hall.counters[counter_id].tiers
        if only_topic is not None:
            tiers = tuple(tuple(t for t in tier if t == only_topic) for tier in tiers)
        source = next_source(tiers, self._oldest_order, forwarded=bool(counter.forwarded) and only_topic is None)
        if source == FORWARDED:
            return state.tickets[counter.forwarded[0]]
        return None if source is None else state.head(source)

    def _oldest_order(self, topic: str) -> int | None:
        oldest = self.state.oldest(topic)
        return None if oldest is None else oldest.order

    def _op_next(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        counter = self.state.counters[counter_id]
        only = args.get("topic")
        if only is not None:
            if only not in self.hall.topics:
                raise ProtocolError(Err.UNKNOWN_TOPIC, f"topic {only!r} is not in this hall")
            if not self.hall.counters[counter_id].serves(only):
                raise ProtocolError(Err.NOT_YOUR_TOPIC, f"counter {counter_id} does not serve {only!r}")
        if counter.status == p.CLOSED:
            raise ProtocolError(Err.COUNTER_CLOSED, f"counter {counter_id} is closed; open it first")
        ticket = self.pick_next(counter_id, only)
        if ticket is None:
            raise ProtocolError(Err.QUEUE_EMPTY, f"nobody is waiting for counter {counter_id}")
        if counter.status == p.PAUSED:
            self._emit(p.COUNTER_OPENED, now, counter=counter_id, reason="next")
        self._close_visit(counter_id, now)
        self._emit(p.TICKET_CALLED, now, ticket={"number": ticket.number}, counter=counter_id, recall=0)
        return self._counter_result(counter_id, ticket)

    def _op_recall(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        ticket = self._require_current(counter_id)
        self._emit(p.TICKET_CALLED, now, ticket={"number": ticket.number}, counter=counter_id,
                   recall=ticket.recalls + 1)
        return self._counter_result(counter_id, ticket)

    def _op_noshow(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        ticket = self._require_current(counter_id)
        needed = self.hall.rules.noshow_after_recalls
        if ticket.recalls < needed:
            raise ProtocolError(Err.TOO_FEW_RECALLS, f"recall {ticket.number} {needed - ticket.recalls} more "
                                f"time(s) before marking a no-show", details={"recalls": ticket.recalls})
        self._emit(p.TICKET_NOSHOW, now, ticket={"number": ticket.number}, counter=counter_id)
        return self._counter_result(counter_id, ticket)

    def _op_done(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        ticket = self._require_current(counter_id)
        matters = list(args.get("matters") or [ticket.topic])
        unknown = [m for m in matters if m not in self.hall.topics]
        if unknown:
            raise ProtocolError(Err.UNKNOWN_TOPIC, f"matters name unknown topics: {', '.join(unknown)}")
        self._emit(p.TICKET_DONE, now, ticket={"number": ticket.number}, counter=counter_id,
                   outcome=args["outcome"], matters=matters, auto=False)
        return self._counter_result(counter_id, ticket)

    def _op_forward(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        ticket = self._require_current(counter_id)
        target: dict[str, Any]
        if "topic" in args:
            if args["topic"] not in self.hall.topics:
                raise ProtocolError(Err.UNKNOWN_TOPIC, f"topic {args['topic']!r} is not in this hall "
                                    f"(known: {', '.join(self.hall.topics)})")
            target = {"to_topic": args["topic"]}
        else:
            to = args["counter"]
            if to not in self.hall.counters:
                raise ProtocolError(Err.UNKNOWN_COUNTER, f"counter {to!r} is not in this hall "
                                    f"(known: {', '.join(self.hall.counters)})")
            if to == counter_id:
                raise ProtocolError(Err.BAD_FIELD, "a ticket cannot be forwarded to the counter it is at")
            if self.state.counters[to].status == p.CLOSED:
                raise ProtocolError(Err.COUNTER_CLOSED, f"counter {to} is closed; forward to a topic instead")
            target = {"to_counter": to}
        note = args.get("note")
        self._emit(p.TICKET_FORWARDED, now, ticket={"number": ticket.number}, counter=counter_id,
                   **target, **({"note": note} if note else {}))
        return self._counter_result(counter_id, ticket)

    def _op_pause(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        counter = self.state.counters[counter_id]
        if counter.status == p.CLOSED:
            raise ProtocolError(Err.COUNTER_CLOSED, f"counter {counter_id} is closed")
        if counter.status == p.PAUSED and counter.reason == (args.get("reason") or None):
            return self._counter_result(counter_id)  # pressed twice: nothing new happened
        self._close_visit(counter_id, now)
        self._emit(p.COUNTER_PAUSED, now, counter=counter_id, reason=args.get("reason") or None)
        return self._counter_result(counter_id)

    def _op_open(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        if self.state.counters[counter_id].status != p.OPEN:
            self._emit(p.COUNTER_OPENED, now, counter=counter_id)
        return self._counter_result(counter_id)

    def _op_close(self, counter_id: str, args: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        counter = self.state.counters[counter_id]
        if counter.status == p.CLOSED:
            return self._counter_result(counter_id)
        self._close_visit(counter_id, now)
        for number in list(counter.forwarded):  # nobody may wait for a counter that has gone home
            ticket = self.state.tickets[number]
            self._emit(p.TICKET_FORWARDED, now, ticket={"number": number}, counter=counter_id,
                       to_topic=ticket.topic, note=ticket.note or None, reason="counter_closed")
        self._emit(p.COUNTER_CLOSED, now, counter=counter_id)
        return self._counter_result(counter_id)

    # ------------------------------------------------------------ state for devices

    def counter_state(self, counter_id: str) -> dict[str, Any]:
        counter = self.state.counters[counter_id]
        current = self.state.current_ticket(counter_id)
        return {"counter": counter_id, "status": counter.status, "since": counter.since, "reason": counter.reason,
                "ticket": None if current is None else current.public(),
                "forwarded": [self.state.tickets[n].public() for n in counter.forwarded],
                "served_today": counter.served}

    def queue_state(self, topic: str, now: datetime | None = None) -> dict[str, Any]:
        waiting = self.state.waiting[topic]
        oldest = self.state.oldest(topic)
        preview = [self.state.tickets[key[2]].brief() for key in waiting[:QUEUE_PREVIEW]]
        estimate = self.expected_wait(topic, False, now)
        return {"topic": topic, "waiting": len(waiting), "priority": self.state.priority_waiting(topic),
                "oldest_issued_at": None if oldest is None else oldest.issued_at,
                "expected_wait_s": estimate.wait_s, "expected_wait_range_s": [estimate.low_s, estimate.high_s],
                "service_time_s": round(self.state.service_time_s[topic], 1), "tickets": preview}

    def hall_state(self, now: datetime) -> dict[str, Any]:
        accepting = self.always_open or self.hall.hours.accepts_tickets(now)
        next_open = None if accepting else self.hall.hours.next_opening(now)
        return {"hall": self.hall.id, "day": self.state.day, "accepting": accepting,
                "always_open": self.always_open, "next_open": None if next_open is None else _iso(next_open),
                "issued_today": self.state.issued_today,
                "waiting": sum(len(w) for w in self.state.waiting.values())
                + sum(len(c.forwarded) for c in self.state.counters.values()),
                "counters": {c.id: c.status for c in self.state.counters.values()}}

    def calls_state(self) -> dict[str, Any]:
        return {"calls": list(self.state.calls)}

    def state_messages(self, parts: set[str], now: datetime) -> dict[str, dict[str, Any]]:
        """Retained payloads for the named parts (protocol.HALL_PART, CALLS_PART, queue_part(), counter_part())."""
        messages: dict[str, dict[str, Any]] = {}
        for part in sorted(parts):
            name = part.partition("/")[2]
            if part == p.HALL_PART:
                body = self.hall_state(now)
            elif part == p.CALLS_PART:
                body = self.calls_state()
            elif name in self.hall.topics and part == p.queue_part(name):
                body = self.queue_state(name, now)
            elif name in self.hall.counters and part == p.counter_part(name):
                body = self.counter_state(name)
            else:
                continue
            messages[part] = p.state_payload(self.state.seq, **body)
        return messages

    def all_parts(self) -> set[str]:
        return ({p.HALL_PART, p.CALLS_PART} | {p.queue_part(t) for t in self.hall.topics}
                | {p.counter_part(c) for c in self.hall.counters})

    def snapshot(self, now: datetime) -> dict[str, Any]:
        return {"seq": self.state.seq, **{part: body for part, body in self.state_messages(self.all_parts(),
                                                                                           now).items()}}


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")
