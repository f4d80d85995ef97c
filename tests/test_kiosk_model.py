"""The kiosk flow, driven through the pure model: every screen, every path, every language.

A `Kiosk` here is the model plus a hand-moved clock and a record of every effect, so a test reads
like the visitor's and the server's moments in order.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
import subprocess
import sys
import tomllib
import tracemalloc
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.config import DEMO_HALL, HallConfig, Rules, parse_hall
from kiosk.model import OLD_IDS_KEPT, KioskModel
from kiosk.model_types import (
    MESSAGE_IDS,
    Alert,
    Back,
    ChooseLanguage,
    ChooseTopic,
    Done,
    HallState,
    Input,
    IssueError,
    IssueOk,
    IssueTimedOut,
    KioskSettings,
    Msg,
    PrinterStatus,
    PrintResult,
    PrintTicket,
    Screen,
    SendIssue,
    ServerStatus,
    Tick,
    ToggleAccessibility,
    TogglePriority,
    TopicNode,
    Touch,
    issue_reply,
    parse_time,
)
from ui.i18n import render

TZ = ZoneInfo("Europe/Helsinki")
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=TZ)
SAMI_TOPICS = {"general": "Oppalaš rávvagat", "permits": "Huksenlobit", "parking": "Biilaparkeren ja gáhtat",
               "social": "Sosiála- ja bearašbálvalusat", "taxes": "Vearut ja divvadat",
               "appointments": "Áigegirjejuvvon deaivvadeamit"}


def sami_hall() -> HallConfig:
    """The demo hall with Northern Sámi as a fourth language: a catalogue plus a line in the config."""
    data = tomllib.loads(DEMO_HALL.read_text("utf-8"))
    if "se" in data["hall"]["languages"]:  # the demo hall speaks Sámi itself now
        return parse_hall(data, "sami.toml")
    data["hall"]["languages"].append("se")

    def add(texts: dict[str, str], sami: str | None = None) -> None:
        texts["se"] = sami or texts["en"]

    add(data["hall"]["name"], "Kvarnby gielda · Bálvalus")
    for topic in data["topics"]:
        add(topic["name"], SAMI_TOPICS[topic["id"]])
        add(topic["description"])
    for counter in data["counters"]:
        for key in ("name", "location", "wayfinding"):
            add(counter[key])
    for display in data["displays"]:
        add(display["name"])
    return parse_hall(data, "sami.toml")


HALLS: dict[str, HallConfig] = {}


def hall_for(lang: str) -> HallConfig:
    key = "se" if lang == "se" else "demo"
    if key not in HALLS:
        HALLS[key] = sami_hall() if key == "se" else parse_hall(tomllib.loads(DEMO_HALL.read_text("utf-8")))
    return HALLS[key]


class Kiosk:
    def __init__(self, hall: HallConfig | None = None, *, now: datetime = MONDAY_9, online: bool = True,
                 settings: KioskSettings | None = None, menu: tuple[TopicNode, ...] | None = None) -> None:
        ids = itertools.count(1)
        self.now = now
        self.model = KioskModel(hall or hall_for("sv"), now, settings, menu=menu, new_id=lambda: f"cmd-{next(ids)}")
        self.effects: list[Any] = []
        self.numbers = itertools.count(1)
        if online:
            self.feed(ServerStatus(True))

    def feed(self, event: Input) -> list[Any]:
        effects = self.model.feed(event, self.now)
        self.effects += effects
        return effects

    def wait(self, seconds: float) -> list[Any]:
        self.now += timedelta(seconds=seconds)
        return self.feed(Tick())

    @property
    def screen(self) -> Screen:
        return self.model.screen()

    def sends(self) -> list[SendIssue]:
        return [e for e in self.effects if isinstance(e, SendIssue)]

    def alerts(self) -> list[str]:
        return [e.code for e in self.effects if isinstance(e, Alert)]

    def issue(self, lang: str = "sv", topic: str = "general") -> SendIssue:
        self.feed(ChooseLanguage(lang))
        (send,) = self.feed(ChooseTopic(topic))
        assert isinstance(send, SendIssue)
        return send

    def reply(self, send: SendIssue, *, ahead: int = 2, wait_s: int = 600, number: str | None = None,
              range_s: list[int] | None = None) -> list[Any]:
        letter = self.model.hall.topics[send.topic].letter
        ticket = {"number": number or f"{letter}{next(self.numbers):03d}", "topic": send.topic, "lang": send.lang,
                  "priority": send.priority, "issued_at": self.now.isoformat(), "ahead": ahead,
                  "expected_wait_s": wait_s}
        if range_s is not None:
            ticket["expected_wait_range_s"] = range_s
        return self.feed(IssueOk(send.command_id, ticket))

    def texts(self) -> list[str]:
        screen = self.screen
        items = [*screen.title, *screen.body, *(b.label for b in (*screen.buttons, *screen.controls))]
        return [render(item, screen.lang) for item in items]


def ids(screen: Screen) -> set[str]:
    return {t.id for t in (*screen.title, *screen.body) if isinstance(t, Msg)}


# ---------------------------------------------------------------- start and the happy path


@pytest.mark.parametrize("lang", ["sv", "fi", "en", "se"])
def test_the_screen_shows_the_range_the_ticket_prints(lang: str) -> None:
    kiosk = Kiosk(hall_for(lang))
    kiosk.reply(kiosk.issue(lang, "general"), wait_s=700, range_s=[300, 1190])
    assert "label.expected_wait_range" in ids(kiosk.screen) and "label.expected_wait" not in ids(kiosk.screen)
    assert any("5–20" in text for text in kiosk.texts())


def test_out_of_service_until_the_server_speaks_then_start() -> None:
    kiosk = Kiosk(online=False)
    assert kiosk.screen.name == "out_of_service" and ids(kiosk.screen) == {"oos.title", "oos.starting"}
    assert kiosk.feed(ChooseLanguage("sv")) == [] and kiosk.screen.name == "out_of_service"
    kiosk.feed(ServerStatus(True))
    assert kiosk.screen.name == "start"


def test_start_lists_the_hall_languages_in_config_order_each_in_its_own_name() -> None:
    hall = sami_hall()
    kiosk = Kiosk(hall)
    screen = kiosk.screen
    assert hall.languages[:4] == ("sv", "fi", "en", "se")  # the demo hall's first four (it may speak more)
    assert [b.id for b in screen.buttons] == [f"lang:{lang}" for lang in hall.languages]
    assert [render(b.label, screen.lang) for b in screen.buttons][:4] == ["Svenska", "Suomi", "English",
                                                                          "Davvisámegiella"]
    assert len(screen.title) == len(hall.languages)
    assert [render(t, "sv") for t in screen.title][:4] == ["Välj språk", "Valitse kieli", "Choose your language",
                                                           "Vállje giela"]
    assert [b.id for b in screen.controls] == ["accessibility"]


@pytest.mark.parametrize("lang", ["sv", "fi", "en", "se"])
def test_two_touches_and_the_server_reply_print_a_ticket_in_every_language(lang: str) -> None:
    kiosk = Kiosk(hall_for(lang))
    send = kiosk.issue(lang, "permits")
    assert send == SendIssue("cmd-1", "permits", lang, False)
    assert kiosk.screen.name == "issuing" and kiosk.screen.flags.busy
    (printed,) = kiosk.reply(send, ahead=3, wait_s=900)
    assert isinstance(printed, PrintTicket) and printed.ticket.number == "B001"
    screen = kiosk.screen
    assert screen.name == "ticket" and screen.ticket is not None and screen.ticket.number == "B001"
    assert screen.ticket.topic_name == kiosk.model.hall.topics["permits"].name[lang]
    assert ids(screen) >= {"label.ticket_number", "label.ahead", "label.expected_wait", "ticket.wait_at",
                           "ticket.printing"}
    kiosk.feed(PrintResult(send.command_id, True))
    assert "ticket.take" in ids(kiosk.screen)
    texts = kiosk.texts()
    assert kiosk.model.hall.topics["permits"].name[lang] in texts
    assert any("3" in text for text in texts) and any("15" in text for text in texts)
    assert not [t for t in texts if t in MESSAGE_IDS], "a message id reached the screen untranslated"
    kiosk.wait(kiosk.model.settings.ticket_screen_s)
    assert kiosk.screen.name == "start" and kiosk.model.flow == 1


def setups(lang: str) -> list[Any]:
    """One way into each kind of screen, in one language."""
    return [lambda k: None, lambda k: k.feed(ChooseLanguage(lang)),
            lambda k: (k.feed(PrinterStatus("out")), k.reply(k.issue(lang), ahead=0)),
            lambda k: k.reply(k.issue(lang), ahead=1),
            lambda k: k.feed(IssueError(k.issue(lang).command_id, "numbers_exhausted")),
            lambda k: k.feed(ServerStatus(False)),
            lambda k: k.feed(HallState(False, MONDAY_9 + timedelta(days=3)))]


@pytest.mark.parametrize("lang", ["sv", "fi", "en", "se"])
def test_every_screen_renders_in_every_language_without_fallback(lang: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ui.i18n")
    seen: set[str] = set()
    for setup in setups(lang):
        kiosk = Kiosk(hall_for(lang))
        setup(kiosk)
        seen.add(kiosk.screen.name)
        assert all(text.strip() for text in kiosk.texts())
        assert not [t for t in kiosk.texts() if t in MESSAGE_IDS]
    assert seen == {"start", "topic", "paper_out", "ticket", "refused", "out_of_service", "closed"}
    assert not caplog.records


def test_topic_buttons_carry_name_letter_colour_and_description_in_the_chosen_language() -> None:
    kiosk = Kiosk()
    kiosk.feed(ChooseLanguage("fi"))
    screen = kiosk.screen
    assert screen.name == "topic" and screen.lang == "fi"
    first = screen.buttons[0]
    assert (first.id, first.label, first.letter, first.colour, first.detail) == (
        "topic:general", "Yleinen neuvonta", "A", "#1f6feb", "Lomakkeet, todistukset, opastus")
    assert [b.id for b in screen.controls] == ["back"]


def test_ticket_says_next_in_line_at_zero_and_counts_120() -> None:
    kiosk = Kiosk()
    kiosk.reply(kiosk.issue("en"), ahead=0, wait_s=30)
    assert "You are next in line" in kiosk.texts()
    assert "Please wait at: Part A, entrance floor" in kiosk.texts()
    kiosk.feed(Done())
    kiosk.reply(kiosk.issue("en"), ahead=120, wait_s=120 * 300)
    assert "120 people ahead of you" in kiosk.texts()


# ---------------------------------------------------------------- idle, back, double touches


@pytest.mark.parametrize("steps", [[ChooseLanguage("sv")], [ToggleAccessibility()], [ChooseLanguage("sv"), Back()]])
def test_idle_timeout_returns_to_a_fresh_start(steps: list[Input]) -> None:
    kiosk = Kiosk()
    for step in steps:
        kiosk.feed(step)
    kiosk.wait(kiosk.model.settings.idle_timeout_s - 1)
    kiosk.feed(Touch())
    kiosk.wait(kiosk.model.settings.idle_timeout_s - 1)
    assert kiosk.model.flow == 0, "a touch keeps the session alive"
    kiosk.wait(1)
    assert kiosk.screen.name == "start" and kiosk.model.flow == 1
    assert not kiosk.screen.flags.accessibility and kiosk.model.visitor.lang is None


def test_idle_timeout_forgets_the_visitor_behind_a_closed_or_out_of_service_screen() -> None:
    kiosk = Kiosk()
    kiosk.feed(ChooseLanguage("fi"))
    kiosk.feed(ServerStatus(False))
    assert next(t.lang for t in kiosk.screen.title if isinstance(t, Msg)) == "fi"
    kiosk.wait(kiosk.model.settings.idle_timeout_s)
    assert kiosk.model.visitor.lang is None and kiosk.model.flow == 1
    kiosk.feed(ServerStatus(True))
    assert kiosk.screen.name == "start"


def test_an_unconfirmed_visitor_can_leave_or_is_forgotten() -> None:
    kiosk = Kiosk(settings=KioskSettings(issue_attempts=1))
    kiosk.issue()
    kiosk.wait(kiosk.model.settings.issue_timeout_s)
    assert kiosk.screen.name == "out_of_service" and [b.id for b in kiosk.screen.controls] == ["done"]
    kiosk.feed(Done())
    assert kiosk.screen.name == "start" and kiosk.model.flow == 1
    kiosk.issue()
    kiosk.wait(kiosk.model.settings.issue_timeout_s)
    kiosk.wait(kiosk.model.settings.idle_timeout_s)
    assert kiosk.screen.name == "start" and kiosk.model.flow == 2


def test_idle_timeout_never_interrupts_issuing() -> None:
    kiosk = Kiosk(settings=KioskSettings(idle_timeout_s=2, issue_timeout_s=30))
    send = kiosk.issue()
    kiosk.wait(10)
    assert kiosk.screen.name == "issuing"
    kiosk.reply(send)
    assert kiosk.screen.name == "ticket"


def test_double_touch_draws_one_ticket() -> None:
    kiosk = Kiosk()
    kiosk.feed(ChooseLanguage("sv"))
    kiosk.feed(ChooseLanguage("fi"))  # the second touch of a double tap lands on the topic screen
    kiosk.feed(ChooseTopic("general"))
    for event in (ChooseTopic("general"), ChooseTopic("taxes"), Back(), Touch(), ToggleAccessibility(), Done()):
        assert kiosk.feed(event) == []
    assert len(kiosk.sends()) == 1 and kiosk.sends()[0].lang == "sv"
    kiosk.reply(kiosk.sends()[0])
    kiosk.feed(ChooseTopic("general"))
    assert len(kiosk.sends()) == 1


def test_back_goes_up_one_level_and_keeps_the_language_highlighted() -> None:
    kiosk = Kiosk()
    assert kiosk.feed(Back()) == [] and kiosk.screen.name == "start"
    kiosk.feed(ChooseLanguage("en"))
    kiosk.feed(Back())
    screen = kiosk.screen
    assert screen.name == "start" and screen.lang == "en"
    assert [b.id for b in screen.buttons if b.selected] == ["lang:en"]


def test_a_new_visitor_gets_a_new_command_id() -> None:
    kiosk = Kiosk()
    first = kiosk.issue()
    kiosk.reply(first)
    kiosk.feed(Done())
    second = kiosk.issue()
    assert first.command_id != second.command_id


# ---------------------------------------------------------------- server trouble


def test_no_reply_resends_the_same_id_then_says_unconfirmed_and_a_late_reply_still_shows() -> None:
    kiosk = Kiosk()
    send = kiosk.issue()
    assert kiosk.wait(kiosk.model.settings.issue_timeout_s) == [send]
    kiosk.wait(kiosk.model.settings.issue_timeout_s)
    assert "issue_unconfirmed" in kiosk.alerts()
    screen = kiosk.screen
    assert screen.name == "out_of_service" and ids(screen) == {"oos.title", "oos.unconfirmed", "help.ask_staff"}
    assert screen.ticket is None
    kiosk.reply(send, number="A042")
    assert kiosk.screen.name == "ticket" and kiosk.screen.ticket and kiosk.screen.ticket.number == "A042"


def test_a_client_timeout_error_is_a_timeout() -> None:
    kiosk = Kiosk()
    send = kiosk.issue()
    assert kiosk.feed(IssueError(send.command_id, "timeout")) == [send]
    assert kiosk.feed(IssueTimedOut(send.command_id)) == [Alert("error", "issue_unconfirmed", send.command_id)]


def test_server_offline_shows_out_of_service_in_every_language_and_back() -> None:
    kiosk = Kiosk()
    kiosk.feed(ChooseLanguage("fi"))
    kiosk.feed(ServerStatus(False))
    screen = kiosk.screen
    assert screen.name == "out_of_service" and not screen.buttons and not screen.controls
    assert [t.lang for t in screen.title if isinstance(t, Msg)] == \
        ["fi", *(lang for lang in kiosk.model.hall.languages if lang != "fi")]  # the visitor's first, then the rest
    assert kiosk.feed(ChooseTopic("general")) == [] and not kiosk.sends()
    kiosk.feed(ServerStatus(True))
    assert kiosk.screen.name == "topic"
    assert kiosk.alerts() == ["server_online", "server_offline", "server_online"]


def test_server_lost_while_issuing_resends_the_same_id_when_it_returns() -> None:
    kiosk = Kiosk()
    send = kiosk.issue()
    kiosk.feed(ServerStatus(False))
    assert kiosk.screen.name == "issuing"
    kiosk.wait(kiosk.model.settings.issue_timeout_s)  # offline: no point re-sending now
    assert kiosk.screen.name == "out_of_service" and kiosk.sends() == [send]
    assert kiosk.feed(ServerStatus(True))[-1] == send
    assert kiosk.screen.name == "issuing"
    kiosk.reply(send)
    assert kiosk.screen.name == "ticket"


def test_a_reply_for_another_command_is_ignored_and_a_late_one_is_reported() -> None:
    kiosk = Kiosk()
    send = kiosk.issue()
    assert kiosk.feed(IssueOk("someone-else", {"number": "A999", "topic": "general", "ahead": 0,
                                               "expected_wait_s": 1})) == []
    assert kiosk.screen.name == "issuing"
    for _ in range(3):  # re-sent, unconfirmed, then the visitor leaves
        kiosk.wait(100)
    assert kiosk.screen.name == "start"
    kiosk.reply(send)
    assert kiosk.screen.name == "start" and kiosk.alerts()[-1] == "late_ticket"


@pytest.mark.parametrize("ticket", [{}, {"number": "", "topic": "general", "ahead": 0, "expected_wait_s": 0},
                                    {"number": "A001", "topic": "general", "ahead": -1, "expected_wait_s": 0},
                                    {"number": "A001", "topic": "general", "ahead": True, "expected_wait_s": 0}])
def test_a_reply_without_a_usable_ticket_never_shows_a_made_up_number(ticket: dict[str, Any]) -> None:
    kiosk = Kiosk()
    send = kiosk.issue()
    effects = kiosk.feed(IssueOk(send.command_id, ticket))
    assert not [e for e in effects if isinstance(e, PrintTicket)] and "bad_reply" in kiosk.alerts()
    assert kiosk.screen.name == "refused" and kiosk.screen.ticket is None


def test_a_refusal_explains_and_returns_to_start() -> None:
    kiosk = Kiosk()
    kiosk.feed(IssueError(kiosk.issue().command_id, "numbers_exhausted"))
    assert kiosk.screen.name == "refused" and "refused.exhausted" in ids(kiosk.screen)
    assert kiosk.screen.flags.countdown_s == 15
    kiosk.wait(kiosk.model.settings.refused_screen_s)
    assert kiosk.screen.name == "start"


# ---------------------------------------------------------------- opening hours


def test_hall_closed_reply_shows_the_next_opening_in_the_visitors_language_first() -> None:
    kiosk = Kiosk(now=MONDAY_9.replace(hour=16, minute=40))
    send = kiosk.issue("fi")
    tomorrow_8 = MONDAY_9.replace(day=1, month=12, hour=8, minute=0)
    kiosk.feed(IssueError.from_details(send.command_id, "hall_closed", {"next_open": tomorrow_8.isoformat()}))
    screen = kiosk.screen
    assert screen.name == "closed" and not screen.buttons
    assert kiosk.texts()[:2] == ["Asiakaspalvelu on suljettu", "Kundtjänsten är stängd"]
    assert "Avaamme huomenna klo 8.00." in kiosk.texts()
    assert "We open again tomorrow at 08:00." in kiosk.texts()


def test_closed_by_the_hours_on_a_saturday_names_monday() -> None:
    kiosk = Kiosk(now=datetime(2026, 12, 5, 11, 0, tzinfo=TZ))
    assert kiosk.screen.name == "closed"
    assert "Avaamme jälleen maanantaina 7.12. klo 8.00." in kiosk.texts()
    assert "Vi öppnar igen måndag 7 december kl. 8.00." in kiosk.texts()
    assert kiosk.feed(ChooseLanguage("sv")) == [] and kiosk.screen.name == "closed"


def test_before_opening_says_today_and_opens_by_itself() -> None:
    kiosk = Kiosk(now=MONDAY_9.replace(hour=7, minute=30))
    assert "We open again today at 08:00." in kiosk.texts()
    kiosk.wait(30 * 60)
    assert kiosk.screen.name == "start"


def test_the_servers_hall_state_wins_over_the_hours_until_its_opening_time_passes() -> None:
    kiosk = Kiosk(now=datetime(2026, 12, 5, 11, 0, tzinfo=TZ))  # Saturday: closed by the hours
    kiosk.feed(HallState(True))  # a server told to stay open (the demo's always_open)
    assert kiosk.screen.name == "start"
    kiosk.feed(HallState(False, kiosk.now + timedelta(minutes=10)))
    assert kiosk.screen.name == "closed"
    kiosk.wait(11 * 60)  # the server's opening time has passed: back to the hours, which say closed
    assert kiosk.screen.name == "closed" and "closed.later" in {m.id for m in kiosk.screen.body}


def test_closed_with_no_known_opening() -> None:
    kiosk = Kiosk()
    kiosk.feed(HallState(False, None))
    assert "Se öppettiderna vid entrén." not in kiosk.texts() and "Öppettiderna finns vid entrén." in kiosk.texts()


# ---------------------------------------------------------------- printer


def test_paper_out_shows_the_number_large_and_the_ticket_still_counts() -> None:
    kiosk = Kiosk()
    kiosk.feed(PrinterStatus("out"))
    assert "start.printer_out" in ids(kiosk.screen) and kiosk.alerts()[-1] == "printer_out"
    send = kiosk.issue("en")
    effects = kiosk.reply(send, number="A017")
    assert not [e for e in effects if isinstance(e, PrintTicket)]
    assert [e.code for e in effects if isinstance(e, Alert)] == ["ticket_not_printed"]
    screen = kiosk.screen
    assert screen.name == "paper_out" and screen.flags.big_number and screen.ticket and screen.ticket.number == "A017"
    assert "Take a photo of your number or remember it. Your place in the queue is kept." in kiosk.texts()
    kiosk.wait(kiosk.model.settings.ticket_screen_s)
    assert kiosk.screen.name == "paper_out", "a paper-out ticket stays long enough to photograph"
    kiosk.feed(Done())
    assert kiosk.screen.name == "start" and len(kiosk.sends()) == 1


@pytest.mark.parametrize(("status", "title"), [("out", "paper_out.title"), ("offline", "printer_offline.title"),
                                               ("jammed", "printer_offline.title")])
def test_a_failed_print_turns_the_ticket_screen_into_the_number_on_screen(status: str, title: str) -> None:
    kiosk = Kiosk()
    send = kiosk.issue()
    kiosk.reply(send)
    kiosk.feed(PrintResult(send.command_id, False, status))
    assert kiosk.screen.name == "paper_out" and title in ids(kiosk.screen)
    assert "ticket_not_printed" in kiosk.alerts()


def test_paper_near_end_still_prints_and_warns() -> None:
    kiosk = Kiosk()
    kiosk.feed(PrinterStatus("near_end"))
    effects = kiosk.reply(kiosk.issue())
    assert isinstance(effects[0], PrintTicket) and kiosk.alerts()[-1] == "printer_near_end"


# ---------------------------------------------------------------- accessibility and priority


def test_accessibility_mode_sets_the_flags_and_offers_priority_where_allowed() -> None:
    kiosk = Kiosk()
    kiosk.feed(ToggleAccessibility())
    flags = kiosk.screen.flags
    assert flags.large_text and flags.high_contrast and flags.reach and kiosk.screen.controls[0].selected
    kiosk.feed(ChooseLanguage("sv"))
    assert [b.id for b in kiosk.screen.controls] == ["priority", "back"]
    kiosk.feed(TogglePriority())
    assert kiosk.screen.flags.priority
    (send,) = kiosk.feed(ChooseTopic("social"))
    assert send.priority
    kiosk.reply(send)
    assert "Förtur" in kiosk.texts()


def test_priority_is_not_offered_without_accessibility_mode_or_where_the_hall_forbids_it() -> None:
    kiosk = Kiosk()
    kiosk.feed(ChooseLanguage("sv"))
    kiosk.feed(TogglePriority())
    assert not kiosk.screen.flags.priority and [b.id for b in kiosk.screen.controls] == ["back"]
    (send,) = kiosk.feed(ChooseTopic("general"))
    assert send.priority is False
    strict = dataclasses.replace(hall_for("sv"), rules=Rules(priority_allowed=False))
    kiosk = Kiosk(strict)
    kiosk.feed(ToggleAccessibility())
    kiosk.feed(ChooseLanguage("sv"))
    assert [b.id for b in kiosk.screen.controls] == ["back"]
    kiosk.feed(TogglePriority())
    (send,) = kiosk.feed(ChooseTopic("general"))
    assert send.priority is False and kiosk.screen.flags.large_text


# ---------------------------------------------------------------- sub-topics


def tree() -> tuple[TopicNode, ...]:
    def node(node_id: str, topic: str, *children: TopicNode) -> TopicNode:
        return TopicNode(node_id, topic, "B", "#c2410c", {"sv": node_id.title(), "en": node_id}, {}, children)

    return (node("general", "general"),
            node("permits", "permits", node("new_house", "permits"), node("demolition", "permits"),
                 node("other", "permits", node("signs", "permits"), node("appointments", "appointments"))))


def test_a_topic_with_children_opens_a_sub_level_and_back_climbs_out() -> None:
    kiosk = Kiosk(menu=tree())
    kiosk.feed(ChooseLanguage("sv"))
    assert kiosk.feed(ChooseTopic("permits")) == []
    screen = kiosk.screen
    assert screen.name == "subtopic" and screen.body == ("Permits",)
    assert [b.id for b in screen.buttons] == ["topic:new_house", "topic:demolition", "topic:other"]
    kiosk.feed(ChooseTopic("other"))
    assert [b.id for b in kiosk.screen.buttons] == ["topic:signs", "topic:appointments"]
    kiosk.feed(Back())
    kiosk.feed(Back())
    assert kiosk.screen.name == "topic"
    kiosk.feed(ChooseTopic("permits"))
    (send,) = kiosk.feed(ChooseTopic("new_house"))
    assert send == SendIssue("cmd-1", "permits", "sv", False, matter="new_house")
    kiosk.reply(send)
    assert kiosk.screen.ticket and kiosk.screen.ticket.topic_name == "New_House"


def test_a_sub_topic_that_is_a_hall_topic_is_issued_as_itself() -> None:
    kiosk = Kiosk(menu=tree())
    for touch in (ChooseLanguage("en"), ChooseTopic("permits"), ChooseTopic("other")):
        kiosk.feed(touch)
    (send,) = kiosk.feed(ChooseTopic("appointments"))
    assert (send.topic, send.matter) == ("appointments", None)


# ---------------------------------------------------------------- plumbing


def test_payload_helpers_turn_server_messages_into_inputs() -> None:
    assert HallState.from_payload({"accepting": False, "next_open": "2026-12-01T08:00:00+02:00"}) == HallState(
        False, datetime(2026, 12, 1, 8, 0, tzinfo=TZ))
    assert parse_time("2026-12-01T08:00:00") is None and parse_time("soon") is None and parse_time(None) is None
    ok = issue_reply({"v": 1, "id": "c1", "ok": True, "result": {"ticket": {"number": "A001"}}})
    assert isinstance(ok, IssueOk) and ok.ticket == {"number": "A001"}
    error = issue_reply({"v": 1, "id": "c1", "ok": False, "error": {"code": "hall_closed", "message": "x",
                                                                     "next_open": None}})
    assert error == IssueError("c1", "hall_closed", None)


def test_the_model_imports_no_ui_network_or_storage() -> None:
    code = ("import sys, kiosk.model, kiosk.model_screen; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('kivy', 'paho', 'sqlite3', 'serial', 'escpos', 'babel', 'socket_', 'PIL')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- any order of anything

TOUCHES = st.sampled_from([Touch(), ToggleAccessibility(), TogglePriority(), Back(), Done(), ChooseLanguage("sv"),
                           ChooseLanguage("se"), ChooseTopic("general"), ChooseTopic("permits"),
                           ChooseTopic("new_house"), ChooseTopic("other"), ChooseTopic("signs"), ChooseTopic("x")])
WHICH = st.sampled_from(["current", "current", "old", "bogus"])
# Pressing a button of the screen shown is the likeliest input; the rest arrive now and then.
KINDS = st.sampled_from(["press"] * 8 + ["ok"] * 3 + ["tick"] * 3 + ["touch", "server", "hall", "error", "timeout",
                                                                      "printer", "print"])
PARAMS: dict[str, Any] = {
    "press": st.integers(0, 7),
    "touch": TOUCHES,
    "server": st.sampled_from([True, True, False]),
    "hall": st.tuples(st.sampled_from([True, True, False]), st.none() | st.integers(-120, 3000)),
    "ok": st.tuples(WHICH, st.integers(0, 130)),
    "error": st.tuples(WHICH, st.sampled_from(["hall_closed", "timeout", "numbers_exhausted", "internal"])),
    "timeout": WHICH,
    "printer": st.sampled_from(["ok", "near_end", "out", "offline", "unknown", "on fire"]),
    "print": st.tuples(WHICH, st.booleans(), st.sampled_from(["out", "offline"])),
    "tick": st.sampled_from([0.5, 3, 9, 20, 50, 100]),
}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_sequence_keeps_one_ticket_per_visitor_and_shows_only_issued_tickets(data: st.DataObject) -> None:
    kiosk = Kiosk(menu=tree())
    model = kiosk.model
    flow_of: dict[str, int] = {}  # command id -> the visitor flow that sent it
    issued: dict[str, str] = {}  # command id -> the number the "server" issued for it
    numbers = itertools.count(1)

    def pick(which: str) -> str:
        sent = list(flow_of)
        if which == "current" and model.pending_command_id:
            return model.pending_command_id
        if which in ("current", "old") and sent:
            return sent[-1] if which == "current" else sent[0]
        return "bogus"

    for _ in range(data.draw(st.integers(5, 80), label="steps")):
        kind = data.draw(KINDS, label="kind")
        arg = data.draw(PARAMS[kind], label=kind)
        if kind == "touch":
            event: Input = arg
        elif kind == "press":
            screen = model.screen()
            buttons = (*screen.buttons, *screen.controls)
            event = buttons[arg % len(buttons)].action if buttons else Touch()
        elif kind == "server":
            event = ServerStatus(arg)
        elif kind == "hall":
            event = HallState(arg[0], None if arg[1] is None else kiosk.now + timedelta(seconds=arg[1]))
        elif kind == "ok":
            command_id = pick(arg[0])
            number = issued.setdefault(command_id, f"A{next(numbers):03d}")
            event = IssueOk(command_id, {"number": number, "topic": "general", "ahead": arg[1],
                                         "expected_wait_s": arg[1] * 60})
        elif kind == "error":
            event = IssueError(pick(arg[0]), arg[1], kiosk.now + timedelta(hours=1))
        elif kind == "timeout":
            event = IssueTimedOut(pick(arg))
        elif kind == "printer":
            event = PrinterStatus(arg)
        elif kind == "print":
            event = PrintResult(pick(arg[0]), arg[1], arg[2])
        else:
            kiosk.now += timedelta(seconds=arg)
            event = Tick()
        for effect in kiosk.feed(event):
            if isinstance(effect, SendIssue):
                assert effect.command_id in model.visitor.sent
                assert flow_of.setdefault(effect.command_id, model.flow) == model.flow, "an old id was re-sent"
        assert len(model.visitor.sent) <= 1, "one visitor flow sent two issue commands"
        screen = model.screen()
        assert screen.flags.busy == (screen.name == "issuing")
        if screen.name in ("ticket", "paper_out"):
            assert screen.ticket is not None
            (command_id,) = model.visitor.sent
            assert issued.get(command_id) == screen.ticket.number, "a ticket shown that the server did not issue"
        else:
            assert screen.ticket is None
    per_flow = [flow for flow in flow_of.values()]
    assert len(per_flow) == len(set(per_flow))


# ---------------------------------------------------------------- a kiosk that runs for months


def test_a_kiosk_that_runs_for_months_keeps_what_it_remembers_bounded() -> None:
    """Every visitor adds to nothing that stays: the model's memory is flat over 3,000 visitors."""
    ids = itertools.count(1)
    now = MONDAY_9
    model = KioskModel(hall_for("sv"), now, new_id=lambda: f"cmd-{next(ids)}")
    model.feed(ServerStatus(True), now)
    model.feed(HallState(True), now)  # an always-open hall: the server's word holds day and night
    sent: list[str] = []

    def visitors(count: int) -> None:
        nonlocal now
        for _ in range(count):
            now += timedelta(seconds=30)
            model.feed(ChooseLanguage("fi"), now)
            (send,) = model.feed(ChooseTopic("general"), now)
            assert isinstance(send, SendIssue)
            sent.append(send.command_id)
            ticket = {"number": f"A{len(sent) % 999 + 1:03d}", "topic": "general", "lang": "fi", "priority": False,
                      "issued_at": now.isoformat(), "ahead": 0, "expected_wait_s": 60}
            model.feed(IssueOk(send.command_id, ticket), now)
            model.feed(PrintResult(send.command_id, True), now)
            model.screen()
            model.feed(Done(), now)

    visitors(200)  # warm up
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        visitors(3000)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if "/kiosk/" in s.traceback[0].filename)
    assert model.flow == 3200 and len(model._old_ids) == OLD_IDS_KEPT
    assert grown < 64 * 1024, f"the kiosk model grew by {grown} bytes over 3,000 visitors"  # one id each: 180 KB
    # what it keeps still does its job: a late reply for a recent visitor is reported, one from long ago is not
    late = {"number": "A500", "topic": "general", "lang": "fi", "priority": False, "issued_at": now.isoformat(),
            "ahead": 0, "expected_wait_s": 60}
    assert [e.code for e in model.feed(IssueOk(sent[-2], late), now) if isinstance(e, Alert)] == ["late_ticket"]
    assert model.feed(IssueOk(sent[0], late), now) == []
