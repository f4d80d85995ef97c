"""The hall config (one TOML file per hall): load, validate, explain errors.

IT edits this file by hand, so every refusal names the file, the key and what is
wrong, and an unknown key is an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import assets
from broker.config_reader import ConfigError as ConfigError  # re-exported: every caller's one import
from broker.config_reader import Reader, kind_of
from broker.hours import WEEKDAYS as WEEKDAYS
from broker.hours import OpeningHours as OpeningHours
from broker.hours import parse_hours

DEMO_HALL = assets.path("halls", "demo.toml")
INSTALLED_HALL = Path("/etc/vuoro/hall.toml")  # where the README installs a real hall's file

DIRECTIONS = (
    "left",
    "right",
    "ahead",
    "ahead-left",
    "ahead-right",
    "behind",
    "upstairs",
    "downstairs",
)
ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LANG_RE = re.compile(r"^[a-z]{2,3}$")
COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_HALL_COLOUR = "#14365d"


Text = Mapping[str, str]
"""A user-visible string in every hall language: {"sv": ..., "fi": ..., "en": ...}."""


@dataclass(frozen=True)
class Topic:
    id: str
    letter: str
    name: Text
    colour: str
    target_wait_min: int
    service_time_min: float
    description: Text = field(default_factory=dict)


@dataclass(frozen=True)
class Counter:
    id: str
    name: Text
    location: Text
    wayfinding: Text
    tiers: tuple[tuple[str, ...], ...]
    # topic -> its first tier here: the expected wait asks for each counter at every ticket drawn
    _tier_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for number, tier in enumerate(self.tiers):
            for topic in tier:
                index.setdefault(topic, number)
        object.__setattr__(self, "_tier_index", index)

    def serves(self, topic: str) -> bool:
        return topic in self._tier_index

    def tier_of(self, topic: str) -> int | None:
        return self._tier_index.get(topic)


@dataclass(frozen=True)
class Display:
    """A hall display and its own settings (display/ reads them; the server ignores them)."""

    id: str
    name: Text
    directions: Mapping[str, str]
    announce: bool = True  # chime and spoken calls from this display's speakers
    counters: tuple[str, ...] = ()  # the counters whose calls it shows; empty: every counter
    rotate_languages_s: int = 10  # static texts change language this often; 0: the main language only
    history: int = 6  # earlier calls listed under the current ones
    highlight_s: int = 10  # a new call or a recall stands out this long
    wayfinding: Mapping[str, Text] = field(default_factory=dict)  # the way to a counter from here, by counter

    def shows(self, counter_id: str) -> bool:
        return not self.counters or counter_id in self.counters


@dataclass(frozen=True)
class Kiosk:
    id: str
    printer: str  # a printer URI: usb://, serial://, tcp://, file:// or preview://DIR
    name: Text = field(default_factory=dict)


NUMBERINGS = ("refuse", "wrap", "four-digits")


@dataclass(frozen=True)
class Rules:
    priority_allowed: bool = True
    noshow_after_recalls: int = 2
    expire_after_close_min: int = 60
    max_payload_bytes: int = 65536
    # after 999 tickets of a topic in a day: "refuse" more, "wrap" to 001 skipping numbers still in use (as
    # Nemo-Q does), or "four-digits": every number has four digits all day (A0001), so width never changes
    numbers: str = "refuse"

    @property
    def number_digits(self) -> int:
        return 4 if self.numbers == "four-digits" else 3

    @property
    def max_number(self) -> int:
        return 10 ** self.number_digits - 1


@dataclass(frozen=True)
class Statistics:
    """How long the event log keeps each visit: older ticket rows are purged, the daily figures stay."""

    keep_ticket_days: int = 90  # 0: keep them for ever


@dataclass(frozen=True)
class HallConfig:
    path: str
    id: str
    name: Text
    languages: tuple[str, ...]
    timezone: str
    hours: OpeningHours
    rules: Rules
    topics: Mapping[str, Topic]
    counters: Mapping[str, Counter]
    displays: Mapping[str, Display]
    public_url: str | None = None
    kiosks: Mapping[str, Kiosk] = field(default_factory=dict)
    colour: str = DEFAULT_HALL_COLOUR  # the hall's own colour: the displays' header
    statistics: Statistics = field(default_factory=Statistics)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def main_language(self) -> str:
        return self.languages[0]

    def language(self, lang: str | None) -> str:
        """`lang` if the hall speaks it, else the hall's main language: what every device falls back to."""
        return lang if lang in self.languages else self.main_language

    def topic_by_letter(self, letter: str) -> Topic | None:
        return next((t for t in self.topics.values() if t.letter == letter), None)

    def counters_serving(self, topic: str) -> list[Counter]:
        return list(self._serving.get(topic, ()))

    @functools.cached_property
    def _serving(self) -> dict[str, tuple[Counter, ...]]:
        """Topic -> the counters that serve it, in the file's order (worked out once: the hall never changes)."""
        return {t: tuple(c for c in self.counters.values() if c.serves(t))
                for t in {t for c in self.counters.values() for tier in c.tiers for t in tier}}

    def home_counters(self, topic: str) -> list[Counter]:
        """The counters that serve a topic first (its visitors wait near them); else all that serve it."""
        return [c for c in self.counters.values() if c.tier_of(topic) == 0] or self.counters_serving(topic)


def _check_id(value: str) -> str | None:
    if not ID_RE.match(value):
        return f"{value!r} is not a valid id (lower-case letters, digits, '-' or '_', at most 32)"
    return None


def _check_printer(value: str) -> str | None:
    if re.match(r"^(usb|serial|tcp|file|preview)://", value):
        return None
    return f"must be a printer URI (usb://, serial://, tcp://, file://, preview://); got {value!r}"


def _text(reader: Reader, name: str, languages: tuple[str, ...], *, required: bool = True) -> Text:
    """A string given in every hall language."""
    table = reader.table_at(name, optional=not required)
    if table is None:
        return {}
    result = {}
    for lang in languages:
        result[lang] = table.get(lang, str, check=lambda v: None if v.strip() else "must not be empty")
    table.done()
    return result


def parse_hall(data: dict[str, Any], path: str = "<hall>") -> HallConfig:
    """A hall from its parsed TOML, table by table; raises ConfigError with file, key and problem."""
    root = Reader(path, "", data)
    hall = _parse_hall_table(_table(root, "hall"))
    languages = hall["languages"]
    hours = parse_hours(_table(root, "hours"))
    rules = _parse_rules(root.table_at("rules", optional=True))
    statistics = _parse_statistics(root.table_at("statistics", optional=True))
    topics = _parse_topics(root, languages)
    counters = _parse_counters(root, topics, languages)
    for topic in topics.values():
        if not any(c.serves(topic.id) for c in counters.values()):
            raise ConfigError(path, f"topics[{list(topics).index(topic.id)}]",
                              f"topic {topic.id!r} is served by no counter: its visitors would wait forever")
    displays = _parse_displays(root, counters, languages)
    kiosks = _parse_kiosks(root, languages) if root.has("kiosks") else {}
    root.done()
    return HallConfig(path=path, hours=hours, rules=rules, topics=topics, counters=counters, displays=displays,
                      kiosks=kiosks, statistics=statistics, **hall)


def _table(root: Reader, name: str) -> Reader:
    reader = root.table_at(name)
    assert reader is not None  # table_at raises on a missing table that is not optional
    return reader


def _parse_hall_table(hall: Reader) -> dict[str, Any]:
    """[hall]: its id, languages, name, time zone, public address and colour (HallConfig's own fields)."""
    hall_id = hall.get("id", str, check=_check_id)
    languages = tuple(hall.get("languages", list, check=lambda v: None if v else "must name at least one"))
    for lang in languages:
        if not isinstance(lang, str) or not LANG_RE.match(lang):
            raise hall.error("languages", f"{lang!r} is not a language code like 'sv'")
    if len(set(languages)) != len(languages):
        raise hall.error("languages", "names a language twice")
    name = _text(hall, "name", languages)
    timezone = hall.get("timezone", str, "Europe/Helsinki")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise hall.error("timezone", f"{timezone!r} is not a known time zone") from None
    public_url = hall.get("public_url", str, None)
    colour = hall.get("colour", str, DEFAULT_HALL_COLOUR, check=lambda v: None if COLOUR_RE.match(v)
                      else f'must be a colour like "#14365d", got {v!r}')
    hall.done()
    return {"id": hall_id, "name": name, "languages": languages, "timezone": timezone, "public_url": public_url,
            "colour": colour}


def _parse_rules(reader: Reader | None) -> Rules:
    if reader is None:
        return Rules()
    positive = lambda v: None if v >= 0 else "must not be negative"  # noqa: E731
    rules = Rules(
        priority_allowed=reader.get("priority_allowed", bool, True),
        noshow_after_recalls=reader.get("noshow_after_recalls", int, 2, check=positive),
        expire_after_close_min=reader.get("expire_after_close_min", int, 60, check=positive),
        max_payload_bytes=reader.get("max_payload_bytes", int, 65536,
                                     check=lambda v: None if 1024 <= v <= 1 << 24 else
                                     "must be between 1024 and 16777216"),
        numbers=reader.get("numbers", str, "refuse", check=lambda v: None if v in NUMBERINGS else
                           f"must be one of {', '.join(NUMBERINGS)}; got {v!r}"),
    )
    reader.done()
    return rules


def _parse_statistics(reader: Reader | None) -> Statistics:
    if reader is None:
        return Statistics()
    statistics = Statistics(keep_ticket_days=reader.get(
        "keep_ticket_days", int, 90,
        check=lambda v: None if 0 <= v <= 36500 else "must be 0 (keep for ever) to 36500 days"))
    reader.done()
    return statistics


def _parse_topics(root: Reader, languages: tuple[str, ...]) -> dict[str, Topic]:
    topics: dict[str, Topic] = {}
    letters: dict[str, str] = {}
    for reader in root.tables("topics"):
        topic_id = reader.get("id", str, check=_check_id)
        if topic_id in topics:
            raise reader.error("id", f"topic {topic_id!r} is defined twice")
        letter = reader.get("letter", str, check=lambda v: None if re.fullmatch(r"[A-Z]", v)
                            else f"must be one capital letter A-Z, got {v!r}")
        if letter in letters:
            raise reader.error("letter", f"{letter!r} is already the letter of topic {letters[letter]!r}")
        letters[letter] = topic_id
        topics[topic_id] = Topic(
            id=topic_id,
            letter=letter,
            name=_text(reader, "name", languages),
            description=_text(reader, "description", languages, required=False),
            colour=reader.get("colour", str, check=lambda v: None if COLOUR_RE.match(v)
                              else f'must be a colour like "#1f6feb", got {v!r}'),
            target_wait_min=reader.get("target_wait_min", int, 15,
                                       check=lambda v: None if 0 < v <= 600 else "must be 1-600"),
            service_time_min=float(reader.get("service_time_min", (int, float), 6,
                                              check=lambda v: None if 0 < v <= 240 else "must be 0-240")),
        )
        reader.done()
    return topics


def _parse_counters(root: Reader, topics: Mapping[str, Topic], languages: tuple[str, ...]) -> dict[str, Counter]:
    counters: dict[str, Counter] = {}
    for reader in root.tables("counters"):
        counter_id = reader.get("id", str, check=_check_id)
        if counter_id in counters:
            raise reader.error("id", f"counter {counter_id!r} is defined twice")
        tiers = _parse_tiers(reader, topics)
        counters[counter_id] = Counter(
            id=counter_id,
            name=_text(reader, "name", languages),
            location=_text(reader, "location", languages),
            wayfinding=_text(reader, "wayfinding", languages),
            tiers=tiers,
        )
        reader.done()
    return counters


def _parse_tiers(reader: Reader, topics: Mapping[str, Topic]) -> tuple[tuple[str, ...], ...]:
    raw_tiers = reader.get("tiers", list, check=lambda v: None if v else "must list at least one tier")
    tiers: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for index, tier in enumerate(raw_tiers):
        if not isinstance(tier, list) or not tier:
            raise reader.error(f"tiers[{index}]", "must be a non-empty array of topic ids")
        for topic_id in tier:
            if topic_id not in topics:
                raise reader.error(f"tiers[{index}]", f"{topic_id!r} is not a topic of this hall "
                                   f"(known: {', '.join(topics)})")
            if topic_id in seen:
                raise reader.error(f"tiers[{index}]", f"topic {topic_id!r} is listed twice")
            seen.add(topic_id)
        tiers.append(tuple(tier))
    return tuple(tiers)


def _parse_displays(root: Reader, counters: Mapping[str, Counter], languages: tuple[str, ...]) -> dict[str, Display]:
    displays: dict[str, Display] = {}
    for reader in root.tables("displays"):
        display_id = reader.get("id", str, check=_check_id)
        if display_id in displays:
            raise reader.error("id", f"display {display_id!r} is defined twice")
        display_name = _text(reader, "name", languages)
        directions_reader = _table(reader, "directions")
        directions: dict[str, str] = {}
        for counter_id in counters:
            directions[counter_id] = directions_reader.get(
                counter_id, str,
                check=lambda v: None if v in DIRECTIONS else f"must be one of {', '.join(DIRECTIONS)}; got {v!r}")
        directions_reader.done()
        displays[display_id] = _display_settings(reader, display_id, display_name, directions, counters, languages)
        reader.done()
    return displays


def _parse_kiosks(root: Reader, languages: tuple[str, ...]) -> dict[str, Kiosk]:
    kiosks: dict[str, Kiosk] = {}
    for reader in root.tables("kiosks"):
        kiosk_id = reader.get("id", str, check=lambda v: None if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v)
                              else f"{v!r} is not a valid device id")
        if kiosk_id in kiosks:
            raise reader.error("id", f"kiosk {kiosk_id!r} is defined twice")
        printer = reader.get("printer", str, check=_check_printer)
        kiosks[kiosk_id] = Kiosk(id=kiosk_id, printer=printer, name=_text(reader, "name", languages, required=False))
        reader.done()
    return kiosks


def _display_settings(reader: Reader, display_id: str, name: Text, directions: dict[str, str],
                      counters: Mapping[str, Counter], languages: tuple[str, ...]) -> Display:
    """A display's own settings: all optional, each checked as strictly as the rest of the file."""
    def between(low: int, high: int, zero_ok: bool = False) -> Any:
        return lambda v: None if low <= v <= high or (zero_ok and v == 0) else \
            f"must be between {low} and {high}" + (" (or 0)" if zero_ok else "")

    shown = reader.get("counters", list, [])
    for counter_id in shown:
        if not isinstance(counter_id, str):
            raise reader.error("counters", f"must list counter ids as strings like \"1\", got {kind_of(counter_id)}")
        if counter_id not in counters:
            raise reader.error("counters", f"{counter_id!r} is not a counter of this hall "
                               f"(known: {', '.join(counters)})")
    if len(set(shown)) != len(shown):
        raise reader.error("counters", "names a counter twice")
    wayfinding: dict[str, Text] = {}
    way_reader = reader.table_at("wayfinding", optional=True)
    if way_reader is not None:
        for counter_id in way_reader.table:
            if counter_id not in counters:
                raise way_reader.error(counter_id, f"is not a counter of this hall (known: {', '.join(counters)})")
            wayfinding[counter_id] = _text(way_reader, counter_id, languages)
        way_reader.done()
    return Display(id=display_id, name=name, directions=directions,
                   announce=reader.get("announce", bool, True),
                   counters=tuple(shown),
                   rotate_languages_s=reader.get("rotate_languages_s", int, 10, check=between(3, 3600, zero_ok=True)),
                   history=reader.get("history", int, 6, check=between(0, 20)),
                   highlight_s=reader.get("highlight_s", int, 10, check=between(1, 300)),
                   wayfinding=wayfinding)


def load_hall(path: str | Path) -> HallConfig:
    """Read and validate a hall file; raises ConfigError with file, key and problem."""
    path = Path(path)
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(shown, "(file)", "no such file") from None
    except OSError as exc:
        raise ConfigError(shown, "(file)", f"cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, "(file)", f"is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, "(syntax)", str(exc)) from None
    hall = parse_hall(data, shown)
    for line in contrast_warnings(hall):  # the check warns; the apps draw text on each colour's companion
        logging.getLogger(__name__).warning("%s: %s", shown, line)
    return hall


def contrast_warnings(hall: HallConfig) -> list[str]:
    """The hall's colours that white text cannot be read on (WCAG 2.1, 4.5:1), each with its darker companion."""
    from broker.colours import colour_warnings

    colours = {f"topics.{topic.id}.colour": topic.colour for topic in hall.topics.values()}
    colours["hall.colour"] = hall.colour
    return colour_warnings(colours)


def find_hall_file(given: str | None, environ: Mapping[str, str], *, demo: bool = False,
                   installed: Path = INSTALLED_HALL) -> tuple[Path, str | None]:
    """The hall file a command uses, and a note to show when it fell back to the demo hall (else None).

    --hall, else $VUORO_HALL, else the installed hall (/etc/vuoro/hall.toml) when it exists: a machine set up
    as the README says needs neither. The demo hall only for `vuoro demo`, or when none of these exists, and
    then the command says so, so that nobody mistakes Kvarnby's queues for their own."""
    if given:
        return Path(given), None
    if demo:
        return DEMO_HALL, None
    if environ.get("VUORO_HALL"):
        return Path(environ["VUORO_HALL"]), None
    if installed.is_file():
        return installed, None
    return DEMO_HALL, (f"no hall file given (--hall, $VUORO_HALL) and no {installed}: using the demo hall "
                       f"{DEMO_HALL}")
