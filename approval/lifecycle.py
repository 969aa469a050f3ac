"""approval.lifecycle: a pooled project's statuses, the moves between them and the review decisions."""

from __future__ import annotations

from approval.errors import InvalidTransitionError

STATUSES = ("planning", "submitted", "screened", "in_review", "cleared", "rejected")
DECISIONS = ("approved", "approved_with_conditions", "rejected", "deferred")
APPROVING = ("approved", "approved_with_conditions")

# The project lifecycle: (planning →) submitted → screened → in_review → cleared | rejected. "screened" is
# reached by running a check (a re-check keeps a screened or in-review project where it is); planning is
# left only by closing an opinion round (approval.opinions); the rest by a decision.
TRANSITIONS: dict[str, frozenset[str]] = {
    "planning": frozenset(),
    "submitted": frozenset({"screened"}),
    "screened": frozenset({"screened", "in_review"}),
    "in_review": frozenset({"cleared", "rejected"}),
    "cleared": frozenset(),
    "rejected": frozenset(),
}


def check_transition(code: str, current: str, status: str) -> None:
    """Refuse a move of project ``code`` from ``current`` to ``status`` that the lifecycle does not allow
    (``screened`` is reached by running a check only, never asked for)."""
    if status not in TRANSITIONS.get(current, frozenset()) or status == "screened":
        allowed = sorted(TRANSITIONS.get(current, frozenset()) - {"screened"})
        raise InvalidTransitionError(
            f"project {code}: {current} → {status} is not allowed"
            + (f"; allowed: {', '.join(allowed)}" if allowed else "; no further status change")
        )


def status_after_check(code: str, current: str) -> str:
    """The status of project ``code`` once a check is linked: a submitted project becomes screened, a
    screened or in-review one stays; a closed one can no longer be screened."""
    if current in ("cleared", "rejected"):
        raise InvalidTransitionError(f"project {code} is {current}; it can no longer be screened")
    return "screened" if current == "submitted" else current
