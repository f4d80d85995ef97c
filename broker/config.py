"""The hall config (one TOML file per hall): load, validate, explain errors.

IT edits this file by hand, so every refusal names the file, the key and what is
wrong, and an unknown key is an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_HALL = ASSETS / "halls" / "demo.toml"

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
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
HOURS_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
DEFAULT_HALL_COLOUR = "#14365d"


class ConfigError(ValueError):
    """A hall config that cannot be used; str() is the message shown to IT."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: {key}: {problem}")


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

    def serves(self, topic: str) -> bool:
        return any(topic in tier for tier in self.tiers)

    def tier_of(self, topic: str) -> int | None:
        for index, tier in enumerate(self.tiers):
            if topic in tier:
                return index
        return None


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


@dataclass(frozen=True)
class OpeningHours:
    """Weekly opening hours in the hall's time zone, plus closed dates (public holidays)."""

    week: Mapping[int, tuple[time, time]]  # weekday (0 = Monday) -> (opens, closes)
    cutoff_min: int
    closed_dates: frozenset[date] = frozenset()

    def window(self, day: date) -> tuple[time, time] | None:
        if day in self.closed_dates:
            return None
        return self.week.get(day.weekday())

    def accepts_tickets(self, now: datetime) -> bool:
        """Open, and not yet past the last-ticket cutoff."""
        window = self.window(now.date())
        if window is None:
            return False
        opens, closes = window
        last = datetime.combine(now.date(), closes, now.tzinfo) - timedelta(minutes=self.cutoff_min)
        return datetime.combine(now.date(), opens, now.tzinfo) <= now < last

    def is_open(self, now: datetime) -> bool:
        window = self.window(now.date())
        if window is None:
            return False
        return window[0] <= now.time() < window[1]

    def closing_time(self, day: date, tz: Any) -> datetime | None:
        window = self.window(day)
        return None if window is None else datetime.combine(day, window[1], tz)

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment tickets can be drawn, strictly after now (None if never within a year)."""
        for offset in range(0, 370):
            day = now.date() + timedelta(days=offset)
            window = self.window(day)
            if window is None:
                continue
            opens = datetime.combine(day, window[0], now.tzinfo)
            if opens > now:
                return opens
        return None


@dataclass(frozen=True)
class Rules:
    priority_allowed: bool = True
    noshow_after_recalls: int = 2
    expire_after_close_min: int = 60
    max_payload_bytes: int = 65536


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
        return [c for c in self.counters.values() if c.serves(topic)]

    def home_counters(self, topic: str) -> list[Counter]:
        """The counters that serve a topic first (its visitors wait near them); else all that serve it."""
        return [c for c in self.counters.values() if c.tier_of(topic) == 0] or self.counters_serving(topic)


class _Reader:
    """Walks one TOML table, remembering the key path for error messages."""

    def __init__(self, path: str, key: str, table: Any) -> None:
        self.path, self.key = path, key
        if not isinstance(table, dict):
            raise ConfigError(path, key or "(top level)", f"must be a table, got {_kind(table)}")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def _sub(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(self.path, self._sub(name), problem)

    def has(self, name: str) -> bool:
        return name in self.table

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, check: Any = None) -> Any:
        self.used.add(name)
        if name not in self.table:
            if default is ...:
                raise self.error(name, "is missing")
            return default
        value = self.table[name]
        if isinstance(value, bool) and kind is not bool and (kind is int or kind == (int, float)):
            raise self.error(name, f"must be a number, got {value!r}")
        if not isinstance(value, kind):
            raise self.error(name, f"must be {_describe(kind)}, got {_kind(value)} {value!r}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(name, problem)
        return value

    def table_at(self, name: str, *, optional: bool = False) -> _Reader | None:
        self.used.add(name)
        if name not in self.table:
            if optional:
                return None
            raise self.error(name, "is missing")
        return _Reader(self.path, self._sub(name), self.table[name])

    def tables(self, name: str) -> Iterator[_Reader]:
        self.used.add(name)
        items = self.table.get(name)
        if not isinstance(items, list) or not items:
            raise self.error(name, "must be a non-empty array of tables ([[" + self._sub(name) + "]])")
        for index, item in enumerate(items):
            yield _Reader(self.path, f"{self._sub(name)}[{index}]", item)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "is not a known key (a typo?)")


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def _describe(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_kind(k()) if k is not dict else "a table" for k in kinds)


def _check_id(value: str) -> str | None:
    if not ID_RE.match(value):
        return f"{value!r} is not a valid id (lower-case letters, digits, '-' or '_', at most 32)"
    return None


def _check_printer(value: str) -> str | None:
    if re.match(r"^(usb|serial|tcp|file|preview)://", value):
        return None
    return f"must be a printer URI (usb://, serial://, tcp://, file://, preview://); got {value!r}"


def _text(reader: _Reader, name: str, languages: tuple[str, ...], *, required: bool = True) -> Text:
    """A string given in every hall language."""
    table = reader.table_at(name, optional=not required)
    if table is None:
        return {}
    result = {}
    for lang in languages:
        result[lang] = table.get(lang, str, check=lambda v: None if v.strip() else "must not be empty")
    table.done()
    return result


def _hours(reader: _Reader) -> OpeningHours:
    week: dict[int, tuple[time, time]] = {}
    for index, day in enumerate(WEEKDAYS):
        value = reader.get(day, str, "closed")
        if value == "closed":
            continue
        match = HOURS_RE.match(value)
        if not match:
            raise reader.error(day, f'must look like "08:00-17:00" or "closed", got {value!r}')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        try:
            opens, closes = time(h1, m1), time(h2, m2)
        except ValueError as exc:
            raise reader.error(day, f"{value!r}: {exc}") from None
        if closes <= opens:
            raise reader.error(day, f"closes before it opens: {value!r}")
        week[index] = (opens, closes)
    if not week:
        raise reader.error("mon", "the hall is closed every day of the week")
    cutoff = reader.get("last_ticket_before_close_min", int, 15,
                        check=lambda v: None if 0 <= v <= 240 else "must be between 0 and 240")
    closed: set[date] = set()
    for item in reader.get("closed_dates", list, []):
        try:
            # a TOML datetime is a date subclass but never equals a day: refuse it rather than ignore the holiday
            closed.add(item if isinstance(item, date) and not isinstance(item, datetime)
                       else date.fromisoformat(str(item)))
        except ValueError:
            raise reader.error("closed_dates", f"{item!r} is not a date like 2026-12-24") from None
    reader.done()
    for weekday, (opens, closes) in week.items():
        if (datetime.combine(date.min, closes) - datetime.combine(date.min, opens)) <= timedelta(minutes=cutoff):
            raise reader.error(WEEKDAYS[weekday], "is shorter than the last-ticket cutoff")
    return OpeningHours(week=week, cutoff_min=cutoff, closed_dates=frozenset(closed))


def parse_hall(data: dict[str, Any], path: str = "<hall>") -> HallConfig:
    root = _Reader(path, "", data)
    hall = root.table_at("hall")
    assert hall is not None
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
    hall_colour = hall.get("colour", str, DEFAULT_HALL_COLOUR, check=lambda v: None if COLOUR_RE.match(v)
                           else f'must be a colour like "#14365d", got {v!r}')
    hall.done()

    hours_reader = root.table_at("hours")
    assert hours_reader is not None
    hours = _hours(hours_reader)

    rules_reader = root.table_at("rules", optional=True)
    rules = Rules()
    if rules_reader is not None:
        positive = lambda v: None if v >= 0 else "must not be negative"  # noqa: E731
        rules = Rules(
            priority_allowed=rules_reader.get("priority_allowed", bool, True),
            noshow_after_recalls=rules_reader.get("noshow_after_recalls", int, 2, check=positive),
            expire_after_close_min=rules_reader.get("expire_after_close_min", int, 60, check=positive),
            max_payload_bytes=rules_reader.get("max_payload_bytes", int, 65536,
                                               check=lambda v: None if 1024 <= v <= 1 << 24 else
                                               "must be between 1024 and 16777216"),
        )
        rules_reader.done()

    statistics_reader = root.table_at("statistics", optional=True)
    statistics = Statistics()
    if statistics_reader is not None:
        statistics = Statistics(keep_ticket_days=statistics_reader.get(
            "keep_ticket_days", int, 90,
            check=lambda v: None if 0 <= v <= 36500 else "must be 0 (keep for ever) to 36500 days"))
        statistics_reader.done()

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

    counters: dict[str, Counter] = {}
    for reader in root.tables("counters"):
        counter_id = reader.get("id", str, check=_check_id)
        if counter_id in counters:
            raise reader.error("id", f"counter {counter_id!r} is defined twice")
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
        counters[counter_id] = Counter(
            id=counter_id,
            name=_text(reader, "name", languages),
            location=_text(reader, "location", languages),
            wayfinding=_text(reader, "wayfinding", languages),
            tiers=tuple(tiers),
        )
        reader.done()

    for topic in topics.values():
        if not any(c.serves(topic.id) for c in counters.values()):
            raise ConfigError(path, f"topics[{list(topics).index(topic.id)}]",
                              f"topic {topic.id!r} is served by no counter: its visitors would wait forever")

    displays: dict[str, Display] = {}
    for reader in root.tables("displays"):
        display_id = reader.get("id", str, check=_check_id)
        if display_id in displays:
            raise reader.error("id", f"display {display_id!r} is defined twice")
        display_name = _text(reader, "name", languages)
        directions_reader = reader.table_at("directions")
        assert directions_reader is not None
        directions: dict[str, str] = {}
        for counter_id in counters:
            directions[counter_id] = directions_reader.get(
                counter_id, str,
                check=lambda v: None if v in DIRECTIONS else f"must be one of {', '.join(DIRECTIONS)}; got {v!r}")
        directions_reader.done()
        displays[display_id] = _display_settings(reader, display_id, display_name, directions, counters, languages)
        reader.done()

    kiosks: dict[str, Kiosk] = {}
    if root.has("kiosks"):
        for reader in root.tables("kiosks"):
            kiosk_id = reader.get("id", str, check=lambda v: None if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v)
                                  else f"{v!r} is not a valid device id")
            if kiosk_id in kiosks:
                raise reader.error("id", f"kiosk {kiosk_id!r} is defined twice")
            printer = reader.get("printer", str, check=_check_printer)
            kiosks[kiosk_id] = Kiosk(id=kiosk_id, printer=printer,
                                     name=_text(reader, "name", languages, required=False))
            reader.done()
    root.done()
    return HallConfig(path=path, id=hall_id, name=name, languages=languages, timezone=timezone, hours=hours,
                      rules=rules, topics=topics, counters=counters, displays=displays, public_url=public_url,
                      kiosks=kiosks, colour=hall_colour, statistics=statistics)


def _display_settings(reader: _Reader, display_id: str, name: Text, directions: dict[str, str],
                      counters: Mapping[str, Counter], languages: tuple[str, ...]) -> Display:
    """A display's own settings: all optional, each checked as strictly as the rest of the file."""
    def between(low: int, high: int, zero_ok: bool = False) -> Any:
        return lambda v: None if low <= v <= high or (zero_ok and v == 0) else \
            f"must be between {low} and {high}" + (" (or 0)" if zero_ok else "")

    shown = reader.get("counters", list, [])
    for counter_id in shown:
        if not isinstance(counter_id, str):
            raise reader.error("counters", f"must list counter ids as strings like \"1\", got {_kind(counter_id)}")
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
    return parse_hall(data, shown)
