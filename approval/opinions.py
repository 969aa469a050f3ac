"""approval.opinions: opinion rounds (意见征询) — answers, who is overdue, and when a round may close."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from approval.calendar import WorkingCalendar
from approval.errors import InvalidAnswerError, RoundNotDueError

# A department's answer, Chinese first (screens never show the codes).
ANSWERS: Mapping[str, str] = {
    "agree": "同意",
    "agree_with_conditions": "有条件同意",
    "disagree": "不同意",
    "no_opinion": "无意见",
}
# Where a department stands in a round.
STATES: Mapping[str, str] = {"answered": "已答复", "pending": "待答复", "overdue": "逾期未答复"}
ROUND_STATUSES: Mapping[str, str] = {"open": "征询中", "closed": "已办结"}
# What a closed round does to the project: it goes on to 报建 (submitted) or back to the applicant.
OUTCOMES: Mapping[str, str] = {"submitted": "转入报建", "returned": "退回"}


@dataclass(frozen=True)
class DepartmentState:
    department: str
    state: str  # answered | pending | overdue
    answer: str | None = None


def deadline(opened: date, working_days: int, calendar: WorkingCalendar) -> date:
    """The last day an answer is on time: ``working_days`` working days after the round opened."""
    return calendar.add_working_days(opened, working_days)


def states(
    departments: Sequence[str], answers: Mapping[str, str], due: date, today: date
) -> list[DepartmentState]:
    """Each named department: answered (with its answer), pending, or overdue after ``due``."""
    out = []
    for key in departments:
        if key in answers:
            out.append(DepartmentState(key, "answered", answers[key]))
        else:
            out.append(DepartmentState(key, "overdue" if today > due else "pending"))
    return out


def require_closable(departments: Sequence[str], answers: Mapping[str, str], due: date, today: date) -> None:
    """A round closes once all answered, or by a planner's decision once the deadline has passed."""
    missing = [k for k in departments if k not in answers]
    if missing and today <= due:
        raise RoundNotDueError(
            f"{len(missing)} department(s) have not answered ({', '.join(missing)}) and the deadline "
            f"{due.isoformat()} has not passed; wait for them or for the deadline 征询期限未到"
        )


def summary(found: Sequence[DepartmentState]) -> dict[str, int]:
    """How many departments answered each way, and how many are pending or overdue."""
    counts = dict.fromkeys((*ANSWERS, "pending", "overdue"), 0)
    for item in found:
        counts[item.answer if item.state == "answered" and item.answer else item.state] += 1
    return counts


def validate_answer(answer: str, conditions: Sequence[str], reasons: str) -> None:
    """同意 needs nothing more; 有条件同意 needs its conditions; 不同意 needs its reasons."""
    if answer not in ANSWERS:
        raise InvalidAnswerError(f"answer must be one of {', '.join(ANSWERS)} 答复意见无效")
    if answer == "agree_with_conditions" and not [c for c in conditions if c.strip()]:
        raise InvalidAnswerError("有条件同意 needs its conditions 请填写同意的条件")
    if answer == "disagree" and not reasons.strip():
        raise InvalidAnswerError("不同意 needs its reasons 请填写不同意的理由")
