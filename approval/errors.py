"""approval.errors: errors of the approval flow (pool, lifecycle, jobs, rounds, webhooks); nothing of HTTP."""

from __future__ import annotations

from layers.errors import OneBlueprintError


class ApprovalError(OneBlueprintError):
    code = "approval_error"


class DepartmentsError(ApprovalError, ValueError):
    """The departments file is unreadable or malformed (a configuration error)."""

    code = "invalid_departments"


class CalendarError(ApprovalError, ValueError):
    """The working-day calendar file is unreadable or malformed (a configuration error)."""

    code = "invalid_calendar"


class UnknownDepartmentError(ApprovalError, ValueError):
    code = "unknown_department"


class WrongDepartmentError(ApprovalError, PermissionError):
    """A department key answering for another department."""

    code = "wrong_department"


class RoundNotFoundError(ApprovalError, LookupError):
    code = "round_not_found"


class RoundClosedError(ApprovalError):
    """An opinion on a round that is closed already."""

    code = "round_closed"


class RoundOpenError(ApprovalError):
    """A second round on a project whose round is still open."""

    code = "round_open"


class AlreadyAnsweredError(ApprovalError):
    """A department answering twice in one round (opinions are appended, never edited)."""

    code = "already_answered"


class RoundNotDueError(ApprovalError):
    """Closing a round before every department answered and before its deadline has passed."""

    code = "round_not_due"


class NotInPlanningError(ApprovalError):
    code = "not_in_planning"


class InvalidWebhookError(ApprovalError, ValueError):
    code = "invalid_webhook_url"


class WebhookNotFoundError(ApprovalError, LookupError):
    code = "webhook_not_found"


class InvalidAnswerError(ApprovalError, ValueError):
    code = "invalid_answer"


class NoWarningError(ApprovalError):
    """Acknowledging a warning (预警) on a project that has none open."""

    code = "no_warning"


# the project pool and its lifecycle (approval.pool), and the durable jobs (approval.jobs)
class PermissionDeniedError(ApprovalError):
    """A role acting beyond what it may (e.g. a planner clearing a project)."""

    code = "forbidden"


class ProjectNotFoundError(ApprovalError, LookupError):
    code = "project_not_found"


class ProjectNotInPoolError(ProjectNotFoundError):
    """库外项目不立项: what the national and approval systems are told for a code not in the pool."""

    code = "project_not_in_pool"


class ProjectExistsError(ApprovalError):
    code = "project_exists"


class InvalidTransitionError(ApprovalError):
    """A project status change the lifecycle does not allow (e.g. submitted → cleared)."""

    code = "invalid_transition"


class ReviewRequiredError(InvalidTransitionError):
    """Clearing a project whose latest check is a conflict needs a joint-review decision with reasons."""

    code = "review_required"


class StaleCheckError(InvalidTransitionError):
    """Clearing on a check against an older blueprint version than the latest published one."""

    code = "check_not_latest"


class JobNotFoundError(ApprovalError, LookupError):
    code = "job_not_found"
