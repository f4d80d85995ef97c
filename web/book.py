"""The hall as `vuoro web` knows it: today's queue rebuilt from the event log, and one ticket's page as values.

Pure: events in (the same `HallState.apply` the hall server replays its log with, so a position in the
queue is the server's own), views out. No I/O and no clock: `now` is passed in.

A page exists for a token the hall server gave a ticket today. It stays valid until the hall's closing
time that day plus a grace period (the visitor may want to rate the visit on the way home); after that,
or for any token never issued, there is no page, and the server answers a plain 404 that tells nothing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker import protocol as p
from broker.config import HallConfig
from broker.estimate import wait_range_minutes
from broker.hallstate import HallState, Ticket

GRACE_MIN = 120  # how long after closing a ticket's page still opens (and takes feedback)

# What a page says, in the order of a visit. The page's texts and the tests switch on these words.
WAITING = "waiting"  # in the queue of its topic
FORWARDED = "forwarded"  # sent on by a counter: waits again, for another counter or topic
CALLED = "called"  # it is your turn
RECALLED = "recalled"  # called again: the counter is still waiting for you
DONE = "done"  # the visit ended: thanks, and the feedback form
NOSHOW = "noshow"  # called, never came
CLOSED = "closed"  # the hall closed (or the day ended) before the ticket was served
STATUSES = (WAITING, FORWARDED, CALLED, RECALLED, DONE, NOSHOW, CLOSED)


@dataclass(frozen=True)
class TicketView:
    """One ticket's page as plain values: the template and the SSE message render this."""

    number: str
    topic: str  # topic id (now: a forward to a topic changes it)
    lang: str
    status: str
    ahead: int | None  # people before it in its line, while it waits
    wait_min: tuple[int, int] | None  # the range printed on the ticket, as the paper rounds it
    wait_s: int  # the single figure, when there is no range
    counter: str | None  # the counter calling it (called, recalled) or it is sent to (forwarded)
    to_topic: str | None  # forwarded to another topic
    recalls: int
    rated: bool
    priority: bool

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "topic": self.topic, "lang": self.lang, "status": self.status,
                "ahead": self.ahead, "wait_min": None if self.wait_min is None else list(self.wait_min),
                "wait_s": self.wait_s, "counter": self.counter, "to_topic": self.to_topic, "recalls": self.recalls,
                "rated": self.rated, "priority": self.priority}


class Book:
    """Today's tickets and queues, from the hall's events in order. `apply` raises ValueError on a gap."""

    def __init__(self, hall: HallConfig, grace_min: int = GRACE_MIN) -> None:
        self.hall = hall
        self.grace = timedelta(minutes=grace_min)
        self.state = HallState(hall)
        self.synced = False  # has read the log from today's day.started on

    @property
    def seq(self) -> int:
        return self.state.seq

    def start_at(self, seq: int) -> None:
        """Begin a new reading of the log at `seq` (a day.started): what was known before is dropped."""
        self.state = HallState(self.hall)
        self.state.seq = seq - 1
        self.synced = False

    def apply(self, event: p.Event) -> None:
        self.state.apply(event)
        self.state.dirty.clear()  # nobody publishes this copy's state

    # ------------------------------------------------------------ lookups

    def ticket_for(self, token: str, now: datetime) -> Ticket | None:
        """The ticket of a token, if its page is open now; None says 404 (unknown, another day's, too late).

        Tokens are today's only: the day's rollover forgets them. A ticket still waiting or at a counter keeps
        its page; one whose visit is over keeps it until the grace period after closing time (or after it was
        drawn, in a hall kept open past its hours)."""
        number = self.state.tokens.get(token)
        ticket = None if number is None else self.state.tickets.get(number)
        if ticket is None or self.state.day is None:
            return None
        if ticket.state in (p.WAITING, p.CALLED) or now <= self.valid_until(ticket, now):
            return ticket
        return None

    def valid_until(self, ticket: Ticket, now: datetime) -> datetime:
        issued = datetime.fromisoformat(ticket.issued_at)
        closes = self.hall.hours.closing_time(issued.date(), issued.tzinfo)
        return max(closes or issued, issued) + self.grace

    def ahead(self, ticket: Ticket) -> int | None:
        """How many the counters call before it: its place in its line (priority tickets first, as
        `Engine.pick_next` does) or among those forwarded to its counter."""
        if ticket.state != p.WAITING:
            return None
        if ticket.to_counter is not None:
            forwarded = self.state.counters[ticket.to_counter].forwarded
            return forwarded.index(ticket.number) if ticket.number in forwarded else 0
        keys = self.state.waiting.get(ticket.topic, [])
        return bisect.bisect_left(keys, (*ticket.sort_key, ticket.number))

    def view(self, ticket: Ticket) -> TicketView:
        status = status_of(ticket)
        counter = ticket.to_counter if status == FORWARDED else ticket.counter if status in (CALLED, RECALLED) \
            else None
        to_topic = ticket.topic if status == FORWARDED and ticket.to_counter is None else None
        return TicketView(number=ticket.number, topic=ticket.topic, lang=ticket.lang, status=status,
                          ahead=self.ahead(ticket), wait_min=wait_range_minutes(
                              list(ticket.wait_range_s) if ticket.wait_range_s else None),
                          wait_s=ticket.expected_wait_s, counter=counter, to_topic=to_topic,
                          recalls=ticket.recalls, rated=ticket.rated, priority=ticket.priority)


def status_of(ticket: Ticket) -> str:
    """What the ticket's page says, in one word of STATUSES."""
    if ticket.state == p.WAITING:
        return FORWARDED if ticket.forwards else WAITING
    if ticket.state == p.CALLED:
        return RECALLED if ticket.recalls else CALLED
    if ticket.state == p.DONE:
        return DONE
    if ticket.state == p.NOSHOW:
        return NOSHOW
    return CLOSED
