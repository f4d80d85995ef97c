"""The ticket layout as ESC/POS commands, through python-escpos, onto any of its printer objects.

Text goes out in ONE code page set explicitly at the start of every ticket (ESC @ then ESC t),
never through python-escpos's automatic switching, which hops between tables inside a line
(for "ä š ŋ" it sends ESC t 0, 0x84, ESC t 16, 0x9A, '?') and so depends on every table number
being right on every clone. One well-known table, re-selected per ticket, is verified once per
printer model. A line holding a letter that table lacks (Northern Sámi č đ ŋ š ŧ ž) is drawn with
Pillow and sent as a raster image (GS v 0), never as '?'.

python-escpos is only imported where a profile or printer object is built (`paper_profile`,
`to_bytes`), so importing this module stays cheap; kiosk/printer.py pays that import once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from PIL import Image

from kiosk.png_render import line_image, qr_module_dots
from kiosk.ticket import Paper, QrBlock, RuleBlock, TextBlock, TicketLayout

if TYPE_CHECKING:
    from escpos.escpos import Escpos

DEFAULT_CODEPAGE = "CP858"
"""Latin-1 letters (å ä ö, é ü ß ø æ, õ) plus the euro sign, at Epson table 19; same å/ä/ö bytes as CP850/CP865."""

CODEPAGES = {"CP437": "cp437", "CP850": "cp850", "CP858": "cp858", "CP865": "cp865"}
"""Tables the kiosk may be told to use (URI ?codepage=): all carry å ä ö Å Ä Ö, at 0x86 0x84 0x94 0x8F 0x8E 0x99."""

QR_EC_M = 1  # python-escpos QR_ECLEVEL_M: survives a crease or a smudge
QR_MODEL_2 = 2

# Typographic punctuation that translators like and code pages lack: printed as its ASCII twin
# rather than turning a whole line into an image.
_ASCII_TWINS = str.maketrans({
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2026": "...", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
    "\u2192": "->", "\u2190": "<-",
})


def _codec(codepage: str) -> str:
    try:
        return CODEPAGES[codepage.upper()]
    except KeyError:
        raise ValueError(f"code page {codepage!r} is not one of {', '.join(CODEPAGES)}") from None


def check_codepage(codepage: str) -> str:
    """The canonical name of a supported code page, or ValueError naming the choices."""
    _codec(codepage)
    return codepage.upper()


def printable_text(text: str, codepage: str = DEFAULT_CODEPAGE) -> str | None:
    """The line as the code page can print it (punctuation folded to ASCII), or None if it needs an image."""
    folded = text.translate(_ASCII_TWINS)
    try:
        folded.encode(_codec(codepage))
    except UnicodeEncodeError:
        return None
    if any(ord(ch) < 32 for ch in folded):
        return None  # a control byte inside a label must never reach the printer as a command
    return folded


def raster_line(text: str, paper: Paper, block: TextBlock) -> Image.Image:
    """A line as a 1-bit image, thresholded (not dithered) so glyph edges print crisp."""
    grey = line_image(text, paper, block)
    return grey.point(lambda value: 255 if value >= 128 else 0, mode="1")


def _style(printer: Escpos, block: TextBlock) -> None:
    printer.set(align=block.align.value, font="b" if block.small else "a", bold=block.bold,
                custom_size=True, width=block.width, height=block.height)


def render(layout: TicketLayout, printer: Escpos, *, codepage: str = DEFAULT_CODEPAGE, cut: bool = True) -> None:
    """Print the ticket onto a python-escpos printer object (Dummy, Serial, Network, Usb...).

    Give that object `profile=paper_profile(layout.paper)`, as to_bytes does: python-escpos needs
    the roll's width to refuse a too-wide image, and prints a warning per image without it.
    """
    name = check_codepage(codepage)
    paper = layout.paper
    printer.hw("INIT")  # ESC @: forget whatever the last job left set (size, bold, code page)
    printer.magic.encoding = None  # ...so python-escpos must not assume the table survived it either
    printer.charcode(name)  # ESC t n, and python-escpos encodes every text in this table from now on
    for block in layout.blocks:
        if isinstance(block, TextBlock):
            _style(printer, block)
            for line in block.lines:
                text = printable_text(line, name)
                if text is not None:
                    printer.textln(text)
                else:
                    # the image carries its own alignment (drawn across the full width)
                    printer.set(align="left")
                    printer.image(raster_line(line, paper, block), impl="bitImageRaster")
                    printer.set(align=block.align.value)
            if block.role == "number":
                printer.set(custom_size=True, width=1, height=1)
                printer.ln()
        elif isinstance(block, RuleBlock):
            printer.set(align="left", font="a", bold=False, custom_size=True, width=1, height=1)
            printer.textln("-" * paper.columns)
        elif isinstance(block, QrBlock):
            printer.set(align="center", custom_size=True, width=1, height=1)
            printer.qr(block.data, ec=QR_EC_M, size=qr_module_dots(paper), model=QR_MODEL_2, native=True)
            printer.ln()
    printer.set(align="left", font="a", bold=False, custom_size=True, width=1, height=1)
    if cut:
        printer.cut()


@lru_cache(maxsize=8)
def paper_profile(paper: Paper) -> Any:
    """python-escpos's default (Epson-compatible) profile told the roll's real width in dots.

    Without a width python-escpos cannot refuse an image too wide for the paper and prints a
    warning to stdout on every image; with it, a raster line wider than the roll is an error here.
    """
    from escpos.capabilities import Profile, get_profile_class

    base = get_profile_class("default").profile_data
    data = {**base, "name": f"Vuoro {paper.mm} mm", "media": {"dpi": 203, "width": {"mm": paper.mm,
                                                                                      "pixels": paper.dots}}}
    profile = Profile(columns=paper.columns, features=dict(base["features"]))
    profile.profile_data = data
    return profile


def to_bytes(layout: TicketLayout, *, codepage: str = DEFAULT_CODEPAGE, cut: bool = True) -> bytes:
    """The whole ticket as one byte string, so a transport sends it in one piece or not at all."""
    from escpos.printer import Dummy

    printer = Dummy(profile=paper_profile(layout.paper))
    render(layout, printer, codepage=codepage, cut=cut)
    return printer.output
