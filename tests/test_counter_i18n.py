"""The counter panel's catalogues (counter.po in sv, fi, en, se): complete, consistent, reviewed where needed."""

from __future__ import annotations

import pytest

from counter.model_types import MESSAGE_IDS
from ui import i18n

LANGS = ("en", "sv", "fi", "se")
# Words that are the same in English and the language (checked by hand): not English left in place.
# "Lunch" is Swedish too; "{minutes} min" is how Swedish and Finnish abbreviate minutes as well
SAME_AS_ENGLISH = {"sv": {"counter.reason.lunch", "counter.queue.waited"}, "fi": {"counter.queue.waited"}, "se": set()}


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


@pytest.mark.parametrize("lang", ["sv", "fi", "se"])
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
