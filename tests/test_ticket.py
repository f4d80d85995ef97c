"""The ticket layout as data, and its PNG preview: every demo language, Northern Sámi, wrapping, 0 and 120 ahead."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops

from broker.config import DEMO_HALL, HallConfig, load_hall, parse_hall
from kiosk import png_render
from kiosk.ticket import (
    PAPER_58,
    PAPER_80,
    REQUIRED_LABELS,
    LabelError,
    Paper,
    QrBlock,
    RuleBlock,
    TextBlock,
    build_ticket,
    check_labels,
    format_wait,
    round_wait_minutes,
    wait_range_minutes,
)

PUBLIC_URL = "https://jono.kvarnby.fi/t"

# Label sets as ui/i18n.py hands them over (plural forms as exact-count keys), one per kiosk language.
LABELS: dict[str, dict[str, str]] = {
    "sv": {"ahead": "{n} personer före dig", "ahead_0": "Du är näst på tur", "ahead_1": "1 person före dig",
           "wait": "Beräknad väntetid: cirka {time}", "minutes": "{n} min", "hours": "{n} tim",
           "issued": "Utskriven {day}.{month}.{year} kl. {hour}.{minute:02}", "where": "Vänta vid",
           "privacy": "Kölappen innehåller inga personuppgifter.", "qr": "Skanna och följ din tur",
           "priority": "Förtur"},
    "fi": {"ahead": "Edelläsi {n} asiakasta", "ahead_0": "Olet seuraavana vuorossa", "ahead_1": "Edelläsi 1 asiakas",
           "wait": "Arvioitu odotusaika noin {time}", "minutes": "{n} min", "hours": "{n} t",
           "issued": "Tulostettu {day}.{month}.{year} klo {hour}.{minute:02}", "where": "Odota täällä",
           "privacy": "Vuoronumerossa ei ole henkilötietoja.", "qr": "Skannaa ja seuraa vuoroasi",
           "priority": "Etusija"},
    "en": {"ahead": "{n} people ahead of you", "ahead_0": "You are next", "ahead_1": "1 person ahead of you",
           "wait": "Expected wait: about {time}", "minutes": "{n} min", "hours": "{n} h",
           "issued": "Printed {day:02} {month:02} {year} at {hour:02}:{minute:02}", "where": "Wait at",
           "privacy": "This ticket holds no personal data.", "qr": "Scan to follow your turn",
           "priority": "Priority"},
    # Northern Sámi: a dual for two, and letters (č đ ŋ š ŧ ž) that no ESC/POS code page carries
    "se": {"ahead": "Du ovddas leat {n} olbmo", "ahead_0": "Don leat boahtte", "ahead_1": "Du ovddas lea {n} olmmoš",
           "ahead_2": "Du ovddas leat {n} olbmo", "wait": "Vuordináigi: sullii {time}", "minutes": "{n} min.",
           "hours": "{n} dii.", "issued": "Čálihuvvon {day}.{month}.{year} dii. {hour}.{minute:02}",
           "where": "Vuordinsadji", "privacy": "Bileahtas eai leat persovdnadieđut.",
           "qr": "Skánne ja čuovo du vuoru", "priority": "Vuoruhus"},
}

SAMI: dict[str, str] = {  # hall texts in Northern Sámi, keyed by the Swedish text they translate
    "Kvarnby stad · Kundtjänst": "Kvarnby gielda · Bálvalusguovddáš",
    "Allmän rådgivning": "Dábálaš gažaldagat",
    "Bygglov": "Huksenlobit",
    "Parkering och gator": "Biilaparkeren ja gáhtat",
    "Social- och familjetjänster": "Sosiála- ja bearašbálvalusat",
    "Skatter och avgifter": "Vearut ja mávssut",
    "Bokade besök": "Diibmogáhttemat",
    "Del A, entréplan": "Oassi A, vuolimus gearddi",
    "Till vänster om entrén": "Olggosuvssa gurut bealde",
}


def sami_hall(public_url: str | None = PUBLIC_URL) -> HallConfig:
    """The demo hall with Northern Sámi as a fourth language, as a municipality in Sápmi would run it."""
    data = tomllib.loads(DEMO_HALL.read_text("utf-8"))
    if public_url:
        data["hall"]["public_url"] = public_url
    if "se" in data["hall"]["languages"]:  # the demo hall speaks Sámi itself now
        return parse_hall(data, "sami-demo.toml")
    data["hall"]["languages"].append("se")

    def add_se(node: Any) -> None:
        if isinstance(node, dict):
            if "sv" in node and isinstance(node["sv"], str):
                node["se"] = SAMI.get(node["sv"], node["sv"])
            for value in node.values():
                add_se(value)
        elif isinstance(node, list):
            for value in node:
                add_se(value)

    add_se(data)
    return parse_hall(data, "sami-demo.toml")


def sample_ticket(**changes: Any) -> dict[str, Any]:
    """A ticket as the hall server's `issue` result carries it."""
    ticket = {"number": "A001", "topic": "general", "lang": "sv", "priority": False,
              "issued_at": "2026-11-30T09:05:12.345+02:00", "ahead": 4, "expected_wait_s": 690,
              "token": "q7Xv2LmN9pRt"}
    ticket.update(changes)
    return ticket


@pytest.fixture(scope="module")
def demo() -> HallConfig:
    return load_hall(DEMO_HALL)


@pytest.fixture(scope="module")
def public_demo(demo: HallConfig) -> HallConfig:
    return dataclasses.replace(demo, public_url=PUBLIC_URL)


@pytest.fixture(scope="module")
def sami() -> HallConfig:
    return sami_hall()


def _roles(layout: Any) -> list[str]:
    return [block.role for block in layout.blocks]


# ---------------------------------------------------------------- the layout


@pytest.mark.parametrize("lang", ["sv", "fi", "en", "se"])
@pytest.mark.parametrize("paper", [PAPER_58, PAPER_80], ids=["58mm", "80mm"])
def test_every_language_lays_out_every_block(sami: HallConfig, lang: str, paper: Paper) -> None:
    layout = build_ticket(sami, sample_ticket(topic="permits", number="B042"), lang, LABELS[lang], paper=paper)
    roles = _roles(layout)
    assert roles[:3] == ["hall", "rule", "number"]
    assert roles.index("topic") < roles.index("issued") < roles.index("ahead") < roles.index("wait") \
        < roles.index("where") < roles.index("location") < roles.index("qr") < roles.index("privacy")
    assert layout.text("number") == ("B042",)
    assert " ".join(layout.text("hall")) == sami.name[lang]
    assert " ".join(layout.text("topic")) == sami.topics["permits"].name[lang]
    assert layout.text("ahead") == (LABELS[lang]["ahead"].format(n=4),)
    assert " ".join(layout.text("privacy")) == LABELS[lang]["privacy"]
    counter_4 = sami.counters["4"]  # the only counter serving permits in its first tier
    assert layout.text("location") == (counter_4.location[lang],)
    assert " ".join(layout.text("wayfinding")) == counter_4.wayfinding[lang]
    assert (layout.lang, layout.colour, layout.paper) == (lang, sami.topics["permits"].colour, paper)
    for block in layout.blocks:
        if isinstance(block, TextBlock):
            limit = paper.columns_for(block.width, block.small)
            assert all(len(line) <= limit for line in block.lines), (block.role, block.lines, limit)


def test_date_and_time_are_the_halls_local_time(demo: HallConfig) -> None:
    utc = sample_ticket(issued_at="2026-11-30T07:05:00+00:00")
    layout = build_ticket(demo, utc, "fi", LABELS["fi"])
    assert layout.text("issued") == ("Tulostettu 30.11.2026 klo 9.05",)
    assert layout.issued == datetime(2026, 11, 30, 9, 5, tzinfo=ZoneInfo("Europe/Helsinki"))
    passed = build_ticket(demo, sample_ticket(issued_at=None), "en", LABELS["en"],
                          issued=datetime(2026, 12, 1, 16, 59, tzinfo=ZoneInfo("Europe/Helsinki")))
    assert passed.text("issued") == ("Printed 01 12 2026 at 16:59",)


@pytest.mark.parametrize("paper", [PAPER_58, PAPER_80], ids=["58mm", "80mm"])
def test_a_long_topic_name_wraps_to_the_paper_and_loses_no_word(demo: HallConfig, paper: Paper) -> None:
    long_name = ("Bygglov, rivningslov, marklov och förhandsbesked för fritidshus och sjöbodar i skärgården "
                 "samt strandskyddsdispens")
    topics = dict(demo.topics)
    topics["permits"] = dataclasses.replace(topics["permits"], name={**topics["permits"].name, "sv": long_name})
    hall = dataclasses.replace(demo, topics=topics)
    layout = build_ticket(hall, sample_ticket(topic="permits"), "sv", LABELS["sv"], paper=paper)
    topic = next(b for b in layout.blocks if isinstance(b, TextBlock) and b.role == "topic")
    assert len(topic.lines) >= 3
    assert all(len(line) <= paper.columns_for(topic.width) for line in topic.lines)
    assert " ".join(topic.lines) == long_name
    assert topic.height == 2  # too long for double width: double height only, full width


def test_a_short_topic_name_prints_double_size(demo: HallConfig) -> None:
    layout = build_ticket(demo, sample_ticket(topic="permits"), "sv", LABELS["sv"], paper=PAPER_58)
    topic = next(b for b in layout.blocks if isinstance(b, TextBlock) and b.role == "topic")
    assert (topic.width, topic.height, topic.lines) == (2, 2, ("Bygglov",))


def test_a_word_longer_than_the_line_is_broken_not_cut(demo: HallConfig) -> None:
    word = "Sosiaali-ja-terveyspalvelujenasiakasneuvontapiste"
    layout = build_ticket(demo, sample_ticket(), "sv", LABELS["sv"], paper=PAPER_58, where=word)
    lines = layout.text("location")
    assert "".join(lines) == word and all(len(line) <= 32 for line in lines)


@pytest.mark.parametrize("lang, expected", [("sv", "Du är näst på tur"), ("fi", "Olet seuraavana vuorossa"),
                                            ("en", "You are next"), ("se", "Don leat boahtte")])
def test_nobody_ahead_says_you_are_next(sami: HallConfig, lang: str, expected: str) -> None:
    layout = build_ticket(sami, sample_ticket(ahead=0, expected_wait_s=150), lang, LABELS[lang])
    assert layout.text("ahead") == (expected,)
    assert layout.text("wait") == (LABELS[lang]["wait"].format(time=LABELS[lang]["minutes"].format(n=3)),)


def test_120_ahead_reads_as_a_count_and_a_wait_in_hours(sami: HallConfig) -> None:
    layout = build_ticket(sami, sample_ticket(ahead=120, expected_wait_s=120.5 * 300 / 2), "sv", LABELS["sv"],
                          paper=PAPER_58)
    assert layout.text("ahead") == ("120 personer före dig",)
    assert layout.text("wait") == ("Beräknad väntetid: cirka 5 tim",)
    sami_layout = build_ticket(sami, sample_ticket(ahead=120, expected_wait_s=5700), "se", LABELS["se"])
    assert sami_layout.text("ahead") == ("Du ovddas leat 120 olbmo",)
    assert sami_layout.text("wait") == ("Vuordináigi: sullii 1 dii. 30 min.",)


def test_one_and_two_ahead_use_the_exact_count_forms(sami: HallConfig) -> None:
    assert build_ticket(sami, sample_ticket(ahead=1), "se", LABELS["se"]).text("ahead") == ("Du ovddas lea 1 olmmoš",)
    assert build_ticket(sami, sample_ticket(ahead=2), "se", LABELS["se"]).text("ahead") == ("Du ovddas leat 2 olbmo",)
    assert build_ticket(sami, sample_ticket(ahead=1), "en", LABELS["en"]).text("ahead") == ("1 person ahead of you",)


@pytest.mark.parametrize("seconds, minutes", [(0, 1), (30, 1), (61, 2), (540, 9), (541, 10), (660, 15),
                                              (3540, 60), (3660, 60), (5400, 90), (18075, 300)])
def test_expected_wait_is_rounded_honestly(seconds: float, minutes: int) -> None:
    assert round_wait_minutes(seconds) == minutes


def test_wait_of_whole_hours_has_no_zero_minutes() -> None:
    assert format_wait(7200, LABELS["en"]) == "Expected wait: about 2 h"
    assert format_wait(4500, LABELS["en"]) == "Expected wait: about 1 h 15 min"


@pytest.mark.parametrize("range_s, printed", [
    ([300, 1200], "Expected wait: 5–20 min"),
    ([0, 140], "Expected wait: 0–3 min"),
    ([610, 1190], "Expected wait: 10–20 min"),
    ([2700, 5400], "Expected wait: 45 min – 1 h 30 min"),
    ([120, 120], "Expected wait: about 15 min"),  # a range that collapses: the single estimate
    (None, "Expected wait: about 15 min"),
    ([600], "Expected wait: about 15 min"),  # malformed: never a made-up range
    ([900, 300], "Expected wait: about 15 min"),
])
def test_the_ticket_prints_the_servers_range_widened_to_honest_steps(range_s: Any, printed: str) -> None:
    labels = {**LABELS["en"], "wait_range": "Expected wait: {time}"}
    assert format_wait(690, labels, range_s) == printed


@given(st.floats(0, 20000), st.floats(0, 20000))
def test_rounding_never_narrows_the_range(a: float, b: float) -> None:
    low_s, high_s = sorted((a, b))
    span = wait_range_minutes([low_s, high_s])
    if span is not None:
        assert span[0] * 60 <= low_s and span[1] * 60 >= high_s and span[0] < span[1]


def test_ticket_with_a_range_prints_it_in_every_language(demo: HallConfig) -> None:
    from ui.i18n import ticket_labels

    for lang, expected in {"sv": "Beräknad väntetid: 5–20 min", "fi": "Arvioitu odotusaika: 5–20 min",
                           "en": "Expected wait: 5–20 min", "se": "Vuordináigi: 5–20 min."}.items():
        ticket = build_ticket(demo, sample_ticket(expected_wait_range_s=[300, 1200]), lang, ticket_labels(lang))
        assert ticket.text("wait") == (expected,)


def test_qr_links_the_status_page_only_when_the_hall_names_a_public_url(demo: HallConfig) -> None:
    without = build_ticket(demo, sample_ticket(), "sv", LABELS["sv"])
    assert not any(isinstance(b, QrBlock) for b in without.blocks)
    assert without.qr_data is None and without.text("qr_caption") == ()
    slashed = dataclasses.replace(demo, public_url=PUBLIC_URL + "/")
    layout = build_ticket(slashed, sample_ticket(number="C017", topic="parking"), "sv", LABELS["sv"])
    assert layout.qr_data == "https://jono.kvarnby.fi/t/t/q7Xv2LmN9pRt"  # the ticket's random token, not its number
    assert layout.text("qr_caption") == ("Skanna och följ din tur",)
    tokenless = {k: v for k, v in sample_ticket().items() if k != "token"}
    assert build_ticket(slashed, tokenless, "sv", LABELS["sv"]).qr_data is None


def test_priority_ticket_says_so_under_the_number(demo: HallConfig) -> None:
    layout = build_ticket(demo, sample_ticket(priority=True), "en", LABELS["en"])
    assert _roles(layout)[3] == "priority" and layout.text("priority") == ("Priority",)
    assert "priority" not in _roles(build_ticket(demo, sample_ticket(), "en", LABELS["en"]))


def test_where_to_wait_lists_each_first_tier_location_once(demo: HallConfig) -> None:
    layout = build_ticket(demo, sample_ticket(topic="general"), "en", LABELS["en"])
    first_tier = [c for c in demo.counters.values() if c.tier_of("general") == 0]
    assert len(first_tier) >= 2  # counters 1 and 2 share one location: it is printed once
    assert layout.text("location") == tuple(dict.fromkeys(c.location["en"] for c in first_tier))
    given = build_ticket(demo, sample_ticket(), "en", LABELS["en"], where="Seats by the window")
    assert given.text("location") == ("Seats by the window",) and given.text("wayfinding") == ()


def _without_sami() -> HallConfig:
    """The demo hall as it was before it learnt Sámi (and German, Arabic): three languages."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("se", "de", "ar")}
        return [strip(v) for v in node] if isinstance(node, list) else node

    data = strip(tomllib.loads(DEMO_HALL.read_text("utf-8")))
    data["hall"]["languages"] = ["sv", "fi", "en"]
    return parse_hall(data, "three-languages.toml")


def test_a_language_the_hall_file_lacks_takes_names_from_the_labels() -> None:
    demo = _without_sami()
    labels = {**LABELS["se"], "hall": "Kvarnby gielda", "topic.general": "Dábálaš gažaldagat"}
    layout = build_ticket(demo, sample_ticket(), "se", labels)
    assert layout.text("hall") == ("Kvarnby gielda",)
    assert layout.text("topic") == ("Dábálaš gažaldagat",)  # 18 letters: one line at double width on 80 mm
    # counters have no Sámi text and no label: the hall's main language, never an empty line
    assert layout.text("location")[0] == demo.counters["1"].location["sv"]


def test_missing_or_broken_labels_are_named() -> None:
    broken = {key: text for key, text in LABELS["fi"].items() if key != "where"}
    with pytest.raises(LabelError, match="where"):
        build_ticket(load_hall(DEMO_HALL), sample_ticket(), "fi", broken)
    assert check_labels(LABELS["se"]) == []
    problems = check_labels({**LABELS["sv"], "ahead": "{count} före dig", "privacy": ""})
    assert any("count" in p for p in problems) and any("privacy" in p for p in problems)
    assert set(REQUIRED_LABELS) <= set(LABELS["en"])
    with pytest.raises(LabelError, match="ahead"):
        build_ticket(load_hall(DEMO_HALL), sample_ticket(), "sv", {**LABELS["sv"], "ahead": "{count} före dig"})


def test_unknown_topic_is_refused(demo: HallConfig) -> None:
    with pytest.raises(ValueError, match="not a topic"):
        build_ticket(demo, sample_ticket(topic="weddings"), "sv", LABELS["sv"])


def test_layout_blocks_are_frozen(demo: HallConfig) -> None:
    layout = build_ticket(demo, sample_ticket(), "sv", LABELS["sv"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.blocks[0].role = "x"  # type: ignore[misc]
    assert isinstance(layout.blocks[1], RuleBlock)


# ---------------------------------------------------------------- the PNG preview


def test_sami_letters_are_real_glyphs_in_the_shipped_font() -> None:
    font = png_render.load_font(40)
    assert "assets/fonts" in str(font.path), "the shipped DejaVu Sans must be used, not a host font"
    notdef = font.getmask("\U0010fffd")
    for letter in "áčđŋšŧžÁČĐŊŠŦŽ":
        mask = font.getmask(letter)
        assert mask.getbbox() is not None, letter
        assert mask.size != notdef.size or bytes(mask) != bytes(notdef), f"{letter} draws the missing-glyph box"


@pytest.mark.parametrize("lang", ["sv", "se"])
@pytest.mark.parametrize("paper", [PAPER_58, PAPER_80], ids=["58mm", "80mm"])
def test_preview_png_is_the_paper_width_and_kept_as_an_artifact(sami: HallConfig, lang: str, paper: Paper,
                                                                 pictures: Callable[[str], Path]) -> None:
    """The preview is kept among the pictures (docs/screenshots/tickets/ when bin/screenshots runs: the README's)."""
    ticket = sample_ticket(number="A007", topic="general", ahead=12, expected_wait_s=1490, priority=lang == "se")
    layout = build_ticket(sami, ticket, lang, LABELS[lang], paper=paper)
    image = png_render.render_png(layout)
    assert image.width == paper.dots and 600 < image.height < 1400
    path = pictures("tickets") / f"ticket-{lang}-{paper.mm}mm.png"
    image.quantize(colors=32, dither=Image.Dither.NONE).save(path, optimize=True)
    assert path.stat().st_size < 60_000
    # the topic colour band runs across the top, the paper below it is white, the number is ink
    assert image.getpixel((paper.dots // 2, 4)) == tuple(int(sami.topics["general"].colour[i:i + 2], 16)
                                                         for i in (1, 3, 5))
    assert image.getpixel((paper.dots // 2, 30)) == (255, 255, 255)
    number_band = image.crop((0, 80, paper.dots, 170)).convert("L")
    assert number_band.getextrema()[0] < 50


def test_a_sami_line_draws_differently_from_its_ascii_lookalike() -> None:
    block = TextBlock("topic", ("Dábálaš gažaldagat",))
    sami_line = png_render.line_image("Dábálaš gažaldagat", PAPER_58, block)
    ascii_line = png_render.line_image("Dabalas gazaldagat", PAPER_58, block)
    assert ImageChops.difference(sami_line, ascii_line).getbbox() is not None
    assert sami_line.size == (384, 24 + png_render.LINE_GAP)
