"""The web's own copy of the queue (web/book.py) and a page's words (web/texts.py), fed by the real engine's
events on a test clock: places in line, every state of a visit, which tokens open a page and until when."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from broker import protocol as p
from broker.config import HallConfig
from tests.test_engine import Desk, open_counters
from ui.i18n import available_languages
from web import book as b
from web.book import Book
from web.texts import MESSAGE_IDS, ticket_texts

LANGS = available_languages()  # every language Vuoro ships (the demo hall offers each)


class Web:
    """A Desk whose events the web's Book reads, as `vuoro web` reads them from the broker."""

    def __init__(self, hall: HallConfig) -> None:
        self.desk = Desk(hall)
        self.book = Book(hall, grace_min=120)
        self.read = 0
        self.tokens = 0

    def sync(self) -> None:
        for event in self.desk.events[self.read:]:
            self.book.apply(event)
        self.read = len(self.desk.events)

    def issue(self, topic: str = "general", **args: object) -> tuple[str, str]:
        self.tokens += 1
        token = f"token-{self.tokens:04d}-abcdefghij"
        number = self.desk.issue(topic, token=token, **args)["number"]
        self.sync()
        return token, number

    def at(self, at_counter: str, op: str, /, **args: object) -> None:
        self.desk.at(at_counter, op, **args)
        self.sync()

    def view(self, token: str) -> b.TicketView:
        ticket = self.book.ticket_for(token, self.desk.clock.now())
        assert ticket is not None
        return self.book.view(ticket)


@pytest.fixture
def web(hall: HallConfig) -> Web:
    return Web(hall)


def test_places_in_line_follow_the_queue_priority_first(web: Web) -> None:
    first, _ = web.issue()
    second, _ = web.issue()
    priority, _ = web.issue(priority=True)
    assert [web.view(t).ahead for t in (first, second, priority)] == [1, 2, 0]
    open_counters(web.desk, "1")
    web.at("1", "next")  # the priority ticket
    assert [web.view(t).ahead for t in (first, second)] == [0, 1]
    assert web.view(priority).status == b.CALLED and web.view(priority).counter == "1"


def test_every_state_of_a_visit(web: Web) -> None:
    token, _ = web.issue()
    assert web.view(token).status == b.WAITING and web.view(token).wait_min is not None
    open_counters(web.desk, "1", "2")
    web.at("1", "next")
    web.at("1", "recall")
    assert (web.view(token).status, web.view(token).recalls) == (b.RECALLED, 1)
    web.at("1", "forward", counter="2")
    assert (web.view(token).status, web.view(token).counter, web.view(token).ahead) == (b.FORWARDED, "2", 0)
    web.at("2", "next")
    web.at("2", "forward", topic="taxes")
    assert (web.view(token).status, web.view(token).to_topic) == (b.FORWARDED, "taxes")
    web.at("2", "next", topic="taxes")
    web.at("2", "done", outcome="resolved")
    assert web.view(token).status == b.DONE and not web.view(token).rated
    gone, _ = web.issue()
    web.at("1", "next")
    for _ in range(web.desk.hall.rules.noshow_after_recalls):
        web.at("1", "recall")
    web.at("1", "noshow")
    assert web.view(gone).status == b.NOSHOW


def test_closing_expires_the_page_with_its_message_and_then_the_grace_ends_it(hall: HallConfig) -> None:
    web = Web(hall)
    token, _ = web.issue()
    now = web.desk.clock.now()
    closes = hall.hours.closing_time(now.date(), now.tzinfo)
    assert closes is not None
    web.desk.clock.set(closes + timedelta(minutes=hall.rules.expire_after_close_min))
    web.desk.events += web.desk.engine.tick(web.desk.clock.now())
    web.sync()
    assert web.view(token).status == b.CLOSED
    texts = ticket_texts(hall, web.view(token), "en")
    assert texts["title"] == "This ticket is no longer valid" and "closed" in texts["body"]
    web.desk.clock.set(closes + timedelta(minutes=119))
    assert web.book.ticket_for(token, web.desk.clock.now()) is not None
    web.desk.clock.set(closes + timedelta(minutes=121))
    assert web.book.ticket_for(token, web.desk.clock.now()) is None  # the grace is over: 404


def test_yesterdays_token_opens_nothing_today_and_unknown_ones_never(web: Web) -> None:
    token, _ = web.issue()
    assert web.book.ticket_for("not-a-token-at-all", web.desk.clock.now()) is None
    web.desk.clock.advance(days=1)
    web.desk.send("admin", "cli", "ping")  # the day rolls over
    web.sync()
    assert web.book.ticket_for(token, web.desk.clock.now()) is None
    again, _ = web.issue()
    assert web.book.ticket_for(again, web.desk.clock.now()) is not None


def test_a_rated_visit_says_thanks_and_shows_no_form(web: Web) -> None:
    token, _ = web.issue()
    open_counters(web.desk, "1")
    web.at("1", "next")
    web.at("1", "done", outcome="resolved")
    assert ticket_texts(web.desk.hall, web.view(token), "en")["feedback"] is True
    assert web.desk.send("web", "w", "feedback", token=token, score=4).ok
    web.sync()
    texts = ticket_texts(web.desk.hall, web.view(token), "en")
    assert texts["feedback"] is False and texts["body"] == "Thank you for your feedback!"


@pytest.mark.parametrize("lang", LANGS)
def test_every_state_has_its_words_in_every_language(web: Web, lang: str) -> None:
    token, _ = web.issue()
    seen = {}
    open_counters(web.desk, "1", "2")
    seen["waiting"] = ticket_texts(web.desk.hall, web.view(token), lang)
    web.at("1", "next")
    seen["called"] = ticket_texts(web.desk.hall, web.view(token), lang)
    web.at("1", "recall")
    seen["recalled"] = ticket_texts(web.desk.hall, web.view(token), lang)
    web.at("1", "forward", counter="2")
    seen["forwarded"] = ticket_texts(web.desk.hall, web.view(token), lang)
    web.at("2", "next")
    web.at("2", "done", outcome="resolved")
    seen["done"] = ticket_texts(web.desk.hall, web.view(token), lang)
    titles = [texts["title"] for texts in seen.values()]
    assert all(titles) and len(set(titles)) == len(titles)
    assert not any("web." in title or "{" in title for title in titles)  # no raw ids, no unfilled placeholders
    assert web.desk.hall.counters["1"].name[lang] in seen["called"]["title"]  # the counter by its name there
    assert seen["called"]["way"] and seen["called"]["alert"] is True
    assert seen["waiting"]["wait"] and seen["waiting"]["ahead"]


@pytest.mark.parametrize("lang", LANGS)
def test_every_web_message_is_in_every_catalogue(lang: str) -> None:
    from ui.i18n import load

    catalogue = load(lang)
    assert not sorted(MESSAGE_IDS - set(catalogue.ids))
    web_ids = {m for m in catalogue.ids if m.startswith("web.")}
    assert web_ids == MESSAGE_IDS  # nothing unused, nothing misspelt


def test_every_shipped_language_is_one_the_page_speaks() -> None:
    assert {"sv", "fi", "en", "se", "de", "ar"} <= set(LANGS)


@pytest.mark.parametrize("lang", LANGS)
def test_a_right_to_left_language_turns_the_page(hall: HallConfig, lang: str) -> None:
    from web.texts import page_words

    assert page_words(hall, lang)["dir"] == ("rtl" if lang == "ar" else "ltr")


def test_the_wait_is_said_as_the_paper_ticket_says_it(hall: HallConfig) -> None:
    from kiosk.ticket import format_wait
    from ui.i18n import ticket_labels
    from web.texts import wait_text

    for range_s, wait_s in (([120, 600], 300), ([900, 2700], 1500), ([3000, 7300], 5000), (None, 700)):
        view = b.TicketView(number="A001", topic="general", lang="sv", status=b.WAITING, ahead=3,
                            wait_min=b.wait_range_minutes(range_s), wait_s=wait_s, counter=None, to_topic=None,
                            recalls=0, rated=False, priority=False)
        for lang in LANGS:
            assert wait_text(view, lang) == format_wait(wait_s, ticket_labels(lang), range_s)


def test_now_is_passed_in_never_read(web: Web) -> None:
    token, _ = web.issue()
    late = datetime(2030, 1, 1, tzinfo=web.desk.clock.now().tzinfo)
    assert web.book.ticket_for(token, late) is not None  # still waiting: its page stays while it waits
    assert p.TICKET_FEEDBACK in p.EVENT_TYPES


@pytest.mark.parametrize("lang", LANGS)
def test_every_web_message_keeps_englishs_placeholders_and_is_translated(lang: str) -> None:
    from ui.i18n import load, placeholders

    catalogue, english = load(lang).catalog, load("en").catalog
    for msgid in sorted(MESSAGE_IDS):
        text, reference = str(catalogue[msgid].string), str(english[msgid].string)
        assert placeholders(text) == placeholders(reference), (lang, msgid)
        if lang != "en":
            assert text != reference, (lang, msgid)  # not English left in place
