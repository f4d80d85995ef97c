"""Text that fits its box in every language: shrink within limits, then wrap, then hyphenate, never overflow.

A German topic name is half again as long as the Swedish one, an Arabic one is shaped and wider per
letter, and a button's face is the same size for all of them. So a label is laid out here, not by the
renderer: at the largest size between `largest` and `smallest` where the text wraps between words into
the box; when no size does, at the smallest size with long words broken at hyphenation points (pyphen's
dictionary of the language; a word of a language without one, or without a point that helps, is broken
where the width ends, still with a hyphen). The lines come back joined by line breaks, so the renderer
only draws them.

Pure: the caller measures (a Kivy core label, Pillow), so tests can lay out without a window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyphen

Measure = Callable[[str, float], float]  # (text, font size) -> width in pixels
HYPHEN = "-"
SHRINK_STEP = 0.95  # each size tried is this much of the last: few sizes, few fonts rendered


@dataclass(frozen=True)
class Fitted:
    text: str  # lines joined by "\n"
    size: float
    fits: bool  # False: even the smallest size with hyphenation overflows (a test's failure, drawn anyway)
    hyphenated: bool


# A hyphenation dictionary is large in memory (pyphen's German one ~14 MiB of Python objects, Swedish and English
# ~3 MiB each: ~19 MiB in a kiosk showing those languages), while the words a device ever breaks are few: the
# catalogues' and the hall's. So the points found are kept per word, and the dictionaries only until the device is
# idle (`forget_dictionaries`, from ui.kivy_env.release_memory): a word seen once is broken again without them.
_dictionaries: dict[str, pyphen.Pyphen | None] = {}
_POINTS_KEPT = 4096  # words, all languages: far more than a device's screens hold; cleared whole if ever reached
_points: dict[tuple[str, str], tuple[int, ...]] = {}


def _dictionary(lang: str) -> pyphen.Pyphen | None:
    if lang not in _dictionaries:
        try:
            _dictionaries[lang] = pyphen.Pyphen(lang=lang)
        except KeyError:
            _dictionaries[lang] = None
    return _dictionaries[lang]


def forget_dictionaries() -> None:
    """Drop the loaded hyphenation dictionaries (the points found stay); the next unknown word loads its own again.

    pyphen keeps each dictionary it loaded in its module's `hdcache` too: those of ours leave it as well.
    """
    loaded = {id(d.hd) for d in _dictionaries.values() if d is not None}
    for path, hyph in list(pyphen.hdcache.items()):
        if id(hyph) in loaded:
            del pyphen.hdcache[path]
    _dictionaries.clear()


def hyphenation_points(word: str, lang: str) -> list[int]:
    """Where a word may be broken, as indices; none for a language pyphen has no dictionary for."""
    if len(word) < 6:
        return []
    key = (lang, word)
    points = _points.get(key)
    if points is None:
        dictionary = _dictionary(lang)
        points = () if dictionary is None else tuple(int(p) for p in dictionary.positions(word))
        if len(_points) >= _POINTS_KEPT:
            _points.clear()
        _points[key] = points
    return list(points)


def wrap(text: str, width: float, size: float, measure: Measure, lang: str, *, hyphenate: bool) -> list[str] | None:
    """Greedy lines no wider than `width`; None when a word is wider and `hyphenate` is off."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if measure(candidate, size) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
                current = ""
            while len(word) > 1 and measure(word, size) > width:
                if not hyphenate:
                    return None
                head, word = _break(word, width, size, measure, lang)
                lines.append(head)
            current = word  # a single letter wider than the box stays whole (the fit test reports it)
        lines.append(current)
    return lines


def _break(word: str, width: float, size: float, measure: Measure, lang: str) -> tuple[str, str]:
    """The longest head of a word that fits with its hyphen: at a hyphenation point if one helps."""
    if HYPHEN in word[1:-1]:  # a compound already hyphenated ("Sozial-") breaks after its own hyphen first
        cut = word.index(HYPHEN, 1) + 1
        if measure(word[:cut], size) <= width:
            return word[:cut], word[cut:]
    for cut in reversed(hyphenation_points(word, lang)):
        if measure(word[:cut] + HYPHEN, size) <= width:
            return word[:cut] + HYPHEN, word[cut:]
    cut = len(word) - 1
    while cut > 1 and measure(word[:cut] + HYPHEN, size) > width:
        cut -= 1
    return word[:max(1, cut)] + HYPHEN, word[max(1, cut):]  # at least one letter a line: always progress


def fit(text: str, width: float, height: float | None, largest: float, smallest: float, measure: Measure,
        line_height: Callable[[float], float], lang: str, max_lines: int | None = None) -> Fitted:
    """The largest size in [smallest, largest] whose wrapped lines fit the box (height None: any number of lines).

    A word is never broken while a smaller size keeps it whole; only at `smallest` are words hyphenated.
    """
    if not text.strip():
        return Fitted(text, largest, True, False)
    width = max(1.0, width)

    def fits(lines: list[str], size: float) -> bool:
        if max_lines is not None and len(lines) > max_lines:
            return False
        return height is None or len(lines) * line_height(size) <= height + 0.5

    size = largest
    while True:
        lines = wrap(text, width, size, measure, lang, hyphenate=False)
        if lines is not None and fits(lines, size):
            return Fitted("\n".join(lines), size, True, False)
        if size <= smallest:
            break
        size = max(smallest, float(int(size * SHRINK_STEP)))  # whole pixels: few fonts rendered
    lines = wrap(text, width, smallest, measure, lang, hyphenate=True) or []
    return Fitted("\n".join(lines), smallest, fits(lines, smallest), True)
