"""The translation catalogues: complete, consistent, and read at run time without a compile step."""

from __future__ import annotations

import logging
from datetime import date, time
from pathlib import Path

import pytest
from babel.messages.plurals import get_plural

from kiosk.model_types import MESSAGE_IDS, PLURAL_IDS, Msg, msg
from kiosk.ticket import REQUIRED_LABELS, check_labels
from ui import i18n

LANGS = ("en", "sv", "fi", "se")
NEEDED = MESSAGE_IDS | set(i18n.TICKET_LABELS.values()) | {i18n.AHEAD_ID}
SAMI_LETTERS = set("áčđŋšŧžÁČĐŊŠŦŽ")


def forms(lang: str, msgid: str) -> list[str]:
    """Every translated form of a message (one, or one per plural form)."""
    message = i18n.load(lang).catalog[msgid]
    assert message is not None, f"{lang}: {msgid} is missing"
    return list(message.string) if isinstance(message.string, tuple) else [message.string]


def test_every_language_has_a_catalogue_and_no_compiled_files_are_needed() -> None:
    assert set(LANGS) <= set(i18n.available_languages())
    assert not list(i18n.LOCALE_DIR.rglob("*.mo")), "catalogues are read as .po: a .mo would go stale"


@pytest.mark.parametrize("lang", LANGS)
def test_each_catalogue_parses_with_the_languages_plural_rule(lang: str) -> None:
    catalogue = i18n.parse_catalogue(lang)
    assert catalogue.nplurals == get_plural(lang).num_plurals
    assert not [m.id for m in catalogue.catalog if m.id and m.fuzzy]
    assert i18n.load(lang) is i18n.load(lang), "parsed once, then cached"
    assert i18n.translator(lang) is i18n.translator(lang)


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_the_kiosk_uses_is_translated(lang: str) -> None:
    apps = ("counter.", "display.", "web.", "overview.")  # each app tests its own messages
    ids = {m for m in i18n.load(lang).ids if not m.startswith(apps)}
    assert not sorted(NEEDED - ids), f"{lang} lacks these messages"
    assert not sorted(ids - NEEDED), f"{lang} has messages nothing uses (a typo in an id?)"
    for msgid in PLURAL_IDS:
        assert len(forms(lang, msgid)) == i18n.load(lang).nplurals


@pytest.mark.parametrize("lang", ["sv", "fi", "se"])
def test_translations_are_not_english_left_in_place(lang: str) -> None:
    same = {msgid for msgid in NEEDED if forms(lang, msgid) == forms("en", msgid)}
    assert same <= {"format.date", "format.time", "label.minutes", "label.hours"}


@pytest.mark.parametrize("msgid", sorted(NEEDED))
def test_placeholders_are_the_same_in_every_translation(msgid: str) -> None:
    expected = {frozenset(i18n.placeholders(text)) for text in forms("en", msgid)}
    assert len(expected) == 1, "English forms of one message disagree"
    for lang in LANGS:
        assert {frozenset(i18n.placeholders(text)) for text in forms(lang, msgid)} == expected, lang


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", ["0 people ahead of you", "1 person ahead of you", "2 people ahead of you", "120 people ahead of you"]),
    ("sv", ["0 personer före dig i kön", "1 person före dig i kön", "2 personer före dig i kön",
            "120 personer före dig i kön"]),
    ("fi", ["Edelläsi jonossa 0 asiakasta", "Edelläsi jonossa 1 asiakas", "Edelläsi jonossa 2 asiakasta",
            "Edelläsi jonossa 120 asiakasta"]),
    ("se", ["Du ovddas leat 0 olbmo", "Du ovddas lea 1 olmmoš", "Du ovddas leat 2 olbmo", "Du ovddas leat 120 olbmo"]),
])
def test_people_ahead_take_the_right_plural_form(lang: str, expected: list[str]) -> None:
    translate = i18n.translator(lang)
    assert [translate("label.ahead", n=n) for n in (0, 1, 2, 120)] == expected


@pytest.mark.parametrize(("lang", "one", "many"), [("en", "1 minute", "120 minutes"), ("sv", "1 minut", "120 minuter"),
                                                   ("fi", "1 minuutti", "120 minuuttia"),
                                                   ("se", "1 minuhtta", "120 minuhta")])
def test_minutes_take_the_right_plural_form(lang: str, one: str, many: str) -> None:
    translate = i18n.translator(lang)
    assert translate("label.expected_wait", n=1, minutes=1).endswith(one)
    assert translate("label.expected_wait", n=120, minutes=120).endswith(many)
    assert translate.ngettext("label.expected_wait", 2, minutes=2).endswith(many.replace("120", "2"))


def test_sami_is_written_with_sami_letters_and_marked_for_review() -> None:
    sami = i18n.load("se")
    letters = {ch for msgid in sami.ids for text in forms("se", msgid) for ch in text} & SAMI_LETTERS
    assert {"á", "č", "đ", "š"} <= letters
    for msgid, letter in [("start.title", "á"), ("topic.title", "š"), ("start.printer_out", "č"),
                          ("label.privacy", "đ"), ("label.scan_status", "č")]:
        assert letter in i18n.translator("se")(msgid), msgid
    assert i18n.translator("se")("start.title") == "Vállje giela"
    header = i18n.catalogue_path("se").read_text("utf-8").split('msgid ""')[0]
    assert "NEEDS REVIEW BY A NATIVE SPEAKER" in header
    assert "needs review" in dict(sami.catalog.mime_headers)["Last-Translator"]


@pytest.mark.parametrize(("lang", "name"), [("sv", "Svenska"), ("fi", "Suomi"), ("en", "English"),
                                            ("se", "Davvisámegiella"), ("de", "Deutsch"), ("zz", "zz")])
def test_each_language_is_named_in_itself(lang: str, name: str) -> None:
    assert i18n.language_name(lang) == name


@pytest.mark.parametrize(("lang", "later", "today"), [
    ("en", "We open again on Monday 7 December at 08:00.", "We open again today at 13:30."),
    ("sv", "Vi öppnar igen måndag 7 december kl. 8.00.", "Vi öppnar igen i dag kl. 13.30."),
    ("fi", "Avaamme jälleen maanantaina 7.12. klo 8.00.", "Avaamme tänään klo 13.30."),
    ("se", "Rabas fas vuossárga 7.12. dii. 8.00.", "Rabas fas odne dii. 13.30."),
])
def test_dates_and_times_are_written_the_languages_way(lang: str, later: str, today: str) -> None:
    assert i18n.render(msg("closed.later", date=date(2026, 12, 7), time=time(8, 0)), lang) == later
    assert i18n.render(Msg("closed.today", (("time", time(13, 30)),), lang=lang), "en") == today


def test_render_passes_hall_config_text_through() -> None:
    assert i18n.render("Bygglov", "fi") == "Bygglov"


def test_a_count_given_to_a_plain_message_does_not_lose_the_text() -> None:
    assert i18n.translator("fi")("nav.back", n=3) == "Takaisin"
    assert i18n.translator("fi").template("label.ahead_none", 0) == "Olet seuraavana vuorossa"


@pytest.mark.parametrize("lang", LANGS)
def test_ticket_labels_fit_the_ticket_layout(lang: str) -> None:
    labels = i18n.ticket_labels(lang)
    assert check_labels(labels) == []
    assert set(REQUIRED_LABELS) <= set(labels)
    assert {"ticket_number", "topic", "issued", "ahead", "ahead_none", "wait_where", "privacy", "scan_status",
            "priority"} <= set(labels)
    assert labels["ahead_1"].format(n=1) == i18n.translator(lang)("label.ahead", n=1)
    assert labels["ahead"].format(n=7) == i18n.translator(lang)("label.ahead", n=7)
    assert labels["ahead_0"] == labels["ahead_none"]
    assert labels["issued"].format(year=2026, month=12, day=7, hour=8, minute=5)


def test_sami_ticket_labels_carry_the_dual() -> None:
    labels = i18n.ticket_labels("se")
    assert "olmmoš" in labels["ahead_1"] and "olbmo" in labels["ahead_2"] and "olbmo" in labels["ahead"]


def write_po(base: Path, lang: str, body: str) -> None:
    path = i18n.catalogue_path(lang, base)
    path.parent.mkdir(parents=True)
    path.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
                    '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n' + body, "utf-8")


def test_a_missing_message_falls_back_to_english_with_one_warning(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    write_po(tmp_path, "xx", 'msgid "nav.back"\nmsgstr "Zurück"\n\nmsgid "nav.done"\nmsgstr ""\n')
    translate = i18n.Translator("xx", i18n.parse_catalogue("xx", tmp_path))
    assert translate("nav.back") == "Zurück"
    with caplog.at_level(logging.WARNING, logger="ui.i18n"):
        assert translate("nav.done") == "Done"
        assert translate("nav.done") == "Done"
        assert translate("label.ahead", n=3) == "3 people ahead of you"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "'nav.done'" in warnings[0] and "'xx'" in warnings[0]


def test_a_message_missing_everywhere_shows_its_id_and_logs_an_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="ui.i18n"):
        assert i18n.translator("fi")("no.such.message") == "no.such.message"
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_a_language_without_a_catalogue_is_found_at_start_and_speaks_english_if_used(
        caplog: pytest.LogCaptureFixture) -> None:
    assert i18n.missing_catalogues(["sv", "zz", "fi"]) == ["zz"]
    with pytest.raises(FileNotFoundError):
        i18n.parse_catalogue("zz")
    with caplog.at_level(logging.ERROR, logger="ui.i18n"):
        assert i18n.Translator("zz")("nav.back") == "Back"
    assert "no catalogue" in caplog.text


@pytest.mark.parametrize(("body", "problem"), [
    ('msgid "nav.back"\nmsgstr "Zurück\n', "an unclosed quote"),
    ('msgid "nav.back"\nmsgtsr "Zurück"\n', "not a valid .po line"),
    ('msgid "nav.back"\nmsgstr "Zurück"\n\nmsgid "nav.back"\nmsgstr "Retour"\n', "given twice"),
])
def test_a_broken_catalogue_is_refused_not_half_read(tmp_path: Path, body: str, problem: str) -> None:
    write_po(tmp_path, "yy", body)
    with pytest.raises(i18n.CatalogueError, match=problem):
        i18n.parse_catalogue("yy", tmp_path)


def test_an_apps_own_file_joins_the_language_and_may_not_repeat_a_message(tmp_path: Path) -> None:
    write_po(tmp_path, "xx", 'msgid "nav.back"\nmsgstr "Zurück"\n')
    other = i18n.catalogue_path("xx", tmp_path).with_name("counter.po")
    other.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
                     'msgid "counter.next"\nmsgstr "Nächste"\n', "utf-8")
    translate = i18n.Translator("xx", i18n.parse_catalogue("xx", tmp_path))
    assert translate("counter.next") == "Nächste" and translate("nav.back") == "Zurück"
    other.write_text(other.read_text("utf-8") + '\nmsgid "nav.back"\nmsgstr "Zurück!"\n', "utf-8")
    with pytest.raises(i18n.CatalogueError, match="also given in another file"):
        i18n.parse_catalogue("xx", tmp_path)
