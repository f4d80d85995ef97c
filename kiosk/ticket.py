"""The paper ticket laid out once, as data; ESC/POS and the PNG preview are two renderers of it.

Pure: no I/O, no clock, no translation. The kiosk's i18n layer hands in every visible label
already translated, so a language is added by adding a catalogue, never by touching this file,
and the renderers never have to guess what a line means: each block carries its role.

Label keys (a mapping of key -> translated text with ``str.format`` placeholders):

==================  ========  ==============================================================
key                 needed    what
==================  ========  ==============================================================
``ahead``           yes       people ahead, ``{n}``: "{n} före dig"
``ahead_<N>``       no        exact-count form that wins over ``ahead`` for that N: ``ahead_0``
                              "Du är näst på tur", ``ahead_1`` for a singular, ``ahead_2`` for
                              a language with a dual (Northern Sámi)
``wait``            yes       expected wait, ``{time}``: "Beräknad väntetid: {time}"
``minutes``         yes       ``{n}`` minutes: "{n} min"
``hours``           yes       ``{n}`` hours: "{n} h" (joined to the minutes with a space)
``issued``          yes       date and time, ``{year} {month} {day} {hour} {minute}`` as ints
                              (format specs allowed): "{year}-{month:02}-{day:02} {hour:02}:{minute:02}"
``where``           yes       heading over where to wait: "Vänta vid"
``privacy``         yes       the short privacy line: "Biljetten bär inga personuppgifter."
``priority``        no        shown under the number of a priority ticket
``qr``              no        caption under the QR code: "Följ kön i mobilen"
``hall``            no        the hall name, when the hall file has none in this language
``topic.<id>``      no        a topic's name, likewise (a kiosk language the hall file lacks)
``location.<id>``,  no        a counter's location and wayfinding, likewise
``wayfinding.<id>``
==================  ========  ==============================================================
"""

from __future__ import annotations

import re
import string
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from broker.config import HallConfig, Text
from broker.estimate import round_wait_minutes, wait_range_minutes  # shared with the web page and the CLI

NBSP = "\u00a0"
_SPACES = re.compile(r"[ \t\r\n]+")
_NUMBER_UNIT = re.compile(r"(\d) (?=\S)")  # "20 min", "1 h": a number and the word after it stay on one line


def keep_units(text: str) -> str:
    """No-break spaces after numbers, so that paper never splits "20 min - 1 / h" (kiosk/ticket.wrap)."""
    return _NUMBER_UNIT.sub(lambda match: match.group(1) + NBSP, text)
REQUIRED_LABELS = ("ahead", "wait", "minutes", "hours", "issued", "where", "privacy")
_PLACEHOLDERS = {"ahead": {"n"}, "wait": {"time"}, "wait_range": {"time"}, "minutes": {"n"}, "hours": {"n"},
                 "issued": {"year", "month", "day", "hour", "minute"}}


class LabelError(ValueError):
    """A label set the ticket cannot be built from; str() names the keys, for the catalogue's author."""


class Align(StrEnum):
    LEFT = "left"
    CENTER = "center"


@dataclass(frozen=True)
class Paper:
    """A roll width. Columns are for the printer's Font A (12x24 dots) and Font B (9x17 dots)."""

    mm: int
    dots: int
    columns: int
    small_columns: int

    def columns_for(self, width: int = 1, small: bool = False) -> int:
        """Characters per line at a magnification: what the printer itself would fit."""
        return (self.small_columns if small else self.columns) // max(1, width)


PAPER_58 = Paper(mm=58, dots=384, columns=32, small_columns=42)
PAPER_80 = Paper(mm=80, dots=576, columns=48, small_columns=64)
PAPERS = {58: PAPER_58, 80: PAPER_80}


@dataclass(frozen=True)
class TextBlock:
    """Lines of text, already wrapped to the paper at this block's magnification."""

    role: str
    lines: tuple[str, ...]
    width: int = 1  # character magnification, 1-8, as ESC/POS GS ! does it
    height: int = 1
    bold: bool = False
    small: bool = False  # Font B on paper, a smaller face in the preview
    align: Align = Align.CENTER


@dataclass(frozen=True)
class RuleBlock:
    """A separating line across the paper."""

    role: str = "rule"


@dataclass(frozen=True)
class QrBlock:
    """A QR code; the renderers pick the module size for the paper."""

    role: str
    data: str


Block = TextBlock | RuleBlock | QrBlock


@dataclass(frozen=True)
class TicketLayout:
    """One ticket, ready for any renderer. `colour` is the topic's, for the preview's band."""

    paper: Paper
    hall_id: str
    number: str
    topic_id: str
    lang: str
    colour: str
    issued: datetime
    blocks: tuple[Block, ...]

    def text(self, role: str) -> tuple[str, ...]:
        """All lines of the blocks with this role (tests and the kiosk's on-screen copy use it)."""
        return tuple(line for block in self.blocks if isinstance(block, TextBlock) and block.role == role
                     for line in block.lines)

    @property
    def qr_data(self) -> str | None:
        return next((block.data for block in self.blocks if isinstance(block, QrBlock)), None)


def check_labels(labels: Mapping[str, str]) -> list[str]:
    """Problems of a label set (missing keys, unknown placeholders); empty when it can build a ticket.

    Meant for the catalogue tests, so a translation mistake fails there and not at a visitor's ticket.
    """
    problems = [f"missing label {key!r}" for key in REQUIRED_LABELS if not labels.get(key, "").strip()]
    for key, text in labels.items():
        base = "ahead" if key.startswith("ahead_") else key
        allowed = _PLACEHOLDERS.get(base, set())
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as exc:
            problems.append(f"label {key!r}: {exc}")
            continue
        unknown = used - allowed
        if unknown:
            problems.append(f"label {key!r} uses unknown placeholder(s) {', '.join(sorted(unknown))}")
    return problems


def _fill(labels: Mapping[str, str], key: str, **values: Any) -> str:
    try:
        return labels[key].format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise LabelError(f"label {key!r} ({labels.get(key)!r}) does not fit {sorted(values)}: {exc!r}") from None


def format_ahead(ahead: int, labels: Mapping[str, str]) -> str:
    """'12 före dig'; an exact-count label (ahead_0, ahead_1...) wins, so 0 can say 'you are next'."""
    try:  # ui.i18n.TicketLabels gives every count its plural form by the catalogue's rule
        return labels[f"ahead_{ahead}"].format(n=ahead)
    except (KeyError, IndexError, ValueError):
        return _fill(labels, "ahead", n=ahead)


def _duration(minutes: int, labels: Mapping[str, str]) -> str:
    hours, rest = divmod(minutes, 60)
    parts = []
    if hours:
        parts.append(_fill(labels, "hours", n=hours))
    if rest or not hours:
        parts.append(_fill(labels, "minutes", n=rest))
    return " ".join(parts)


def format_wait(seconds: float, labels: Mapping[str, str], range_s: Any = None) -> str:
    """'Beräknad väntetid: 10–20 min' from the server's range, else 'Beräknad väntetid: cirka 1 h 30 min'.

    The range is what the server's estimate is measured against (bench/estimate_bench.py: about four real
    waits in five fall inside it), so the paper states exactly what is checked.
    """
    span = wait_range_minutes(range_s)
    if span is not None and "wait_range" in labels:
        low, high = span
        if high < 60:  # "10–20 min": one unit for both ends
            return _fill(labels, "wait_range", time=_fill(labels, "minutes", n=f"{low}–{high}"))
        return _fill(labels, "wait_range", time=f"{_duration(low, labels)} – {_duration(high, labels)}")
    return _fill(labels, "wait", time=_duration(round_wait_minutes(seconds), labels))


def format_issued(moment: datetime, labels: Mapping[str, str]) -> str:
    return _fill(labels, "issued", year=moment.year, month=moment.month, day=moment.day,
                 hour=moment.hour, minute=moment.minute)


def wrap(text: str, columns: int) -> tuple[str, ...]:
    """Word-wrap to the printer's columns; a word longer than a line is broken rather than cut off."""
    # split at spaces only: a no-break space (NBSP) holds a number to its unit, and is printed as a space
    lines = textwrap.wrap(" ".join(_SPACES.split(text.strip())), width=columns, break_long_words=True,
                          break_on_hyphens=True)
    return tuple(line.replace(NBSP, " ") for line in lines) or ("",)


def status_url(hall: HallConfig, token: str | None) -> str | None:
    """The ticket's own web page (`vuoro web`), `public_url/t/<token>`, when the hall names a public base URL
    and the server gave the ticket a token. The token is random and valid that day only: a number in the
    link would let anyone open anyone's ticket, and yesterday's D007 today's."""
    if not hall.public_url or not token:
        return None
    return f"{hall.public_url.rstrip('/')}/t/{token}"


def _local(text: Text, lang: str, override: str | None, fallback_lang: str) -> str:
    """The visitor's language, else a label the i18n layer supplied, else the hall's main language."""
    if lang in text:
        return text[lang]
    if override:
        return override
    return text.get(fallback_lang) or next(iter(text.values()), "")


def _where_lines(hall: HallConfig, topic_id: str, lang: str, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(location, wayfinding) of the counters that serve the topic first; one entry per location."""
    counters = hall.home_counters(topic_id)
    seen: dict[str, str] = {}
    main = hall.main_language
    for counter in counters:
        location = _local(counter.location, lang, labels.get(f"location.{counter.id}"), main)
        if location not in seen:
            seen[location] = _local(counter.wayfinding, lang, labels.get(f"wayfinding.{counter.id}"), main)
    return list(seen.items())


def _issued_at(hall: HallConfig, ticket: Mapping[str, Any], issued: datetime | None) -> datetime:
    """The issue time in the hall's zone: the visitor reads local time, whatever zone the server wrote."""
    moment = issued
    if moment is None:
        raw = ticket.get("issued_at")
        if not isinstance(raw, str):
            raise ValueError("the ticket has no issued_at and no issue time was passed in")
        moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=hall.tz)
    return moment.astimezone(hall.tz)


def _topic_block(name: str, paper: Paper) -> TextBlock:
    """Double size when the name fits in two lines at double width (most do), else double height only."""
    lines = wrap(name, paper.columns_for(2))
    if len(lines) <= 2 and all(len(word) <= paper.columns_for(2) for word in name.split()):
        return TextBlock("topic", lines, width=2, height=2, bold=True)
    return TextBlock("topic", wrap(name, paper.columns), height=2, bold=True)


def build_ticket(hall: HallConfig, ticket: Mapping[str, Any], lang: str, labels: Mapping[str, str], *,
                 paper: Paper = PAPER_80, issued: datetime | None = None, where: str | None = None) -> TicketLayout:
    """Lay out the ticket the server issued (the `ticket` of the `issue` result) for one paper width.

    `issued` overrides the ticket's issued_at (a reprint, a test); `where` replaces the counters'
    locations with a given text (a hall that seats its visitors somewhere else).
    """
    missing = [key for key in REQUIRED_LABELS if key not in labels]
    if missing:
        raise LabelError(f"labels for {lang!r} lack {', '.join(missing)}")
    number = str(ticket["number"])
    topic = hall.topics.get(str(ticket["topic"]))
    if topic is None:
        raise ValueError(f"topic {ticket['topic']!r} is not a topic of hall {hall.id!r}")
    main = hall.main_language
    moment = _issued_at(hall, ticket, issued)
    ahead = int(ticket.get("ahead", 0))
    cols = paper.columns_for

    blocks: list[Block] = [
        TextBlock("hall", wrap(_local(hall.name, lang, labels.get("hall"), main), cols()), bold=True),
        RuleBlock(),
        TextBlock("number", (number,), width=4, height=4, bold=True),
    ]
    if ticket.get("priority") and labels.get("priority"):
        blocks.append(TextBlock("priority", wrap(labels["priority"], cols()), bold=True))
    blocks += [
        _topic_block(_local(topic.name, lang, labels.get(f"topic.{topic.id}"), main), paper),
        RuleBlock(),
        TextBlock("issued", wrap(format_issued(moment, labels), cols())),
        TextBlock("ahead", wrap(format_ahead(ahead, labels), cols()), bold=True),
        TextBlock("wait", wrap(keep_units(format_wait(float(ticket.get("expected_wait_s", 0)), labels,
                                                      ticket.get("expected_wait_range_s"))), cols())),
        RuleBlock(),
        TextBlock("where", wrap(labels["where"], cols())),
    ]
    if where is not None:
        blocks.append(TextBlock("location", wrap(where, cols()), bold=True))
    else:
        for location, wayfinding in _where_lines(hall, topic.id, lang, labels):
            blocks.append(TextBlock("location", wrap(location, cols()), bold=True))
            blocks.append(TextBlock("wayfinding", wrap(wayfinding, cols())))
    url = status_url(hall, ticket.get("token"))
    if url is not None:
        blocks.append(QrBlock("qr", url))
        if labels.get("qr"):
            blocks.append(TextBlock("qr_caption", wrap(labels["qr"], cols(small=True)), small=True))
    blocks.append(TextBlock("privacy", wrap(labels["privacy"], cols(small=True)), small=True))
    return TicketLayout(paper=paper, hall_id=hall.id, number=number, topic_id=topic.id, lang=lang,
                        colour=topic.colour, issued=moment, blocks=tuple(blocks))
