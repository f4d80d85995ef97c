"""Arabic as it must look: joined letters, right to left, numbers in order; on the kiosk's screen and on paper.

The reference is Pillow with libraqm (HarfBuzz shaping, FriBiDi order), given the text in logical order.
A picture is compared by its ink: both binarised, cropped to their ink and scaled to one size; the share of
pixels that agree. Unshaped text (separate letters, left to right) is drawn too, and the picture under test
must be clearly closer to the reference than to it: so the test fails on unjoined or left-to-right text.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, features

from broker.config import DEMO_HALL, HallConfig, load_hall
from kiosk import png_render
from kiosk.fake_printer import FakeEscposPrinter, parse_escpos
from kiosk.printer import Printer
from kiosk.ticket import PAPER_58, build_ticket
from tests.support import gallery
from tests.test_ticket import sample_ticket
from ui.i18n import ticket_labels, translator
from ui.kivy_env import FONT_BOLD
from ui.text_shaping import base_direction, is_rtl_language, visual_line

SIDE = (240, 48)  # both pictures are compared at this size, once cropped to their ink
MARGIN = 0.04  # the picture must agree this much better with the shaped reference than with the unshaped one

needs_raqm = pytest.mark.skipif(not features.check("raqm"), reason="the reference needs Pillow with libraqm")


def _draw(text: str, size: int, *, shaped: bool) -> Image.Image:
    engine = ImageFont.Layout.RAQM if shaped else ImageFont.Layout.BASIC
    font = ImageFont.truetype(FONT_BOLD, size, layout_engine=engine)
    image = Image.new("L", (int(font.getlength(text)) + 40, size * 2), 255)
    ImageDraw.Draw(image).text((20, size // 2), text, font=font, fill=0)
    return image


def _ink(image: Image.Image, dark_ink: bool = True) -> Image.Image:
    """Ink as black on white, cropped to its bounding box and scaled to SIDE."""
    grey = image.convert("L")
    if not dark_ink:
        grey = ImageChops.invert(grey)
    binary = grey.point(lambda v: 0 if v < 128 else 255)
    box = ImageChops.invert(binary).getbbox()
    assert box is not None, "no ink at all"
    return binary.crop(box).resize(SIDE, Image.Resampling.BILINEAR).point(lambda v: 0 if v < 128 else 255)


def agreement(first: Image.Image, second: Image.Image) -> float:
    diff = ImageChops.difference(first, second)
    return 1.0 - sum(1 for v in diff.tobytes() if v) / (SIDE[0] * SIDE[1])


def judged(picture: Image.Image, text: str, size: int, dark_ink: bool = True) -> tuple[float, float]:
    """(agreement with the shaped reference, agreement with unshaped text)."""
    seen = _ink(picture, dark_ink)
    return (agreement(seen, _ink(_draw(text, size, shaped=True))),
            agreement(seen, _ink(_draw(text, size, shaped=False))))


# ---------------------------------------------------------------- the shaping itself


def test_arabic_is_joined_reordered_and_keeps_numbers_and_latin_in_order() -> None:
    text = "الشباك 12 · A007"
    line = visual_line(text)
    assert all("\ufe70" <= c <= "\ufeff" or unicodedata.bidirectional(c) not in ("AL", "R") for c in line), \
        "every Arabic letter in a joined (presentation) form"
    assert "12" in line and "A007" in line, "numbers and ticket numbers read left to right inside the line"
    assert line.index("A007") < line.index("12"), "the line runs right to left: its end is drawn first"
    assert base_direction(text) == "rtl" and base_direction("A007 الشباك") == "ltr"
    assert visual_line("تم (12)").startswith("(12) "), "brackets mirrored: they still enclose the number"
    assert visual_line("Kvarnby 12") == "Kvarnby 12"
    assert is_rtl_language("ar") and not is_rtl_language("se")


# ---------------------------------------------------------------- paper


@pytest.fixture
def fake() -> Iterator[FakeEscposPrinter]:
    with FakeEscposPrinter(serial=False, tcp=True) as printer:
        yield printer


def _rasters(data: bytes) -> list[Image.Image]:
    images = []
    for command in parse_escpos(data)[0]:
        if command.name == "raster":
            width_bytes, height = command.raw[4] | command.raw[5] << 8, command.raw[6] | command.raw[7] << 8
            bits = Image.frombytes("1", (width_bytes * 8, height), command.raw[8:])
            images.append(Image.eval(bits.convert("L"), lambda value: 255 - value))
    return images


@needs_raqm
@pytest.mark.parametrize("engine", ["raqm", "reshaper"])
def test_an_arabic_ticket_prints_shaped_right_to_left_through_escpos(fake: FakeEscposPrinter, engine: str,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     pictures: Callable[[str], Path]) -> None:
    monkeypatch.setattr(png_render, "shaping_engine", lambda: engine)  # the fallback as a kiosk without raqm has
    hall = load_hall(DEMO_HALL)
    layout = build_ticket(hall, sample_ticket(topic="social", ahead=16), "ar", ticket_labels("ar"), paper=PAPER_58)
    printer = Printer(fake.tcp_uri + "?paper=58")
    try:
        printer.print_ticket(layout)
        assert fake.wait_for(lambda data: any(c.name == "cut" for c in parse_escpos(data)[0]), channel="tcp")
    finally:
        printer.close()
    images = _rasters(fake.received("tcp"))
    topic = [image for image in images if image.height == 2 * 24 + 6]
    assert topic, "the topic name printed as a raster line at double size"
    strip = Image.new("L", (PAPER_58.dots, sum(i.height for i in images)), 255)
    y = 0
    for image in images:
        strip.paste(image, (0, y))
        y += image.height
    strip.save(pictures("tickets") / f"raster-lines-ar-58mm-{engine}.png")
    name = hall.topics["social"].name["ar"]
    first_line = next(block for block in layout.blocks if block.role == "topic").lines[0]
    assert name.startswith(first_line)
    shaped, unshaped = judged(topic[0], first_line, 40)
    assert shaped > 0.85 and shaped > unshaped + MARGIN, (shaped, unshaped)
    # a right-to-left line starts at the right edge of the paper
    ahead = [image for image in images if image.height == 24 + 6]
    box = ImageChops.invert(ahead[0]).getbbox()
    assert (box is not None and box[2] > PAPER_58.dots - 20) or box[0] > 20


def test_the_ticket_renderer_says_loudly_when_it_cannot_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(png_render, "shaping_engine", lambda: "")
    with pytest.raises(png_render.ShapingMissing, match="libraqm"):
        png_render.check_shaping(True)
    png_render.check_shaping(False)  # a hall without right-to-left languages needs none


@pytest.mark.parametrize(("n", "form"), [(1, 1), (2, 2), (3, 3), (10, 3), (11, 4), (16, 4), (99, 4), (100, 5)])
def test_the_ticket_says_each_count_in_the_arabic_plural_form_of_the_catalogue(n: int, form: int) -> None:
    labels = ticket_labels("ar")
    catalogue = translator("ar")
    assert labels[f"ahead_{n}"] == catalogue.template("label.ahead", n)
    layout = build_ticket(load_hall(DEMO_HALL), sample_ticket(ahead=n), "ar", labels, paper=PAPER_58)
    ahead = " ".join(next(block for block in layout.blocks if block.role == "ahead").lines)
    forms = {catalogue.template("label.ahead", count).format(n=n) for count in (0, 1, 2, 3, 11, 100)}
    assert ahead in forms
    assert ahead == catalogue.template("label.ahead", n).format(n=n)
    expected = {1: 1, 2: 2, 3: 3, 4: 11, 5: 100}[form]
    assert ahead == catalogue.template("label.ahead", expected).format(n=n)


# ---------------------------------------------------------------- the kiosk's screen


@needs_raqm
def test_the_arabic_kiosk_title_is_drawn_as_the_reference_shapes_it(tmp_path: Path,
                                                                    pictures: Callable[[str], Path]) -> None:
    out = pictures("kiosk") / "rtl"
    report = gallery.run("kiosk", out, ["ar"], tmp_path / "kivy")
    text, x0, top, x1, bottom = report["titles"]["topic-ar"]
    assert text == translator("ar")("topic.title")
    picture = Image.open(out / "kiosk-topic-ar.png").convert("RGB")
    title = picture.crop((int(x0), int(top), int(x1) + 1, int(bottom) + 1))
    shaped, unshaped = judged(title, text, 40)
    assert shaped > 0.85 and shaped > unshaped + MARGIN, (shaped, unshaped)


def hall_with(hall: HallConfig, *langs: str) -> HallConfig:
    """A copy of a hall that speaks more languages (their texts fall back to the main language)."""
    return dataclasses.replace(hall, languages=(*hall.languages, *(x for x in langs if x not in hall.languages)))
