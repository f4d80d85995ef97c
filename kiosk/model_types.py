"""The kiosk model's vocabulary: inputs it accepts, effects it asks for, and the screen it shows.

Kept apart from the state machine (kiosk/model.py) so that the UI author and the tests read the
whole contract on one page. Everything here is a frozen dataclass of plain values: a screen can
be compared, logged, or snapshotted in a test without a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.config import HallConfig
from kiosk.ticket import round_wait_minutes, wait_range_minutes
from ui.messages import Msg as Msg  # the message types live in ui/messages.py (shared with the other apps)
from ui.messages import Param as Param
from ui.messages import Text as Text
from ui.messages import msg as msg

# Screen names: what the UI switches on.
START = "start"  # choose a language; accessibility toggle
TOPIC = "topic"  # the hall's topics; priority toggle in accessibility mode
SUBTOPIC = "subtopic"  # the children of the chosen topic, when it has any
ISSUING = "issuing"  # waiting for the server: busy, every touch ignored
TICKET = "ticket"  # the issued ticket (printing, then "take your ticket")
PAPER_OUT = "paper_out"  # the issued ticket in large digits: the printer is out of paper or offline
CLOSED = "closed"  # outside opening hours, with the next opening time
OUT_OF_SERVICE = "out_of_service"  # no hall server, or no answer to the issue command
REFUSED = "refused"  # the server refused the ticket (numbers used up, ...)
UNCONFIRMED = "unconfirmed"  # not a screen: the phase (shown as out_of_service) of a command sent but unanswered
SCREENS = (START, TOPIC, SUBTOPIC, ISSUING, TICKET, PAPER_OUT, CLOSED, OUT_OF_SERVICE, REFUSED)

PRINTER_STATES = ("unknown", "ok", "near_end", "out", "offline")

# Every message id the model can put on a screen: the i18n tests check each catalogue against it.
MESSAGE_IDS = frozenset({
    "language.name", "start.title", "start.accessibility", "start.printer_out", "start.printer_offline",
    "topic.title", "subtopic.title", "topic.priority", "nav.back", "nav.done",
    "issuing.title", "issuing.body", "ticket.take", "ticket.printing", "ticket.wait_at",
    "paper_out.title", "printer_offline.title", "paper_out.body",
    "closed.title", "closed.today", "closed.tomorrow", "closed.later", "closed.unknown",
    "oos.title", "oos.body", "oos.starting", "oos.unconfirmed", "help.ask_staff",
    "refused.title", "refused.exhausted", "refused.generic",
    "label.ticket_number", "label.topic", "label.issued", "label.ahead", "label.ahead_none",
    "label.expected_wait", "label.expected_wait_range", "label.wait_range", "label.wait_where", "label.privacy",
    "label.scan_status", "label.priority",
    "format.date", "format.time",
})
PLURAL_IDS = frozenset({"label.ahead", "label.expected_wait"})

# ---------------------------------------------------------------- inputs


class Input:
    """Base of everything fed to KioskModel.feed."""


@dataclass(frozen=True)
class Touch(Input):
    """A touch anywhere: keeps the visitor's session alive (resets the idle timer)."""


@dataclass(frozen=True)
class ChooseLanguage(Input):
    lang: str


@dataclass(frozen=True)
class ChooseTopic(Input):
    node: str  # a TopicNode id on the current level


@dataclass(frozen=True)
class ToggleAccessibility(Input):
    pass


@dataclass(frozen=True)
class TogglePriority(Input):
    pass


@dataclass(frozen=True)
class Back(Input):
    pass


@dataclass(frozen=True)
class Done(Input):
    """The visitor is finished with the ticket (or error) screen: back to start at once."""


@dataclass(frozen=True)
class Tick(Input):
    """Time passes (feed about once a second): timeouts are checked on every input."""


@dataclass(frozen=True)
class ServerStatus(Input):
    """The hall server is reachable and online (False: broker lost, or the server's will says offline)."""

    online: bool


@dataclass(frozen=True)
class HallState(Input):
    """From the retained state/hall: whether tickets are issued now, else when (tz-aware)."""

    accepting: bool
    next_open: datetime | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> HallState:
        return cls(payload.get("accepting") is True, parse_time(payload.get("next_open")))


@dataclass(frozen=True)
class IssueOk(Input):
    command_id: str
    ticket: Mapping[str, Any] = field(compare=False)  # the reply's result["ticket"]


@dataclass(frozen=True)
class IssueError(Input):
    """An error reply (CommandError.code); code "timeout" (ServerUnavailable) counts as IssueTimedOut."""

    command_id: str
    code: str
    next_open: datetime | None = None  # from the hall_closed error's details

    @classmethod
    def from_details(cls, command_id: str, code: str, details: Mapping[str, Any] | None = None) -> IssueError:
        """From a CommandError (code, details) or a reply's "error" object."""
        return cls(command_id, code, parse_time((details or {}).get("next_open")))


def issue_reply(reply: Mapping[str, Any]) -> IssueOk | IssueError:
    """A raw reply payload ({"id", "ok", "result" | "error"}) as the model's input."""
    command_id = str(reply.get("id"))
    if reply.get("ok") is True:
        return IssueOk(command_id, dict((reply.get("result") or {}).get("ticket") or {}))
    error = reply.get("error") or {}
    return IssueError.from_details(command_id, str(error.get("code") or "internal"), error)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with offset from the server; None for anything else (never a guessed time)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


@dataclass(frozen=True)
class IssueTimedOut(Input):
    command_id: str


@dataclass(frozen=True)
class PrinterStatus(Input):
    status: str  # one of PRINTER_STATES; anything else counts as offline


@dataclass(frozen=True)
class PrintResult(Input):
    """The outcome of a PrintTicket effect."""

    command_id: str
    ok: bool
    status: str = "ok"  # the printer's status when it failed: "out" or "offline"


# ---------------------------------------------------------------- effects


class Effect:
    """Base of everything KioskModel.feed asks the app to do."""


@dataclass(frozen=True)
class SendIssue(Effect):
    """Send {"op": "issue", ...} with this id. A re-send carries the same id, so it is never a second ticket."""

    command_id: str
    topic: str
    lang: str
    priority: bool
    matter: str | None = None  # the chosen sub-topic, when it is not itself a hall topic


@dataclass(frozen=True)
class TicketView:
    """A ticket the server issued, with what the screen and the printer need to show it."""

    number: str
    topic: str
    topic_name: str
    colour: str
    letter: str
    lang: str
    priority: bool
    issued_at: str
    ahead: int
    wait_min: int  # rounded as on the paper ticket, so screen and paper agree
    place: str
    raw: Mapping[str, Any] = field(compare=False, repr=False)
    wait_range_min: tuple[int, int] | None = None  # the range printed on the ticket, when the server gave one


@dataclass(frozen=True)
class PrintTicket(Effect):
    command_id: str
    ticket: TicketView


@dataclass(frozen=True)
class Alert(Effect):
    """Something staff or IT should know (log it; printer ones also go to the device status)."""

    level: str  # info, warning, error
    code: str  # server_offline, printer_out, ticket_not_printed, issue_unconfirmed, late_ticket, ...
    detail: str = ""


# ---------------------------------------------------------------- screen


@dataclass(frozen=True)
class Button:
    id: str  # stable: "lang:sv", "topic:general", "accessibility", "priority", "back", "done"
    label: Text
    action: Input  # feed this when pressed
    kind: str = "nav"  # language, topic, toggle, nav
    detail: Text | None = None  # a topic's description
    colour: str | None = None
    letter: str | None = None
    enabled: bool = True
    selected: bool = False  # a toggle that is on; the language already chosen


@dataclass(frozen=True)
class Flags:
    large_text: bool = False
    high_contrast: bool = False
    reach: bool = False  # put the buttons in the lower half of the screen
    busy: bool = False  # show a spinner; touches are ignored
    big_number: bool = False  # the ticket number fills the screen (no paper)
    accessibility: bool = False
    priority: bool = False
    printer: str = "unknown"
    countdown_s: int | None = None  # seconds until the screen returns to start by itself


@dataclass(frozen=True)
class Screen:
    name: str  # one of SCREENS
    lang: str  # the language of Msg items without their own
    title: tuple[Text, ...]  # heading line(s); one per hall language on start, closed and out_of_service
    body: tuple[Text, ...]
    buttons: tuple[Button, ...]  # the main choices: languages or topics
    controls: tuple[Button, ...]  # toggles and navigation
    flags: Flags
    ticket: TicketView | None = None  # on ticket and paper_out


@dataclass(frozen=True)
class KioskSettings:
    idle_timeout_s: float = 45.0  # no touch this long: back to start (not while issuing)
    ticket_screen_s: float = 12.0
    paper_out_screen_s: float = 60.0  # long enough to take a photo of the number
    refused_screen_s: float = 15.0
    issue_timeout_s: float = 8.0  # no reply this long: send again with the same id, then give up
    issue_attempts: int = 2


# ---------------------------------------------------------------- topics as a menu


@dataclass(frozen=True)
class TopicNode:
    """One button on a topic screen. A node with children opens a sub-topic level instead of issuing.

    `topic` is the hall topic the ticket is drawn for (a sub-topic of "permits" still queues as
    "permits" unless it is a hall topic itself); `id` is unique among its siblings.
    """

    id: str
    topic: str
    letter: str
    colour: str
    name: Mapping[str, str]
    description: Mapping[str, str] = field(default_factory=dict)
    children: tuple[TopicNode, ...] = ()

    @staticmethod
    def text(texts: Mapping[str, str], lang: str) -> str:
        return texts.get(lang) or next(iter(texts.values()), "")


def menu_from_hall(hall: HallConfig) -> tuple[TopicNode, ...]:
    """The hall's topics in config order. A config topic with `children` (same shape) gets a sub-level."""

    def node(topic: Any, parent: str | None = None) -> TopicNode:
        own = topic.id in hall.topics
        return TopicNode(id=topic.id, topic=topic.id if own or parent is None else parent, letter=topic.letter,
                         colour=topic.colour, name=topic.name, description=getattr(topic, "description", {}),
                         children=tuple(node(child, topic.id) for child in getattr(topic, "children", ())))

    return tuple(node(topic) for topic in hall.topics.values())


def waiting_place(hall: HallConfig, topic: str, lang: str) -> str:
    """Where to wait: the locations of the counters that serve the topic first (else at all)."""
    counters = hall.home_counters(topic)
    places = dict.fromkeys(TopicNode.text(c.location, lang) for c in counters)
    return " · ".join(place for place in places if place)


def parse_ticket(raw: Mapping[str, Any], hall: HallConfig, node: TopicNode, lang: str) -> TicketView | None:
    """The server's ticket as a view, or None when the reply lacks what a visitor must be told."""
    number, topic = raw.get("number"), raw.get("topic")
    ahead, wait_s = raw.get("ahead"), raw.get("expected_wait_s")
    if not (isinstance(number, str) and number and isinstance(topic, str)):
        return None
    if not isinstance(ahead, int) or isinstance(ahead, bool) or ahead < 0:
        return None
    if not isinstance(wait_s, int | float) or isinstance(wait_s, bool) or wait_s < 0:
        return None
    hall_topic = hall.topics.get(topic)
    if node.topic == topic:
        name, colour, letter = node.text(node.name, lang), node.colour, node.letter
    elif hall_topic is not None:
        name, colour, letter = TopicNode.text(hall_topic.name, lang), hall_topic.colour, hall_topic.letter
    else:
        name, colour, letter = topic, node.colour, number[:1]
    return TicketView(number=number, topic=topic, topic_name=name, colour=colour, letter=letter,
                      lang=str(raw.get("lang") or lang), priority=raw.get("priority") is True,
                      issued_at=str(raw.get("issued_at") or ""), ahead=ahead,
                      wait_min=round_wait_minutes(wait_s), place=waiting_place(hall, topic, lang), raw=raw,
                      wait_range_min=wait_range_minutes(raw.get("expected_wait_range_s")))
