"""approval.calendar: working days (工作日) — weekends and listed holidays off, listed make-up days on."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from approval.errors import CalendarError


@dataclass(frozen=True)
class WorkingCalendar:
    """Monday–Friday are working days, except ``holidays``; ``workdays`` are weekend make-up days (调休)."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
        if days < 1:
            raise CalendarError(f"a deadline needs at least one working day, not {days}")
        day, left = start, days
        while left:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end`` (0 when ``end <= start``)."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_working_day(day)
        return count


def load_calendar(path: Path | None = None) -> WorkingCalendar:
    """A calendar from a TOML file ``holidays = [2026-10-01, ...]``, ``workdays = [2026-10-10]``;
    without a file, weekends are the only days off."""
    if path is None:
        return WorkingCalendar()
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalendarError(f"calendar file {path}: {exc}") from exc
    return WorkingCalendar(_dates(doc, "holidays", path), _dates(doc, "workdays", path))


def _dates(doc: dict[str, object], name: str, path: Path) -> frozenset[date]:
    values = doc.get(name, [])
    if not isinstance(values, list) or not all(isinstance(v, date) for v in values):
        raise CalendarError(f"calendar file {path}: '{name}' must be a list of dates (2026-10-01)")
    return frozenset(v for v in values if isinstance(v, date))
