"""Opening hours per weekday plus holidays, in the shop's time zone: agents' hours and SLA clocks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

CHINA = timezone(timedelta(hours=8))
_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_SPEC = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(mon|tue|wed|thu|fri|sat|sun))?\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def day_start(day: date) -> float:
    """Midnight of a shop day (China time) as Unix seconds; a range of days ends at the next day's start."""
    return datetime(day.year, day.month, day.day, tzinfo=CHINA).timestamp()


class HoursError(ValueError):
    """A business-hours setting that cannot be read."""


@dataclass(frozen=True)
class BusinessHours:
    """Opening time per weekday (Monday = 0), closed days missing, and holiday dates."""

    days: tuple[tuple[int, time, time], ...]
    holidays: frozenset[date] = frozenset()
    tz: timezone = CHINA

    @classmethod
    def parse(cls, spec: str, holidays: str = "") -> BusinessHours:
        """``"mon-fri 09:00-18:00, sat 10:00-16:00"`` and ``"2026-10-01,2026-10-02"``."""
        days: dict[int, tuple[time, time]] = {}
        for part in filter(None, (p.strip().lower() for p in spec.split(","))):
            m = _SPEC.match(part)
            if not m:
                raise HoursError(f"cannot read business hours '{part}' (example: mon-fri 09:00-18:00)")
            first, last = _DAYS.index(m[1]), _DAYS.index(m[2] or m[1])
            start, end = time(int(m[3]), int(m[4])), time(int(m[5]) % 24, int(m[6]))
            for d in range(first, last + 1):
                days[d] = (start, end)
        try:
            off = frozenset(date.fromisoformat(d.strip()) for d in holidays.split(",") if d.strip())
        except ValueError as exc:
            raise HoursError(f"holidays must be ISO dates: {exc}") from exc
        return cls(tuple((d, s, e) for d, (s, e) in sorted(days.items())), off)

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        if day in self.holidays:
            return None
        for weekday, start, end in self.days:
            if weekday == day.weekday():
                return datetime.combine(day, start, self.tz), datetime.combine(day, end, self.tz)
        return None

    def is_open(self, now: float) -> bool:
        """Are agents at work at Unix time ``now``?"""
        moment = datetime.fromtimestamp(now, self.tz)
        window = self._window(moment.date())
        return window is not None and window[0] <= moment < window[1]

    def next_open(self, now: float) -> datetime | None:
        """The next opening time after ``now`` (within two weeks), or None if never."""
        moment = datetime.fromtimestamp(now, self.tz)
        for offset in range(15):
            window = self._window(moment.date() + timedelta(days=offset))
            if window and window[0] > moment:
                return window[0]
        return None

    def add_working_time(self, start: float, seconds: float) -> float:
        """The Unix time when ``seconds`` of opening hours have passed after ``start``."""
        moment = datetime.fromtimestamp(start, self.tz)
        left = seconds
        for offset in range(400):
            window = self._window(moment.date() + timedelta(days=offset))
            if window is None:
                continue
            begin = max(window[0], moment)
            if begin >= window[1]:
                continue
            available = (window[1] - begin).total_seconds()
            if available >= left:
                return (begin + timedelta(seconds=left)).timestamp()
            left -= available
        raise HoursError("no opening hours within 400 days")

    def describe(self) -> str:
        """Opening hours in Chinese, e.g. ``每天 09:00-22:00``."""
        names = "一二三四五六日"
        spans = {(s, e) for _, s, e in self.days}
        if len(self.days) == 7 and len(spans) == 1:
            s, e = spans.pop()
            return f"每天 {s:%H:%M}-{e:%H:%M}"
        return "，".join(f"周{names[d]} {s:%H:%M}-{e:%H:%M}" for d, s, e in self.days)
