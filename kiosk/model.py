"""The kiosk's flow as a pure state machine: the Kivy screen only renders it and feeds it.

Why pure: every path a visitor can take (and every way the server, the network or the printer
can fail under them) is tested here in milliseconds, without a window, a broker or a clock.
The model reads no clock (each input comes with `now`), does no I/O and draws no random
numbers itself (command ids come from an injected factory).

Use:  effects = model.feed(SomeInput(...), now);  perform the effects;  draw model.screen().
A button on the screen carries the input to feed when it is pressed (`button.action`).
The inputs, effects and the Screen are defined in kiosk/model_types.py.

Rules it keeps, whatever arrives in whatever order:
- one visitor, one ticket: a visitor flow sends at most one issue command id; a re-send (after a
  timeout, or when the server comes back) reuses that id, which the server answers idempotently;
- no ticket is shown that the server did not issue, for this flow's command id;
- a touch only counts on the screen it belongs to, so a double touch cannot act twice.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker import protocol as p
from broker.config import HallConfig
from kiosk.model_screen import PRINTER_DOWN, build_screen
from kiosk.model_types import (
    CLOSED,
    ISSUING,
    OUT_OF_SERVICE,
    PAPER_OUT,
    PRINTER_STATES,
    REFUSED,
    START,
    SUBTOPIC,
    TICKET,
    TOPIC,
    UNCONFIRMED,
    Alert,
    Back,
    ChooseLanguage,
    ChooseTopic,
    Done,
    Effect,
    HallState,
    Input,
    IssueError,
    IssueOk,
    IssueTimedOut,
    KioskSettings,
    PrinterStatus,
    PrintResult,
    PrintTicket,
    Screen,
    SendIssue,
    ServerStatus,
    Tick,
    TicketView,
    ToggleAccessibility,
    TogglePriority,
    TopicNode,
    Touch,
    menu_from_hall,
    parse_ticket,
)
from ui.device_model import DeviceModel
from ui.unknown_input import ignore_unknown

log = logging.getLogger(__name__)

OLD_IDS_KEPT = 64  # recent visitors' command ids, to report a ticket the server issued after they left


@dataclass
class _Pending:
    """The one issue command of the current visitor, kept until the server answers it."""

    command_id: str
    node: TopicNode
    lang: str
    priority: bool
    deadline: datetime
    attempts: int = 1

    def effect(self) -> SendIssue:
        matter = None if self.node.id == self.node.topic else self.node.id
        return SendIssue(self.command_id, self.node.topic, self.lang, self.priority, matter)


@dataclass
class _Visitor:
    """What belongs to the person at the screen; dropped as a whole when they leave."""

    lang: str | None = None
    accessible: bool = False
    priority: bool = False
    path: tuple[str, ...] = ()  # the topic nodes chosen so far, for sub-topic levels
    phase: str = START  # START, TOPIC, ISSUING, TICKET, REFUSED or UNCONFIRMED
    pending: _Pending | None = None
    ticket: TicketView | None = None
    printed: bool | None = None  # None while printing, False when it could not be printed
    problem: str = ""  # "out" or "offline": why the ticket is shown on screen instead
    refused: str = ""  # the server's error code
    sent: list[str] = field(default_factory=list)  # command ids this visitor sent (at most one)


class KioskModel(DeviceModel[Input, Effect]):
    """The kiosk flow of one hall. Not thread-safe: feed it from the UI thread only."""

    def __init__(self, hall: HallConfig, now: datetime, settings: KioskSettings | None = None, *,
                 menu: tuple[TopicNode, ...] | None = None, new_id: Callable[[], str] = p.new_command_id) -> None:
        self.hall = hall
        self.settings = settings or KioskSettings()
        self.menu = menu if menu is not None else menu_from_hall(hall)
        self.new_id = new_id
        self.now = now
        self.server: bool | None = None  # None until the first word from the server
        self.hall_state: tuple[bool, datetime | None] | None = None
        self.printer = "unknown"
        self.visitor = _Visitor()
        self.flow = 0  # counts visitors: each reset starts a new flow
        self.since = now  # when the visitor's phase began
        self.last_touch = now
        self._old_ids: deque[str] = deque(maxlen=OLD_IDS_KEPT)
        self.unknown: Counter[str] = Counter()  # inputs of a type nobody handles, by type name

    # ------------------------------------------------------------ input

    def _handle(self, event: Input, effects: list[Effect]) -> None:
        match event:
            case Touch():
                self._on_Touch(event, effects)
            case Tick():
                self._on_Tick(event, effects)
            case ChooseLanguage():
                self._on_ChooseLanguage(event, effects)
            case ToggleAccessibility():
                self._on_ToggleAccessibility(event, effects)
            case TogglePriority():
                self._on_TogglePriority(event, effects)
            case ChooseTopic():
                self._on_ChooseTopic(event, effects)
            case Back():
                self._on_Back(event, effects)
            case Done():
                self._on_Done(event, effects)
            case ServerStatus():
                self._on_ServerStatus(event, effects)
            case HallState():
                self._on_HallState(event, effects)
            case IssueOk():
                self._on_IssueOk(event, effects)
            case IssueError():
                self._on_IssueError(event, effects)
            case IssueTimedOut():
                self._on_IssueTimedOut(event, effects)
            case PrinterStatus():
                self._on_PrinterStatus(event, effects)
            case PrintResult():
                self._on_PrintResult(event, effects)
            case _:  # an input type added without its case here: said once, counted every time
                ignore_unknown(self.unknown, event, log, "the kiosk")

    def _touched(self) -> None:
        self.last_touch = self.now

    def _on_Touch(self, event: Touch, effects: list[Effect]) -> None:
        self._touched()

    def _on_Tick(self, event: Tick, effects: list[Effect]) -> None:
        return  # the timers run after every input

    def _on_ChooseLanguage(self, event: ChooseLanguage, effects: list[Effect]) -> None:
        if self.screen_name() == START and event.lang in self.hall.languages:
            self.visitor.lang, self.visitor.path, self.visitor.priority = event.lang, (), False
            self._phase(TOPIC)

    def _on_ToggleAccessibility(self, event: ToggleAccessibility, effects: list[Effect]) -> None:
        if self.screen_name() == START:
            self.visitor.accessible = not self.visitor.accessible
            self.visitor.priority = False
            self._touched()

    def _on_TogglePriority(self, event: TogglePriority, effects: list[Effect]) -> None:
        if self.screen_name() == TOPIC and self.priority_offered():
            self.visitor.priority = not self.visitor.priority
            self._touched()

    def _on_ChooseTopic(self, event: ChooseTopic, effects: list[Effect]) -> None:
        if self.screen_name() not in (TOPIC, SUBTOPIC):
            return
        node = next((n for n in self.level() if n.id == event.node), None)
        if node is None:
            return
        if node.children:
            self.visitor.path += (node.id,)
            self._touched()
            return
        visitor = self.visitor
        if visitor.sent:  # cannot happen through the screens; the guard keeps the promise anyway
            return
        visitor.pending = _Pending(self.new_id(), node, visitor.lang or self.hall.main_language,
                                   visitor.priority and self.priority_offered(), self._deadline())
        visitor.sent.append(visitor.pending.command_id)
        self._phase(ISSUING)
        effects.append(visitor.pending.effect())

    def _on_Back(self, event: Back, effects: list[Effect]) -> None:
        name = self.screen_name()
        if name == SUBTOPIC:
            self.visitor.path = self.visitor.path[:-1]
            self._touched()
        elif name == TOPIC:
            self.visitor.priority = False
            self._phase(START)

    def _on_Done(self, event: Done, effects: list[Effect]) -> None:
        if self.visitor.phase in (TICKET, REFUSED, UNCONFIRMED):
            self._new_visitor()

    def _on_ServerStatus(self, event: ServerStatus, effects: list[Effect]) -> None:
        was, self.server = self.server, event.online
        if was is not event.online:
            effects.append(Alert("info" if event.online else "warning",
                                 "server_online" if event.online else "server_offline"))
        pending = self.visitor.pending
        if event.online and was is False and pending is not None:
            # The command may have been lost with the connection: send it again, with the same id.
            pending.deadline = self._deadline()
            if self.visitor.phase == UNCONFIRMED:
                self._phase(ISSUING)
            effects.append(pending.effect())

    def _on_HallState(self, event: HallState, effects: list[Effect]) -> None:
        self.hall_state = (event.accepting, event.next_open)

    def _on_IssueOk(self, event: IssueOk, effects: list[Effect]) -> None:
        visitor, pending = self.visitor, self.visitor.pending
        if pending is None or event.command_id != pending.command_id:
            if event.command_id in self._old_ids:
                number = str(event.ticket.get("number", "?"))
                effects.append(Alert("warning", "late_ticket", f"{number} was issued after its visitor left"))
            return
        view = parse_ticket(event.ticket, self.hall, pending.node, pending.lang)
        visitor.pending = None
        if view is None:
            effects.append(Alert("error", "bad_reply", f"issue {event.command_id}: the reply has no usable ticket"))
            visitor.refused = p.Err.INTERNAL
            self._phase(REFUSED)
            return
        visitor.ticket = view
        self._phase(TICKET)
        if self.printer in PRINTER_DOWN:
            visitor.printed, visitor.problem = False, self.printer
            effects.append(Alert("error", "ticket_not_printed", f"{view.number}: printer {self.printer}"))
        else:
            visitor.printed = None
            effects.append(PrintTicket(event.command_id, view))

    def _on_IssueError(self, event: IssueError, effects: list[Effect]) -> None:
        pending = self.visitor.pending
        if pending is None or event.command_id != pending.command_id:
            return
        if event.code == p.Err.TIMEOUT:
            self._on_IssueTimedOut(IssueTimedOut(event.command_id), effects)
            return
        self.visitor.pending = None
        if event.code == p.Err.HALL_CLOSED:
            self.hall_state = (False, event.next_open or self._config_next_open())
            lang = self.visitor.lang
            self._new_visitor()
            self.visitor.lang = lang  # the closed screen speaks their language first
            return
        effects.append(Alert("error", "issue_refused", event.code))
        self.visitor.refused = event.code
        self._phase(REFUSED)

    def _on_IssueTimedOut(self, event: IssueTimedOut, effects: list[Effect]) -> None:
        pending = self.visitor.pending
        if pending is not None and event.command_id == pending.command_id and self.visitor.phase == ISSUING:
            self._retry_or_give_up(pending, effects)

    def _retry_or_give_up(self, pending: _Pending, effects: list[Effect]) -> None:
        if pending.attempts < self.settings.issue_attempts and self.server is not False:
            pending.attempts += 1
            pending.deadline = self._deadline()
            effects.append(pending.effect())
            return
        # No answer: say so, and keep the id, so a late reply or the server's return still finds the visitor.
        effects.append(Alert("error", "issue_unconfirmed", pending.command_id))
        self._phase(UNCONFIRMED)

    def _on_PrinterStatus(self, event: PrinterStatus, effects: list[Effect]) -> None:
        status = event.status if event.status in PRINTER_STATES else "offline"
        if status != self.printer and status != "unknown":
            level = "info" if status == "ok" else "warning" if status == "near_end" else "error"
            effects.append(Alert(level, "printer_" + status))
        self.printer = status

    def _on_PrintResult(self, event: PrintResult, effects: list[Effect]) -> None:
        visitor = self.visitor
        if visitor.ticket is None or visitor.phase != TICKET or event.command_id not in visitor.sent:
            return
        if event.ok:
            visitor.printed = True
            return
        visitor.printed = False
        visitor.problem = event.status if event.status in PRINTER_DOWN else "offline"
        self.since = self.now  # the visitor needs time to note the number
        effects.append(Alert("error", "ticket_not_printed", f"{visitor.ticket.number}: printer {visitor.problem}"))
        self._on_PrinterStatus(PrinterStatus(visitor.problem), effects)

    # ------------------------------------------------------------ time

    def _deadline(self) -> datetime:
        return self.now + timedelta(seconds=self.settings.issue_timeout_s)

    def _elapsed(self, since: datetime) -> float:
        return (self.now - since).total_seconds()

    def _timers(self, effects: list[Effect]) -> None:
        visitor, settings = self.visitor, self.settings
        if visitor.phase == ISSUING:
            if visitor.pending is not None and self.now >= visitor.pending.deadline:
                self._retry_or_give_up(visitor.pending, effects)
        elif visitor.phase in (TICKET, REFUSED):
            if self._elapsed(self.since) >= self._screen_time():
                self._new_visitor()
        elif (visitor.phase in (UNCONFIRMED, TOPIC) or visitor.lang or visitor.accessible) \
                and self._elapsed(max(self.since, self.last_touch)) >= settings.idle_timeout_s:
            self._new_visitor()

    def _screen_time(self) -> float:
        if self.visitor.phase == REFUSED:
            return self.settings.refused_screen_s
        return self.settings.ticket_screen_s if self.visitor.printed is not False else self.settings.paper_out_screen_s

    def _phase(self, phase: str) -> None:
        self.visitor.phase = phase
        self.since = self.last_touch = self.now

    def _new_visitor(self) -> None:
        self._old_ids.extend(self.visitor.sent)
        self.visitor = _Visitor()
        self.flow += 1
        self.since = self.last_touch = self.now

    # ------------------------------------------------------------ derived state

    def _local(self) -> datetime:
        return self.now.astimezone(self.hall.tz)

    def _config_next_open(self) -> datetime | None:
        return self.hall.hours.next_opening(self._local())

    def accepting(self) -> tuple[bool, datetime | None]:
        """Whether tickets can be drawn now, else when they can: the server's word, else the hours."""
        if self.hall_state is not None:
            accepting, next_open = self.hall_state
            if accepting:
                return True, None
            if next_open is None or self.now < next_open:
                return False, next_open
            # that opening time has passed: the server's state is stale; trust the hours until it speaks
        if self.hall.hours.accepts_tickets(self._local()):
            return True, None
        return False, self._config_next_open()

    def screen_name(self) -> str:
        phase = self.visitor.phase
        if phase == ISSUING:
            return ISSUING
        if phase == TICKET:
            return TICKET if self.visitor.printed is not False else PAPER_OUT
        if phase == REFUSED:
            return REFUSED
        if phase == UNCONFIRMED or self.server is not True:
            return OUT_OF_SERVICE
        if not self.accepting()[0]:
            return CLOSED
        if phase == TOPIC:
            return SUBTOPIC if self.visitor.path else TOPIC
        return START

    def priority_offered(self) -> bool:
        return self.visitor.accessible and self.hall.rules.priority_allowed

    def level(self) -> tuple[TopicNode, ...]:
        nodes = self.menu
        for node_id in self.visitor.path:
            nodes = next((n.children for n in nodes if n.id == node_id), ())
        return nodes

    def path_nodes(self) -> list[TopicNode]:
        """The topic nodes the visitor opened, outermost first (the sub-topic screen names the last)."""
        nodes, chosen = self.menu, []
        for node_id in self.visitor.path:
            node = next(n for n in nodes if n.id == node_id)
            chosen.append(node)
            nodes = node.children
        return chosen

    @property
    def pending_command_id(self) -> str | None:
        return None if self.visitor.pending is None else self.visitor.pending.command_id

    # ------------------------------------------------------------ screen

    def screen(self) -> Screen:
        """What to draw now, as plain data; texts are message ids (ui.i18n renders them)."""
        return build_screen(self)

    def countdown_s(self) -> int | None:
        """Seconds until a ticket or error screen returns to start by itself (None on other screens)."""
        if self.visitor.phase not in (TICKET, REFUSED):
            return None
        return max(0, math.ceil(self._screen_time() - self._elapsed(self.since)))
