"""api.errors: the one table mapping domain errors to HTTP statuses, and the {"code","detail"} handlers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from blueprint.errors import (
    BlueprintError,
    BlueprintImmutableError,
    BlueprintNotFoundError,
    CoverageCheckError,
    LayerNotFoundError,
    MergeInputError,
    NoLayersError,
    NoPublishedBlueprintError,
    PrecedenceError,
)
from blueprint.store import BlueprintVersionExistsError
from checks.errors import (
    CheckError,
    CheckNotFoundError,
    DuplicateParcelIdError,
    NoParcelsError,
    ParcelOutsideCityError,
    RulesError,
    UnknownProjectTypeError,
)
from checks.store import CheckIdConflictError
from layers.errors import (
    CatalogueError,
    FileTooLargeError,
    HostileFileError,
    LayerError,
    OneBlueprintError,
    UnknownKindError,
)
from layers.store import LayerExistsError, LayerInUseError
from layers.store import LayerNotFoundError as StoredLayerNotFoundError

log = logging.getLogger("api.errors")


# Errors that only the service raises (authentication, the project pool, jobs). They stay web-free
# like the core's: a stable ``code`` and a user message; the status lives in the table below.
class ApiError(OneBlueprintError):
    code = "api_error"


class AuthenticationError(ApiError):
    code = "unauthenticated"


class InvalidKeyError(AuthenticationError):
    code = "invalid_api_key"


class PermissionDeniedError(ApiError):
    code = "forbidden"


class NotFoundError(ApiError, LookupError):
    code = "not_found"


class ProjectNotFoundError(NotFoundError):
    code = "project_not_found"


class JobNotFoundError(NotFoundError):
    code = "job_not_found"


class ReviewNotFoundError(NotFoundError):
    code = "review_not_found"


class CollectionNotFoundError(NotFoundError):
    code = "collection_not_found"


class FeatureNotFoundError(NotFoundError):
    code = "feature_not_found"


class ProjectExistsError(ApiError):
    code = "project_exists"


class InvalidTransitionError(ApiError):
    """A project status change the lifecycle does not allow (e.g. submitted → cleared)."""

    code = "invalid_transition"


class ReviewRequiredError(InvalidTransitionError):
    """Clearing a project whose latest check is a conflict needs a joint-review decision with reasons."""

    code = "review_required"


class IdempotencyConflictError(ApiError):
    """The same Idempotency-Key was sent with a different submission."""

    code = "idempotency_key_reused"


class BlueprintNotPublishedError(ApiError):
    code = "blueprint_not_published"


class PayloadTooLargeError(ApiError):
    code = "payload_too_large"


class InvalidRequestError(ApiError, ValueError):
    code = "invalid_request"


class NotReadyError(ApiError):
    code = "not_ready"


class InvalidParameterError(InvalidRequestError):
    """A query parameter of the OGC API that is unknown or malformed (OGC answers 400, not 422)."""

    code = "invalid_parameter"


# THE status table. A class not listed takes the status of its nearest listed base (MRO order), so a
# new subclass in the core gets a sensible status without touching this file.
STATUS_CODES: Mapping[type[Exception], int] = {
    OneBlueprintError: 400,
    # layers: files and CRSs
    LayerError: 422,
    FileTooLargeError: 413,
    HostileFileError: 422,
    UnknownKindError: 422,
    CatalogueError: 500,
    StoredLayerNotFoundError: 404,
    LayerExistsError: 409,
    LayerInUseError: 409,
    # blueprints
    BlueprintError: 400,
    BlueprintNotFoundError: 404,
    NoPublishedBlueprintError: 409,
    BlueprintImmutableError: 409,
    PrecedenceError: 422,
    NoLayersError: 422,
    LayerNotFoundError: 404,
    BlueprintVersionExistsError: 409,
    MergeInputError: 422,
    CoverageCheckError: 422,
    # checks
    CheckError: 400,
    CheckNotFoundError: 404,
    NoParcelsError: 422,
    ParcelOutsideCityError: 422,
    UnknownProjectTypeError: 422,
    RulesError: 500,
    DuplicateParcelIdError: 422,
    CheckIdConflictError: 409,
    # the service itself
    ApiError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ProjectExistsError: 409,
    InvalidTransitionError: 409,
    IdempotencyConflictError: 409,
    BlueprintNotPublishedError: 409,
    PayloadTooLargeError: 413,
    InvalidRequestError: 422,
    InvalidParameterError: 400,
    NotReadyError: 503,
}

# HTTP errors raised by routing itself (unknown path, wrong method) get a stable code too.
HTTP_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def status_for(exc: BaseException) -> int:
    """The HTTP status of ``exc``: the entry of its nearest class in :data:`STATUS_CODES`."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "detail": detail}


# OGC API paths: clients there (QGIS, GDAL) are offered HTTP Basic and expect 400 for a bad parameter
# (OGC API – Features /req/core/query-param-invalid); {"code", "detail"} is a valid OGC exception body
OGC_PREFIX = "/ogc"
BASIC_CHALLENGE = 'Basic realm="One Blueprint", charset="UTF-8"'
API_CHALLENGE = 'Bearer, ApiKey header="X-API-Key"'


def _is_ogc(request: Request) -> bool:
    path = request.url.path
    return path == OGC_PREFIX or path.startswith(OGC_PREFIX + "/")


def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OneBlueprintError)
    status = status_for(exc)
    if status >= 500:
        # configuration problems (rules, catalogue): worth a log line, still a clean body
        log.error("domain error %s on %s %s: %s", exc.code, request.method, request.url.path, exc.detail)
    headers = None
    if status == 401:
        challenge = f"{BASIC_CHALLENGE}, {API_CHALLENGE}" if _is_ogc(request) else API_CHALLENGE
        headers = {"WWW-Authenticate": challenge}
    return JSONResponse(error_body(exc.code, exc.user_message), status_code=status, headers=headers)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = describe_validation(exc.errors())
    if _is_ogc(request):
        return JSONResponse(error_body("invalid_parameter", detail), status_code=400)
    return JSONResponse(error_body("invalid_request", detail), status_code=422)


def describe_validation(errors: object) -> str:
    """One readable line per pydantic error: ``body.parcels: Field required``."""
    parts: list[str] = []
    for err in errors if isinstance(errors, list | tuple) else []:
        if isinstance(err, Mapping):
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body" or len(err.get("loc", ())) == 1)
            parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts[:20]) or "invalid request"


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return JSONResponse(
        error_body(code, detail), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Log the exception (type, message, traceback) with a reference the user can quote; request headers
    # and bodies are not logged, so keys and uploaded data never reach the log.
    reference = uuid.uuid4().hex[:12]
    log.error("internal error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body("internal_error", f"internal error (reference {reference})"), status_code=500
    )


def add_exception_handlers(app: FastAPI) -> None:
    """Register every handler; domain errors are resolved through :data:`STATUS_CODES`."""
    app.add_exception_handler(OneBlueprintError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
