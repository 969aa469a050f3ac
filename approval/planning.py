"""approval.planning: opinion rounds (意见征询) on projects in planning, with the pool, audit and events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from approval.audit import AuditLog, Principal, write
from approval.calendar import WorkingCalendar
from approval.departments import Departments
from approval.errors import (
    NotInPlanningError,
    RoundNotFoundError,
    UnknownDepartmentError,
    WrongDepartmentError,
)
from approval.opinions import (
    ANSWERS,
    OUTCOMES,
    ROUND_STATUSES,
    STATES,
    deadline,
    require_closable,
    states,
    summary,
    validate_answer,
)
from approval.pool import ProjectStore
from approval.store import EventLog, RoundStore

# Working days and deadlines are counted in the offices' own time zone.
LOCAL = ZoneInfo("Asia/Shanghai")


def local_today() -> date:
    return datetime.now(LOCAL).date()


class Planning:
    """Opens rounds, takes each department's answer, closes rounds and moves the project on."""

    def __init__(self, projects: ProjectStore, departments: Departments, calendar: WorkingCalendar) -> None:
        self.projects = projects
        self.engine = projects.engine
        self.departments = departments
        self.calendar = calendar
        self.rounds = RoundStore(self.engine)
        self.audit = AuditLog(self.engine)
        self.today: Callable[[], date] = local_today  # tests pin the date

    def open_round(
        self, code: str, departments: Sequence[str], working_days: int, *, note: str, by: Principal
    ) -> dict[str, Any]:
        """Ask the named departments for opinions, due ``working_days`` working days from today."""
        keys = [d.key for d in self.departments.require(list(departments))]
        opened = self.today()
        due = deadline(opened, working_days, self.calendar)
        with write(self.engine) as conn:
            row = self.projects._lock(conn, code)
            if row["status"] != "planning":
                raise NotInPlanningError(
                    f"project {code} is {row['status']}; opinion rounds are held in planning "
                    "仅策划阶段可征询意见"
                )
            round_id = RoundStore.open(
                conn,
                row["id"],
                keys,
                working_days=working_days,
                opened_on=opened,
                due_on=due,
                note=note,
                by=by.name,
            )
            after = {"round_id": round_id, "departments": keys, "due_on": due.isoformat()}
            AuditLog.append(conn, by, "round.open", "project", code, after=after)
            EventLog.append(
                conn,
                "opinion.round_opened",
                "project",
                code,
                {"code": code, **after, "working_days": working_days, "opened_on": opened.isoformat()},
            )
        return self.view(code, self.rounds.get(round_id))

    def answer(
        self,
        code: str,
        round_id: str,
        *,
        department: str | None,
        answer: str,
        conditions: Sequence[str],
        reasons: str,
        by: Principal,
    ) -> dict[str, Any]:
        """One department's opinion, appended; the round closes itself when the last one answers."""
        department = self._answering_for(code, round_id, department, by)
        validate_answer(answer, conditions, reasons)
        with write(self.engine) as conn:
            round_ = self._round(conn, code, round_id)
            if department not in round_["departments"]:
                raise UnknownDepartmentError(
                    f"{department} is not asked in round {round_id} 该部门不在本轮征询范围"
                )
            opinion_id = RoundStore.answer(
                conn, round_, department, answer, conditions=conditions, reasons=reasons, by=by.name
            )
            body = {
                "round_id": round_id,
                "opinion_id": opinion_id,
                "department": department,
                "answer": answer,
            }
            AuditLog.append(conn, by, "opinion.answer", "project", code, after=body)
            EventLog.append(
                conn,
                "opinion.received",
                "project",
                code,
                {
                    "code": code,
                    **body,
                    "answer_zh": ANSWERS[answer],
                    "conditions": list(conditions),
                    "reasons": reasons,
                },
            )
            answers = RoundStore.answers_in(conn, round_id)
            if set(round_["departments"]) <= set(answers):
                outcome = "returned" if "disagree" in answers.values() else "submitted"
                self._close(
                    conn, code, round_, outcome, by=by, reason="全部部门已答复 all departments answered"
                )
        return self.view(code, self.rounds.get(round_id))

    def close(self, code: str, round_id: str, outcome: str, *, reason: str, by: Principal) -> dict[str, Any]:
        """A planner's decision once the deadline has passed: on to ``submitted``, or ``returned``."""
        with write(self.engine) as conn:
            round_ = self._round(conn, code, round_id)
            require_closable(
                round_["departments"],
                RoundStore.answers_in(conn, round_id),
                date.fromisoformat(round_["due_on"]),
                self.today(),
            )
            self._close(conn, code, round_, outcome, by=by, reason=reason)
        return self.view(code, self.rounds.get(round_id))

    def _close(
        self, conn: Any, code: str, round_: dict[str, Any], outcome: str, *, by: Principal, reason: str
    ) -> None:
        RoundStore.close(conn, round_["round_id"], outcome, by=by.name, reason=reason)
        answers = RoundStore.answers_in(conn, round_["round_id"])
        overdue = [k for k in round_["departments"] if k not in answers]
        body = {"round_id": round_["round_id"], "outcome": outcome, "overdue": overdue, "reason": reason}
        AuditLog.append(conn, by, "round.close", "project", code, after=body)
        EventLog.append(
            conn,
            "opinion.round_closed",
            "project",
            code,
            {"code": code, **body, "outcome_zh": OUTCOMES[outcome], "answers": answers},
        )
        if outcome == "submitted":
            row = self.projects._lock(conn, code)
            self.projects._update(conn, row, status="submitted")
            AuditLog.append(
                conn,
                by,
                "project.status",
                "project",
                code,
                before={"status": "planning"},
                after={"status": "submitted"},
                detail={"round_id": round_["round_id"]},
            )
            EventLog.append(
                conn,
                "project.status",
                "project",
                code,
                {"code": code, "before": "planning", "after": "submitted", "round_id": round_["round_id"]},
            )

    def _round(self, conn: Any, code: str, round_id: str) -> dict[str, Any]:
        row = self.projects._lock(conn, code)
        round_ = RoundStore.lock(conn, round_id)
        if round_["project_id"] != row["id"]:
            raise RoundNotFoundError(f"project {code} has no opinion round {round_id} 意见征询不存在")
        return round_

    def _answering_for(self, code: str, round_id: str, department: str | None, by: Principal) -> str:
        """A department key answers for its own department only (refusals are audited); an admin
        records a department's answer given on paper and must name the department."""
        if by.role == "department":
            if department is not None and department != by.department:
                self.audit.record(
                    by,
                    "opinion.refused",
                    "project",
                    code,
                    detail={"round_id": round_id, "asked_for": department, "key_department": by.department},
                )
                raise WrongDepartmentError(
                    f"this key answers for {by.department}, not {department} 只能以本部门名义答复"
                )
            department = by.department
        if not department:
            raise UnknownDepartmentError("name the department that answers 请指明答复部门")
        return self.departments[department].key

    # ---- reads

    def opinions(self, code: str) -> dict[str, Any]:
        """Every round of a project with each department's answer or state, Chinese labels first."""
        project = self.projects.get(code)
        project_id = self.projects.project_id(code)
        rounds = [self.view(code, r) for r in self.rounds.rounds(project_id)]
        return {"code": code, "status": project["status"], "rounds": rounds}

    def view(self, code: str, round_: dict[str, Any]) -> dict[str, Any]:
        answers = {o["department"]: o["answer"] for o in round_["opinions"]}
        today = self.today()
        due = date.fromisoformat(round_["due_on"])
        if round_["status"] == "closed" and round_["closed_at"]:
            today = datetime.fromisoformat(round_["closed_at"]).astimezone(LOCAL).date()
        found = states(round_["departments"], answers, due, today)
        by_dept = {o["department"]: o for o in round_["opinions"]}
        departments = []
        for item in found:
            dept = self.departments.get(item.department)
            entry: dict[str, Any] = {
                "department": item.department,
                "name_zh": dept.name_zh if dept else item.department,
                "name_en": dept.name_en if dept else item.department,
                "state": item.state,
                "state_zh": STATES[item.state],
            }
            opinion = by_dept.get(item.department)
            if opinion is not None:
                entry["opinion"] = {**opinion, "answer_zh": ANSWERS[opinion["answer"]]}
            departments.append(entry)
        body = {k: v for k, v in round_.items() if k not in ("opinions", "project_id")}
        return {
            **body,
            "code": code,
            "status_zh": ROUND_STATUSES[round_["status"]],
            "outcome_zh": OUTCOMES.get(round_["outcome"] or ""),
            "working_days_left": self.calendar.working_days_between(today, due),
            "departments": departments,
            "summary": summary(found),
        }
