"""The display's own catalogue (display.po): every message in every hall language, same placeholders, Sámi flagged."""

from __future__ import annotations

import pytest

from broker.config import DIRECTIONS
from display.board import MESSAGE_IDS
from ui import i18n

LANGS = ("sv", "fi", "en", "se")


def display_ids(lang: str) -> set[str]:
    return {m for m in i18n.load(lang).ids if m.startswith("display.")}


@pytest.mark.parametrize("lang", LANGS)
def test_every_message_the_display_shows_or_speaks_is_translated_and_nothing_else(lang: str) -> None:
    assert display_ids(lang) == MESSAGE_IDS
    assert (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "display.po").is_file()


@pytest.mark.parametrize("msgid", sorted(MESSAGE_IDS))
def test_placeholders_are_the_same_in_every_language(msgid: str) -> None:
    english = i18n.placeholders(i18n.translator("en").template(msgid))
    for lang in LANGS:
        assert i18n.placeholders(i18n.translator(lang).template(msgid)) == english, (lang, msgid)


@pytest.mark.parametrize("lang", ["sv", "fi", "se"])
def test_translations_are_not_english_left_in_place(lang: str) -> None:
    same = {m for m in MESSAGE_IDS if i18n.translator(lang).template(m) == i18n.translator("en").template(m)}
    assert same == set()


@pytest.mark.parametrize("lang", LANGS)
def test_the_ten_digit_words_are_there_for_the_spoken_numbers(lang: str) -> None:
    words = i18n.translator(lang)("display.say.digits").split()
    assert len(words) == 10 and len(set(words)) == 10


def test_each_direction_has_its_words() -> None:
    for direction in DIRECTIONS:
        texts = {i18n.translator(lang)(f"display.direction.{direction}") for lang in LANGS}
        assert len(texts) == len(LANGS), direction  # four different words, none missing


def test_the_sami_display_texts_use_sami_letters_and_are_flagged_for_review() -> None:
    sami = "".join(i18n.translator("se").template(m) for m in MESSAGE_IDS)
    assert {"á", "č", "đ", "š"} <= set(sami)
    header = (i18n.LOCALE_DIR / "se" / "LC_MESSAGES" / "display.po").read_text("utf-8").split('msgid ""')[0]
    assert "NEEDS REVIEW BY A NATIVE SPEAKER" in header and "Lule Sámi" in header
