"""The ticket as a PNG at the printer's real width: the demo's printer, IT's preview, the README's picture.

It draws the same blocks as the ESC/POS renderer with the same metrics (Font A is 12x24 dots,
Font B 9x17, a line pitch of the glyph cell plus 6 dots, the same QR module size), so what the
preview shows is what the roll shows; only the topic colour band is extra, as thermal paper is
black. The line drawing here is also what prints a line no code page carries as a raster image,
so the paper and the preview share one glyph path and one font.
"""

from __future__ import annotations

import logging
import unicodedata
from functools import lru_cache
from pathlib import Path

import qrcode
import qrcode.constants
from PIL import Image, ImageDraw, ImageFont, features

import assets
from kiosk.ticket import Align, Paper, QrBlock, RuleBlock, TextBlock, TicketLayout

FONT_DIRS = (assets.path("fonts"), Path("/usr/share/fonts/truetype/dejavu"))
FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}

log = logging.getLogger(__name__)

CELL_A = 24  # Font A glyph cell height in dots
CELL_B = 17  # Font B
FONT_PX_A = 20  # DejaVu Sans pixel size whose ascent+descent fills a Font A cell
FONT_PX_B = 14
LINE_GAP = 6  # dots between text lines: a printer's default pitch is the cell plus a few dots
BAND = 18  # the topic colour band of the preview, top and bottom
INK = 0
PAPER = 255


class FontMissing(RuntimeError):
    """The shipped DejaVu fonts are gone; without them a Sámi line cannot be drawn, so say so plainly."""


def load_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans from assets/fonts (shipped) or Debian's fonts-dejavu-core; cached, fonts load slowly.

    Laid out by libraqm only when it is what shapes (shaping_engine): text already put into visual order by
    ui.text_shaping must not be reordered a second time."""
    return _font(size, bold, shaping_engine() == "raqm")


@lru_cache(maxsize=64)
def _font(size: int, bold: bool, raqm: bool) -> ImageFont.FreeTypeFont:
    engine = ImageFont.Layout.RAQM if raqm else ImageFont.Layout.BASIC
    for directory in FONT_DIRS:
        path = directory / FONT_FILES[bold]
        if path.is_file():
            return ImageFont.truetype(str(path), size, layout_engine=engine)
    raise FontMissing(f"{FONT_FILES[bold]} not found in {', '.join(str(d) for d in FONT_DIRS)}")


class ShapingMissing(RuntimeError):
    """Neither libraqm (Pillow's layout engine) nor python-bidi + arabic-reshaper: Arabic would print unjoined."""


@lru_cache(maxsize=1)
def shaping_engine() -> str:
    """How right-to-left lines are shaped here: "raqm" (Pillow's own, with FriBiDi and HarfBuzz), "reshaper"
    (ui.text_shaping before drawing), or "" when neither is installed. Logged once, loudly when "" ."""
    if features.check("raqm"):
        return "raqm"
    try:
        from ui import text_shaping  # noqa: F401  python-bidi and arabic-reshaper
    except ImportError:
        log.error("tickets cannot shape Arabic or other right-to-left text: Pillow has no libraqm and "
                  "python-bidi + arabic-reshaper are not installed (pip install 'vuoro[kiosk]'); such lines "
                  "would print as separate letters in the wrong order")
        return ""
    return "reshaper"


def check_shaping(needed: bool) -> None:
    """Raise ShapingMissing when a ticket needs shaping (a hall language written right to left) and nothing here
    can do it: the kiosk refuses to start rather than print unreadable tickets."""
    if needed and not shaping_engine():
        raise ShapingMissing("no text shaping for right-to-left tickets: install libraqm (Debian: libraqm0) or "
                             "python-bidi and arabic-reshaper (pip install 'vuoro[kiosk]')")


def shaped(text: str) -> tuple[str, bool]:
    """A line as Pillow should be given it, and whether it reads right to left.

    With libraqm Pillow shapes and reorders by itself (it gets logical order); without it the line is put
    into visual order with joined forms first (ui.text_shaping). Latin text passes through untouched.
    """
    if not any(unicodedata.bidirectional(char) in ("R", "AL") for char in text):
        return text, False
    engine = shaping_engine()
    if not engine:
        return text, True  # said loudly once (shaping_engine); check_shaping keeps such a kiosk from starting
    from ui.text_shaping import base_direction, visual_line

    rtl = base_direction(text) == "rtl"
    return (text if engine == "raqm" else visual_line(text)), rtl


def qr_module_dots(paper: Paper) -> int:
    """QR module size in dots: about 0.6-0.75 mm, large enough for any phone camera, small enough to fit."""
    return 5 if paper.dots <= 384 else 6


def line_pitch(block: TextBlock) -> int:
    return (CELL_B if block.small else CELL_A) * block.height + LINE_GAP


def line_image(text: str, paper: Paper, block: TextBlock) -> Image.Image:
    """One text line as a greyscale image, paper width by line pitch, magnified the way ESC/POS GS ! does.

    Glyphs are drawn at the base size times the smaller magnification, then stretched to the
    block's width and height factors, as the printer stretches its own font. A line wider than
    the paper (proportional glyphs can be) is drawn smaller rather than cut off.
    """
    cell = CELL_B if block.small else CELL_A
    uniform = max(1, min(block.width, block.height))
    size = (FONT_PX_B if block.small else FONT_PX_A) * uniform
    canvas_w = paper.dots * uniform // max(1, block.width)
    canvas_h = cell * uniform
    font = load_font(size, block.bold)
    while font.getlength(shaped(text)[0]) > canvas_w and size > 8:
        size -= 1
        font = load_font(size, block.bold)
    image = Image.new("L", (canvas_w, canvas_h), PAPER)
    draw = ImageDraw.Draw(image)
    drawn, rtl = shaped(text)
    if block.align is Align.CENTER:
        draw.text((canvas_w / 2, canvas_h / 2), drawn, font=font, fill=INK, anchor="mm")
    elif rtl:  # a right-to-left line starts at the right edge
        draw.text((canvas_w, canvas_h / 2), drawn, font=font, fill=INK, anchor="rm")
    else:
        draw.text((0, canvas_h / 2), drawn, font=font, fill=INK, anchor="lm")
    target = (paper.dots, cell * block.height)
    if image.size != target:
        image = image.resize(target, Image.Resampling.BICUBIC)
    line = Image.new("L", (paper.dots, line_pitch(block)), PAPER)
    line.paste(image, (0, 0))
    return line


def qr_image(data: str, paper: Paper) -> Image.Image:
    """The QR code as the printer draws it natively (model 2, level M, same module size), for the preview."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=qr_module_dots(paper), border=0)
    code.add_data(data)
    code.make(fit=True)
    return code.make_image(fill_color="black", back_color="white").get_image().convert("L")


def _rule_image(paper: Paper) -> Image.Image:
    """A dashed rule, like the row of '-' the printer prints."""
    pitch = CELL_A + LINE_GAP
    image = Image.new("L", (paper.dots, pitch), PAPER)
    draw = ImageDraw.Draw(image)
    dash = paper.dots // paper.columns
    for x in range(0, paper.dots, dash):
        draw.line((x + 2, pitch // 2, x + dash - 3, pitch // 2), fill=INK, width=2)
    return image


def render_png(layout: TicketLayout) -> Image.Image:
    """The whole ticket as an RGB image, paper.dots wide (203 dpi: 58 mm -> 384 px, 80 mm -> 576 px)."""
    paper = layout.paper
    parts: list[Image.Image] = [Image.new("L", (paper.dots, 12), PAPER)]
    for block in layout.blocks:
        if isinstance(block, TextBlock):
            parts.extend(line_image(line, paper, block) for line in block.lines)
            if block.role == "number":
                parts.append(Image.new("L", (paper.dots, 8), PAPER))
        elif isinstance(block, RuleBlock):
            parts.append(_rule_image(paper))
        elif isinstance(block, QrBlock):
            code = qr_image(block.data, paper)
            framed = Image.new("L", (paper.dots, code.height + 2 * LINE_GAP), PAPER)
            framed.paste(code, ((paper.dots - code.width) // 2, LINE_GAP))
            parts.append(framed)
    parts.append(Image.new("L", (paper.dots, 24), PAPER))
    height = sum(part.height for part in parts) + 2 * BAND
    ticket = Image.new("RGB", (paper.dots, height), "white")
    y = BAND
    for part in parts:
        ticket.paste(part.convert("RGB"), (0, y))
        y += part.height
    draw = ImageDraw.Draw(ticket)
    draw.rectangle((0, 0, paper.dots - 1, BAND - 1), fill=layout.colour)
    draw.rectangle((0, height - BAND, paper.dots - 1, height - 1), fill=layout.colour)
    draw.rectangle((0, 0, paper.dots - 1, height - 1), outline="#c8c8c8")
    return ticket


def preview_name(layout: TicketLayout) -> str:
    """'A001-20261130-090000.png': sorts by time within a number, names the ticket at a glance."""
    return f"{layout.number}-{layout.issued:%Y%m%d-%H%M%S}.png"


def save_png(layout: TicketLayout, directory: Path) -> Path:
    """Write the preview into `directory` (created if missing); a reprint gets '~2', never overwrites."""
    directory.mkdir(parents=True, exist_ok=True)
    image = render_png(layout).quantize(colors=32, dither=Image.Dither.NONE)  # a few colours: ~15 kB a ticket
    stem = preview_name(layout).removesuffix(".png")
    for attempt in range(1, 1000):
        path = directory / (f"{stem}.png" if attempt == 1 else f"{stem}~{attempt}.png")
        try:
            with path.open("xb") as stream:  # exclusive: two kiosks sharing a folder cannot clobber each other
                image.save(stream, format="PNG", optimize=True)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"too many previews named {stem} in {directory}")
