"""A hall's opening hours: the weekly windows, the last-ticket cutoff and the closed dates, and how the
`[hours]` table of its TOML is read (broker/config.py calls `parse_hours`). Imports only the reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from broker.config_reader import Reader

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOURS_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


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


def parse_hours(reader: Reader) -> OpeningHours:
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
