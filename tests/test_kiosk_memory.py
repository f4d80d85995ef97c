"""The kiosk's memory measures that can be checked without a window: hyphenation dictionaries are dropped when the
device is idle (ui.text_fit.forget_dictionaries, from ui.kivy_env.release_memory) while the points found stay."""

from __future__ import annotations

import pyphen

from ui import text_fit


def test_forgetting_the_dictionaries_keeps_the_points_found_and_frees_pyphens_copy() -> None:
    word, lang = "Kundtjänstärenden", "sv"
    expected = [int(p) for p in pyphen.Pyphen(lang=lang, cache=False).positions(word)]
    text_fit.forget_dictionaries()
    pyphen.hdcache.clear()
    assert text_fit.hyphenation_points(word, lang) == expected
    assert text_fit._dictionaries and pyphen.hdcache  # loaded while in use
    text_fit.forget_dictionaries()
    assert not text_fit._dictionaries
    assert not pyphen.hdcache  # pyphen's module cache no longer holds it either
    assert text_fit.hyphenation_points(word, lang) == expected  # from the points kept: no dictionary loaded
    assert not text_fit._dictionaries


def test_a_new_word_after_forgetting_loads_its_dictionary_again() -> None:
    text_fit.forget_dictionaries()
    points = text_fit.hyphenation_points("Bürgerservicestelle", "de")
    assert points and "de" in text_fit._dictionaries
    text_fit.forget_dictionaries()
    assert text_fit.hyphenation_points("Bürgerservicestelle", "de") == points


def test_short_words_and_languages_without_a_dictionary_have_no_points() -> None:
    assert text_fit.hyphenation_points("kort", "sv") == []
    assert text_fit.hyphenation_points("Davvisámegiella", "se") == []
