"""A clock the tests move by hand, so a whole day runs in milliseconds."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


class FakeClock:
    def __init__(self, start: datetime | None = None, tz: str = "Europe/Helsinki") -> None:
        self._now = start or datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo(tz))  # a Monday, open

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment
