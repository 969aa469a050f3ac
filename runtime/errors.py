"""runtime.errors: errors of the application services (idempotency, versions to screen on, requests)."""

from __future__ import annotations

from layers.errors import OneBlueprintError


class ServiceError(OneBlueprintError):
    code = "service_error"


class IdempotencyConflictError(ServiceError):
    """The same Idempotency-Key was sent with a different submission."""

    code = "idempotency_key_reused"


class BlueprintNotPublishedError(ServiceError):
    code = "blueprint_not_published"


def require_published(version: str, status: str) -> None:
    """Checks are stored against published versions only (the API answers 409, the CLI exits 3)."""
    if status != "published":
        raise BlueprintNotPublishedError(
            f"blueprint {version} is a draft; checks use published versions only 仅可对已发布版本检测")


class InvalidRequestError(ServiceError, ValueError):
    code = "invalid_request"


class KeyFileError(ServiceError):
    """``settings.api_keys_file`` is unreadable or malformed (a start-up error, never a request's)."""

    code = "invalid_api_keys_file"
