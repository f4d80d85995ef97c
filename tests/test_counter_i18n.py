"""The counter panel's catalogues (counter.po in sv, fi, en, se and the test catalogues de, ar): complete,
consistent, reviewed where needed; device alerts that name the device as the hall file does, in the staff's language;
the visitor's language named from the catalogues."""

from __future__ import annotations

import re
from typing import Any

import pytest

from broker.config import DEMO_HALL, HallConfig, load_hall
from counter.model_types import LANGUAGES_NAMED, MESSAGE_IDS, DeviceMessage
from counter.texts import language_line, render
from tests.test_counter_model import Desk, Hall
from ui import i18n

LANGS = ("en", "sv", "fi", "se", "de", "ar")
# Words that are the same in English and the language (checked by hand): not English left in place.
# "Lunch" is Swedish too; "{minutes} min" is how Swedish and Finnish abbreviate minutes as well; "Pause" is German
SAME_AS_ENGLISH = {"sv": {"counter.reason.lunch", "counter.queue.waited"}, "fi": {"counter.queue.waited"}, "se": set(),
                   "de": {"counter.action.pause"}, "ar": set()}
# How each language quotes a name inside a sentence: the device's name from the hall file stands in these
QUOTES = {"en": ("“", "”"), "sv": ("”", "”"), "fi": ("”", "”"), "se": ("”", "”"), "de": ("„", "“"), "ar": ("«", "»")}


def text(lang: str, msgid: str) -> str:
    message = i18n.load(lang).catalog[msgid]
    assert message is not None, f"{lang}: {msgid} is missing"
    return str(message.string)


@pytest.mark.parametrize("lang", LANGS)
def test_every_counter_message_is_translated_and_nothing_else_is_there(lang: str) -> None:
    ids = {m for m in i18n.load(lang).ids if m.startswith("counter.")}
    assert not sorted(MESSAGE_IDS - ids), f"{lang} lacks these"
    assert not sorted(ids - MESSAGE_IDS), f"{lang} has messages the panel never shows (a typo in an id?)"
    path = i18n.catalogue_path(lang).with_name("counter.po")
    assert path.is_file()
    i18n.check_po(path)


@pytest.mark.parametrize("msgid", sorted(MESSAGE_IDS))
def test_placeholders_are_the_same_in_every_language(msgid: str) -> None:
    expected = i18n.placeholders(text("en", msgid))
    for lang in LANGS:
        assert i18n.placeholders(text(lang, msgid)) == expected, lang


@pytest.mark.parametrize("lang", ["sv", "fi", "se", "de", "ar"])
def test_translations_are_not_english_left_in_place(lang: str) -> None:
    same = {msgid for msgid in MESSAGE_IDS if text(lang, msgid) == text("en", msgid)}
    assert same <= SAME_AS_ENGLISH[lang]


def test_the_sami_counter_texts_are_flagged_for_a_native_speaker() -> None:
    path = i18n.catalogue_path("se").with_name("counter.po")
    header = path.read_text("utf-8").split('msgid ""')[0]
    assert "NEEDS REVIEW BY A NATIVE SPEAKER" in header
    body = path.read_text("utf-8")
    assert "needs review by a native Northern Sámi speaker" in body and "X-Review-Status: needs review" in body
    assert i18n.translator("se")("counter.action.next") == "Čuovvovaš"


@pytest.fixture(scope="module")
def demo() -> HallConfig:
    return load_hall(DEMO_HALL)


@pytest.mark.parametrize("lang", LANGS)
def test_device_alerts_name_each_device_as_the_hall_file_does_in_the_staffs_language(demo: HallConfig,
                                                                                       lang: str) -> None:
    assert lang in demo.languages
    desk = Desk(Hall(demo), "1", lang=lang)
    devices: list[tuple[str, str, dict[str, Any]]] = [
        ("kiosk", "K1", {"status": "online", "printer": {"state": "paper_out"}}),
        ("kiosk", "K2", {"status": "offline"}),
        ("display", "entrance", {"status": "stopped"}),
        ("display", "upstairs", {"status": "offline"})]
    for role, device, data in devices:
        desk.feed(DeviceMessage(role, device, {"v": 1, **data}))
    said = {alert.id: render(alert.text, lang) for alert in desk.panel.alerts}
    left, right = QUOTES[lang]
    for role, device, _ in devices:
        config = (demo.kiosks if role == "kiosk" else demo.displays).get(device)
        name = config.name[lang] if config is not None and config.name else device  # K2: not in the hall file
        words = said[f"{role}:{device}"]
        assert f"{left}{name}{right}" in words, (lang, words)
        if config is not None and config.name:
            assert not re.search(rf"\b{re.escape(device)}\b", words), f"{lang}: the id {device!r} in {words!r}"


@pytest.mark.parametrize("lang", LANGS)
def test_device_alerts_keep_a_quoted_name_in_every_alert_text(lang: str) -> None:
    left, right = QUOTES[lang]
    for msgid in sorted(m for m in MESSAGE_IDS if re.match(r"counter\.alert\.(kiosk|display|printer)_", m)):
        assert f"{left}{{name}}{right}" in text(lang, msgid), (lang, msgid)


@pytest.mark.parametrize("staff", LANGS)
def test_the_visitors_language_is_named_from_the_catalogues_not_babel(staff: str) -> None:
    for code in LANGUAGES_NAMED:
        named = text(staff, f"counter.language.{code}")
        line = language_line(code, staff)
        own = i18n.language_name(code)
        assert line == (named if named.lower() == own.lower() else f"{own} ({named})"), (staff, code, line)
    assert language_line("fi", "sv") == "Suomi (finska)" and language_line("sv", "sv") == "svenska"
    assert language_line("de", "ar") == "Deutsch (الألمانية)"
