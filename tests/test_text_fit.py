"""Text that fits, in every language: every screen of the kiosk, the counter and the display drawn in real Kivy
windows (tests/support/gallery.py) in every language of the demo hall (sv, fi, en, se and the test catalogues'
de and ar), measured, and pictured into the pictures folder; and the colours' contrast (WCAG 2.1).

Also the measures of the accessible mode: its text 1.3x the normal mode's, never smaller, and every control
below kiosk.reach.REACH_TOP of the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from broker.colours import LARGE_TEXT, NORMAL_TEXT, best_ink, blend, companion, contrast_ratio, tile_fill
from broker.config import DEMO_HALL, load_hall
from kiosk.app import LARGE_TEXT as ACCESSIBLE_SCALE
from kiosk.reach import REACH_TOP
from tests.support import gallery
from ui.text_fit import fit

LANGS = ["sv", "fi", "en", "se", "de", "ar"]
APPS = ("kiosk", "counter", "display")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory, pictures: Callable[[str], Path]) -> dict[str, dict[str, Any]]:
    assert set(LANGS) <= set(load_hall(DEMO_HALL).languages)
    home = tmp_path_factory.mktemp("kivy")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: two windows at a time
        futures = {app: pool.submit(gallery.run, app, pictures(app) / "gallery", LANGS, home / app) for app in APPS}
        return {app: future.result() for app, future in futures.items()}


@pytest.mark.parametrize("app", APPS)
def test_no_label_is_larger_than_its_box_on_any_screen_in_any_language(reports: dict[str, Any], app: str) -> None:
    report = reports[app]
    assert report["screens"], "the gallery drew nothing"
    for lang in LANGS:
        assert any(name.endswith(f"-{lang}") for name in report["screens"]), f"no {app} screen in {lang}"
    problems = [f"{p['screen']}: {p['text']!r} {p['why']} ({p['px']} px)" for p in report["problems"]]
    assert not problems, "\n".join(problems)


def test_the_accessible_mode_is_larger_and_within_a_seated_persons_reach(reports: dict[str, Any]) -> None:
    report = reports["kiosk"]
    for lang, screen in ((lang, screen) for lang in LANGS for screen in ("topic", "ticket")):
        normal, accessible = report["sizes"][f"{screen}-{lang}"], report["sizes"][f"{screen}-accessible-{lang}"]
        assert len(accessible) >= 3, (screen, lang, accessible)
        for words, size in accessible.items():
            if words in normal and len(words) > 1:  # texts; the topic's letter beside its name is not one
                assert size >= normal[words] * ACCESSIBLE_SCALE - 0.5, (lang, words, size, normal[words])
    for screen, tops in report["reach"].items():
        too_high = {button: top for button, top in tops.items() if top > REACH_TOP}
        assert not too_high, f"{screen}: controls above {REACH_TOP:.0%} of the screen: {too_high}"
    hyphenated = [line for line in report["hyphenated"] if "accessible" in line.split(":")[0]
                  and "-\n" in line.replace("\\n", "\n")]
    assert not hyphenated, "the accessible mode breaks no word: " + "; ".join(hyphenated)


def test_fit_shrinks_then_wraps_then_hyphenates_and_never_loops() -> None:
    def width(text: str, size: float) -> float:
        return len(text) * size * 0.6

    def height(size: float) -> float:
        return size * 1.2

    whole = fit("Baugenehmigungen", 200, 30, 24, 16, width, height, "de")
    assert whole.fits and not whole.hyphenated and whole.size < 24 and "\n" not in whole.text
    broken = fit("Baugenehmigungen", 90, 80, 24, 16, width, height, "de")
    assert broken.hyphenated and all(line.endswith("-") for line in broken.text.split("\n")[:-1])
    assert broken.text.replace("-\n", "") == "Baugenehmigungen"
    tiny = fit("Wx", 1, None, 24, 24, width, height, "de")  # a letter wider than the box: reported, no hang
    assert not tiny.fits or tiny.text


# ---------------------------------------------------------------- contrast


def test_every_hall_colour_carries_its_text_at_4_5_to_1_through_its_companion() -> None:
    hall = load_hall(DEMO_HALL)
    colours = {f"topic {t.id}": t.colour for t in hall.topics.values()} | {"hall": hall.colour}
    for name, colour in colours.items():
        ink = best_ink(colour)
        shade = companion(colour, ink)
        assert contrast_ratio(shade, ink) >= NORMAL_TEXT, (name, colour, shade)


@pytest.mark.parametrize("alpha", [0.45, 0.55, 0.7])
def test_faded_lower_tier_tiles_keep_large_text_readable(alpha: float) -> None:
    """The counter fades lower-tier tiles: their white letters (large, bold) need 3:1 on what is really shown."""
    hall = load_hall(DEMO_HALL)
    naive = [contrast_ratio(blend(t.colour, alpha, "#ffffff"), "#ffffff") for t in hall.topics.values()]
    assert min(naive) < LARGE_TEXT  # plain fading is what the issue found: 2.2-2.8:1
    for topic in hall.topics.values():
        assert contrast_ratio(tile_fill(topic.colour, alpha), "#ffffff") >= LARGE_TEXT, (topic.id, alpha)
        assert contrast_ratio(tile_fill(topic.colour), "#ffffff") >= NORMAL_TEXT, topic.id


def test_a_colour_too_light_for_white_text_gets_a_darker_companion() -> None:
    assert contrast_ratio("#ffd33d", "#ffffff") < NORMAL_TEXT
    darker = companion("#ffd33d")
    assert darker != "#ffd33d" and contrast_ratio(darker, "#ffffff") >= NORMAL_TEXT
    assert companion("#14365d") == "#14365d"
