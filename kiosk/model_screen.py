"""The kiosk model's state drawn as a Screen: which texts, buttons and flags each screen shows.

Apart from the state machine (kiosk/model.py) because it only reads the state: no transition
happens here. Texts are message ids (ui.i18n renders them) or hall-config strings already in
the visitor's language; a button carries the input the UI feeds back when it is pressed.
It reads the model through the `KioskModel` protocol below and never imports kiosk/model.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from broker import protocol as p
from broker.config import HallConfig
from kiosk.model_types import (
    CLOSED,
    ISSUING,
    OUT_OF_SERVICE,
    PAPER_OUT,
    REFUSED,
    START,
    SUBTOPIC,
    TICKET,
    TOPIC,
    UNCONFIRMED,
    Back,
    Button,
    ChooseLanguage,
    ChooseTopic,
    Done,
    Flags,
    Msg,
    Screen,
    Text,
    TicketView,
    ToggleAccessibility,
    TogglePriority,
    TopicNode,
    msg,
)


class VisitorView(Protocol):
    """What the screen reads of the visitor at the kiosk (kiosk/model.py `_Visitor`)."""

    lang: str | None
    accessible: bool
    priority: bool
    path: tuple[str, ...]
    phase: str
    ticket: TicketView | None
    printed: bool | None
    problem: str
    refused: str


class KioskModel(Protocol):
    """What the screen reads of the kiosk's model (kiosk/model.py `KioskModel`, which this module does not
    import: the model imports the screen)."""

    hall: HallConfig
    now: datetime
    server: bool | None
    printer: str

    @property
    def visitor(self) -> VisitorView: ...
    def accepting(self) -> tuple[bool, datetime | None]: ...
    def screen_name(self) -> str: ...
    def priority_offered(self) -> bool: ...
    def level(self) -> tuple[TopicNode, ...]: ...
    def path_nodes(self) -> list[TopicNode]: ...
    def countdown_s(self) -> int | None: ...

PRINTER_DOWN = ("out", "offline")
_Parts = tuple[tuple[Text, ...], tuple[Text, ...], tuple[Button, ...], tuple[Button, ...]]


def build_screen(model: KioskModel) -> Screen:
    return _Builder(model).build()


class _Builder:
    def __init__(self, model: KioskModel) -> None:
        self.model = model
        self.visitor = model.visitor
        self.hall = model.hall

    def build(self) -> Screen:
        name = self.model.screen_name()
        lang = self.visitor.lang or self.hall.main_language
        title, body, buttons, controls = BUILDERS[name](self, lang)
        ticket = self.visitor.ticket if name in (TICKET, PAPER_OUT) else None
        return Screen(name, lang, title, body, buttons, controls, self.flags(name), ticket)

    def langs(self) -> tuple[str, ...]:
        """Hall languages for a screen nobody chose a language for: the visitor's first, if known."""
        first = self.visitor.lang
        return (first, *(x for x in self.hall.languages if x != first)) if first else self.hall.languages

    def start(self, lang: str) -> _Parts:
        body: tuple[Text, ...] = (self.hall.name.get(lang, ""),)
        if self.model.printer in PRINTER_DOWN:
            body += (Msg("start.printer_" + self.model.printer),)
        languages = tuple(Button("lang:" + x, Msg("language.name", lang=x), ChooseLanguage(x), kind="language",
                                 selected=x == self.visitor.lang) for x in self.hall.languages)
        toggle = Button("accessibility", Msg("start.accessibility"), ToggleAccessibility(), kind="toggle",
                        selected=self.visitor.accessible)
        return tuple(Msg("start.title", lang=x) for x in self.hall.languages), body, languages, (toggle,)

    def topic(self, lang: str) -> _Parts:
        nested = bool(self.visitor.path)
        body: tuple[Text, ...] = ()
        if nested:
            parent = self.model.path_nodes()[-1]
            body = (parent.text(parent.name, lang),)
        topics = tuple(Button("topic:" + n.id, n.text(n.name, lang), ChooseTopic(n.id), kind="topic",
                              detail=n.text(n.description, lang) or None, colour=n.colour, letter=n.letter)
                       for n in self.model.level())
        controls: tuple[Button, ...] = ()
        if not nested and self.model.priority_offered():
            controls = (Button("priority", Msg("topic.priority"), TogglePriority(), kind="toggle",
                               selected=self.visitor.priority),)
        controls += (Button("back", Msg("nav.back"), Back(), kind="nav"),)
        return (Msg("subtopic.title" if nested else "topic.title"),), body, topics, controls

    def issuing(self, lang: str) -> _Parts:
        return (Msg("issuing.title"),), (Msg("issuing.body"),), (), ()

    def ticket(self, lang: str) -> _Parts:
        """The ticket on screen: the number (screen.ticket.number), then what the paper ticket says."""
        visitor = self.visitor
        ticket = visitor.ticket
        assert ticket is not None
        lines: list[Text] = []
        if visitor.printed is False:
            lines += [Msg("paper_out.title" if visitor.problem == "out" else "printer_offline.title"),
                      Msg("paper_out.body")]
        lines.append(ticket.topic_name)
        if ticket.priority:
            lines.append(Msg("label.priority"))
        lines.append(msg("label.ahead", n=ticket.ahead) if ticket.ahead else Msg("label.ahead_none"))
        if ticket.wait_range_min is not None:  # as on the paper ticket
            low, high = ticket.wait_range_min
            lines.append(msg("label.expected_wait_range", low=low, high=high))
        else:
            lines.append(msg("label.expected_wait", n=ticket.wait_min, minutes=ticket.wait_min))
        if ticket.place:
            lines.append(msg("ticket.wait_at", place=ticket.place))
        if visitor.printed is not False:
            lines.append(Msg("ticket.take" if visitor.printed else "ticket.printing"))
        return (Msg("label.ticket_number"),), tuple(lines), (), (_done(),)

    def refused(self, lang: str) -> _Parts:
        reason = "refused.exhausted" if self.visitor.refused == p.Err.NUMBERS_EXHAUSTED else "refused.generic"
        return (Msg("refused.title"),), (Msg(reason), Msg("help.ask_staff")), (), (_done(),)

    def closed(self, lang: str) -> _Parts:
        next_open = self.model.accepting()[1]
        langs = self.langs()
        return (tuple(Msg("closed.title", lang=x) for x in langs),
                tuple(self.next_open(next_open, x) for x in langs), (), ())

    def out_of_service(self, lang: str) -> _Parts:
        if self.visitor.phase == UNCONFIRMED:  # this visitor's number: in their language, with a way out
            return (Msg("oos.title"),), (Msg("oos.unconfirmed"), Msg("help.ask_staff")), (), (_done(),)
        langs = self.langs()
        body = "oos.starting" if self.model.server is None else "oos.body"
        return tuple(Msg("oos.title", lang=x) for x in langs), tuple(Msg(body, lang=x) for x in langs), (), ()

    def next_open(self, next_open: datetime | None, lang: str) -> Msg:
        """Today / tomorrow / a weekday and date: the words a visitor at a locked door needs."""
        if next_open is None:
            return Msg("closed.unknown", lang=lang)
        local = next_open.astimezone(self.hall.tz)
        today = self.model.now.astimezone(self.hall.tz).date()
        opens = local.time().replace(tzinfo=None)
        if local.date() == today:
            return Msg("closed.today", (("time", opens),), lang=lang)
        if local.date() == today + timedelta(days=1):
            return Msg("closed.tomorrow", (("time", opens),), lang=lang)
        return Msg("closed.later", (("date", local.date()), ("time", opens)), lang=lang)

    def flags(self, name: str) -> Flags:
        accessible = self.visitor.accessible
        return Flags(large_text=accessible, high_contrast=accessible, reach=accessible, busy=name == ISSUING,
                     big_number=name == PAPER_OUT, accessibility=accessible, priority=self.visitor.priority,
                     printer=self.model.printer, countdown_s=self.model.countdown_s())


# Each screen's builder: every name in SCREENS has one (tests/test_dispatch.py), found here, never by its name.
BUILDERS: dict[str, Callable[[_Builder, str], _Parts]] = {
    START: _Builder.start, TOPIC: _Builder.topic, SUBTOPIC: _Builder.topic, ISSUING: _Builder.issuing,
    TICKET: _Builder.ticket, PAPER_OUT: _Builder.ticket, CLOSED: _Builder.closed,
    OUT_OF_SERVICE: _Builder.out_of_service, REFUSED: _Builder.refused,
}


def _done() -> Button:
    return Button("done", Msg("nav.done"), Done(), kind="nav")
