"""The approval core without a database: working days, departments, opinion rules, webhook signatures."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from approval.calendar import WorkingCalendar, load_calendar
from approval.departments import load_departments
from approval.errors import (
    CalendarError,
    DepartmentsError,
    InvalidAnswerError,
    InvalidWebhookError,
    RoundNotDueError,
    UnknownDepartmentError,
)
from approval.opinions import deadline, require_closable, states, summary, validate_answer
from approval.webhooks import backoff, sign, validate_url, verify

WEEKENDS = WorkingCalendar()
NATIONAL_DAY = WorkingCalendar(
    holidays=frozenset(date(2026, 10, d) for d in range(1, 8)), workdays=frozenset({date(2026, 10, 10)})
)


@pytest.mark.parametrize(
    ("calendar", "start", "days", "due"),
    [
        (WEEKENDS, date(2026, 12, 4), 1, date(2026, 12, 7)),  # Friday + 1 → Monday
        (WEEKENDS, date(2026, 12, 5), 5, date(2026, 12, 11)),  # opened on a Saturday
        (WEEKENDS, date(2026, 9, 30), 3, date(2026, 10, 5)),
        (NATIONAL_DAY, date(2026, 9, 30), 3, date(2026, 10, 10)),  # the make-up Saturday counts
        (NATIONAL_DAY, date(2026, 9, 30), 1, date(2026, 10, 8)),
    ],
)
def test_deadlines_count_working_days(calendar: WorkingCalendar, start: date, days: int, due: date) -> None:
    assert deadline(start, days, calendar) == due
    assert calendar.working_days_between(start, due) == days


def test_a_calendar_file(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text("holidays = [2026-10-01]\nworkdays = [2026-10-10]\n", encoding="utf-8")
    calendar = load_calendar(path)
    assert not calendar.is_working_day(date(2026, 10, 1)) and calendar.is_working_day(date(2026, 10, 10))
    assert load_calendar(None) == WorkingCalendar()
    path.write_text('holidays = ["soon"]\n', encoding="utf-8")
    with pytest.raises(CalendarError, match="list of dates"):
        load_calendar(path)
    with pytest.raises(CalendarError):
        WEEKENDS.add_working_days(date(2026, 1, 1), 0)


def test_the_default_departments_and_a_replacement_file(tmp_path: Path) -> None:
    built_in = load_departments()
    assert built_in["water"].name_zh == "水务局" and len(built_in) == 8
    assert [d.key for d in built_in.require(["water", "forestry", "water"])] == ["water", "forestry"]
    assert "mars" not in built_in and built_in.get("mars") is None
    with pytest.raises(UnknownDepartmentError):
        built_in["mars"]
    path = tmp_path / "departments.toml"
    path.write_text(
        '[departments.seismic]\nname_zh = "地震局"\nname_en = "Earthquake Bureau"\n', encoding="utf-8"
    )
    assert list(load_departments(path)) == ["seismic"]
    path.write_text('[departments.Bad-Key]\nname_zh = "x"\nname_en = "x"\n', encoding="utf-8")
    with pytest.raises(DepartmentsError):
        load_departments(path)
    path.write_text("[departments.seismic]\nname_zh = 1\n", encoding="utf-8")
    with pytest.raises(DepartmentsError, match="name_zh"):
        load_departments(path)


def test_who_is_overdue_and_when_a_round_may_close() -> None:
    asked = ["water", "forestry", "transport"]
    answers = {"water": "agree", "forestry": "disagree"}
    due = date(2026, 10, 10)
    found = states(asked, answers, due, today=date(2026, 10, 10))
    assert [s.state for s in found] == ["answered", "answered", "pending"]  # the due day is still on time
    found = states(asked, answers, due, today=date(2026, 10, 11))
    assert [s.state for s in found] == ["answered", "answered", "overdue"]
    assert summary(found) == {
        "agree": 1,
        "agree_with_conditions": 0,
        "disagree": 1,
        "no_opinion": 0,
        "pending": 0,
        "overdue": 1,
    }
    with pytest.raises(RoundNotDueError):
        require_closable(asked, answers, due, today=due)
    require_closable(asked, answers, due, today=date(2026, 10, 12))
    require_closable(asked, {**answers, "transport": "no_opinion"}, due, today=date(2026, 10, 1))


def test_answers_carry_what_they_need() -> None:
    validate_answer("agree", [], "")
    validate_answer("no_opinion", [], "")
    validate_answer("agree_with_conditions", ["设置隔离带"], "")
    validate_answer("disagree", [], "位于水源保护区")
    for answer, conditions, reasons in (
        ("agree_with_conditions", [" "], ""),
        ("disagree", [], " "),
        ("veto", [], ""),
    ):
        with pytest.raises(InvalidAnswerError):
            validate_answer(answer, conditions, reasons)


def test_signatures_and_urls() -> None:
    body = b'{"event_id": "evt_1"}'
    signature = sign("s3cret", "1700000000", body)
    assert signature.startswith("sha256=") and verify("s3cret", "1700000000", body, signature)
    assert not verify("other", "1700000000", body, signature)
    assert not verify("s3cret", "1700000001", body, signature)  # the timestamp is signed too
    assert not verify("s3cret", "1700000000", body + b" ", signature)
    assert validate_url(" https://approval.example.gov.cn/hook ") == "https://approval.example.gov.cn/hook"
    for bad in ("ftp://x/y", "https://u:p@x/y", "https://x/y#frag", "//x/y", "file:///etc/passwd", "http://[",
                "http://x:99999/"):
        with pytest.raises(InvalidWebhookError):
            validate_url(bad)
    assert [backoff(n).total_seconds() for n in (1, 2, 3)] == [2, 4, 8] and backoff(
        30
    ).total_seconds() == 3600
