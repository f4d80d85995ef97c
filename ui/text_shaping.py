"""Text as it is drawn: joined Arabic letters in right-to-left order, for renderers that do neither.

Kivy's SDL2 text provider and Pillow without libraqm draw code points one by one, left to right: Arabic
then shows separate, unjoined letters in reverse order. Both the kiosk's, the counter's and the display's
labels (through ui.kivy_env's label provider) and the ticket's fallback path come here, so a script is
shaped in one place: arabic-reshaper picks each letter's joined form, python-bidi puts one line into
visual order (brackets mirrored), numbers and Latin ticket numbers staying left to right inside it.

Shape one line at a time, after wrapping: reordering a whole paragraph first would put its end on the top
line. Pure logic: no Kivy, no Pillow.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import arabic_reshaper
from bidi import get_base_level
from bidi.algorithm import get_display  # python-bidi's full algorithm: it mirrors brackets, its Rust one does not

RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur", "ps", "yi", "ckb", "dv", "ug"})
_RTL_CLASSES = frozenset({"R", "AL", "RLE", "RLO", "RLI"})


def is_rtl_language(lang: str | None) -> bool:
    """A language written right to left: its screens are mirrored (lists, buttons, arrows stay true)."""
    return (lang or "").split("-")[0].split("_")[0].lower() in RTL_LANGUAGES


def has_rtl(text: str) -> bool:
    """Any letter of a right-to-left script (the fast path: Latin text is drawn as it is)."""
    return any(unicodedata.bidirectional(char) in _RTL_CLASSES for char in text)


def base_direction(text: str) -> str:
    """"rtl" or "ltr" after the first letter with a strong direction (the Unicode rule, P2-P3)."""
    return "rtl" if has_rtl(text) and get_base_level(text) == 1 else "ltr"


@lru_cache(maxsize=4096)
def visual_line(text: str, rtl: bool | None = None) -> str:
    """One line in drawing order with joined letter forms; text without right-to-left letters as it is.

    `rtl` forces the paragraph direction (a line of an Arabic screen that starts with a ticket number);
    None takes it from the text's first strong letter.
    """
    if not text or not has_rtl(text):
        return text
    shaped = arabic_reshaper.reshape(text)
    if rtl is None:
        return get_display(shaped)
    return get_display(shaped, base_dir="R" if rtl else "L")


def visual(text: str, rtl: bool | None = None) -> str:
    """Each line of a text (split at line breaks) in drawing order."""
    return "\n".join(visual_line(part, rtl) for part in text.split("\n"))
