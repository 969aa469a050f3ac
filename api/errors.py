"""api.errors: the one table mapping domain errors to HTTP statuses, and the {"code","detail"} handlers."""

from __future__ import annotations

import errno
import logging
import re
import tempfile
import uuid
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from approval.errors import (
    AlreadyAnsweredError,
    ApprovalError,
    CalendarError,
    DepartmentsError,
    InvalidAnswerError,
    InvalidTransitionError,
    InvalidWebhookError,
    JobNotFoundError,
    NotInPlanningError,
    NoWarningError,
    PermissionDeniedError,
    ProjectExistsError,
    ProjectNotFoundError,
    RoundClosedError,
    RoundNotDueError,
    RoundNotFoundError,
    RoundOpenError,
    UnknownDepartmentError,
    WebhookNotFoundError,
    WrongDepartmentError,
)
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
    InvalidDeclaredError,
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
from runtime.errors import (
    BlueprintNotPublishedError,
    IdempotencyConflictError,
    InvalidRequestError,
    ServiceError,
)

log = logging.getLogger("api.errors")


# Errors that only the web service raises (authentication, routing, OGC parameters). They stay web-free
# like the core's: a stable ``code`` and a user message; the status lives in the table below.
class ApiError(OneBlueprintError):
    code = "api_error"


class AuthenticationError(ApiError):
    code = "unauthenticated"


class InvalidKeyError(AuthenticationError):
    code = "invalid_api_key"


class NotFoundError(ApiError, LookupError):
    code = "not_found"


class ReviewNotFoundError(NotFoundError):
    code = "review_not_found"


class CollectionNotFoundError(NotFoundError):
    code = "collection_not_found"


class FeatureNotFoundError(NotFoundError):
    code = "feature_not_found"


class PayloadTooLargeError(ApiError):
    code = "payload_too_large"


class NotReadyError(ApiError):
    code = "not_ready"


class TooManyRequestsError(ApiError):
    """Over a rate limit (api.ratelimit); carries ``retry_after`` seconds for the Retry-After header."""

    code = "too_many_requests"


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
    InvalidDeclaredError: 422,
    # the approval flow: departments, opinion rounds, webhooks
    ApprovalError: 400,
    DepartmentsError: 500,
    CalendarError: 500,
    UnknownDepartmentError: 422,
    WrongDepartmentError: 403,
    RoundNotFoundError: 404,
    RoundClosedError: 409,
    RoundOpenError: 409,
    AlreadyAnsweredError: 409,
    RoundNotDueError: 409,
    NotInPlanningError: 409,
    NoWarningError: 409,
    InvalidAnswerError: 422,
    InvalidWebhookError: 422,
    WebhookNotFoundError: 404,
    PermissionDeniedError: 403,
    ProjectNotFoundError: 404,
    JobNotFoundError: 404,
    ProjectExistsError: 409,
    InvalidTransitionError: 409,
    # the application services (runtime)
    ServiceError: 400,
    IdempotencyConflictError: 409,
    BlueprintNotPublishedError: 409,
    InvalidRequestError: 422,
    # the web service itself
    ApiError: 400,
    AuthenticationError: 401,
    NotFoundError: 404,
    PayloadTooLargeError: 413,
    InvalidParameterError: 400,
    NotReadyError: 503,
    TooManyRequestsError: 429,
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


# What a person is told (Chinese first, with what to do), beside the API's ``detail``. Clients such as
# the workbench show it next to the field; codes not listed get no ``message_zh``.
MESSAGES_ZH: Mapping[str, str] = {
    "crs_missing": "坐标系缺失：请选择带号（坐标系），或把 .prj 与 Shapefile 一起打包上传",
    "crs_error": "坐标系有误：请核对带号和坐标系",
    "crs_conflict": "坐标系相互矛盾：请核对文件中的坐标系与所选带号",
    "crs_mismatch": "坐标系不一致：请核对带号和坐标系",
    "coordinates_out_of_range": "坐标超出范围：请检查 X/Y 是否颠倒、带号或坐标系是否选对",
    "crs_web_map_offset": "坐标疑为网络地图坐标（GCJ-02 高德/腾讯，或 BD-09 百度）："
    "请在“坐标系”中选择 GCJ-02 或 BD-09 后重试",
    "crs_old_datum": "北京54/西安80 坐标需要转换参数：请提供七参数，或先转换为 CGCS2000",
    "bubiao_invalid": "部标坐标文件格式有误：请按提示检查对应行",
    "bubiao_missing_header": "部标坐标文件缺少 [属性描述]：请检查文件头",
    "bubiao_bad_number": "部标坐标文件中有无法识别的数字：请检查对应行",
    "bubiao_unclosed_ring": "部标坐标文件中界址点未闭合：首尾点应相同",
    "bubiao_too_few_points": "部标坐标文件中界址点不足：每圈至少 3 个点",
    "no_such_layer": "文件中没有该图层：请检查图层名称",
    "unreadable_file": "无法读取该文件：请确认文件完整、格式正确"
    "（Shapefile 须把 .shp/.shx/.dbf/.prj 一起压缩为 .zip）",
    "unsupported_format": "不支持的文件格式：请上传部标 TXT、Shapefile 压缩包（.zip）、DXF、"
    "GeoJSON、KML/KMZ、"
    "GeoPackage 或含 WKT 的 CSV",
    "hostile_file": "文件不安全，已拒绝（压缩包内路径、链接或大小异常）：请重新打包后上传",
    "file_too_large": "文件过大：请拆分后分批检测，或联系管理员",
    "payload_too_large": "文件过大：请拆分后分批检测，或联系管理员",
    "ambiguous_layer": "文件中有多个图层：请指定要检测的图层",
    "encoding_error": "无法判断属性文字编码：请指定编码（如 GBK）",
    "non_finite_coordinates": "坐标含非法数值（NaN、无穷大或超出范围）：请检查坐标文件",
    "geometry_type": "几何类型不符：地块须为面（多边形）",
    "empty_layer": "文件中没有地块：请检查文件内容",
    "no_parcels": "没有可检测的地块：请上传或绘制至少一个地块",
    "parcel_outside_city": "地块位于城市范围之外：请检查坐标系、带号，或确认项目位置",
    "unknown_project_type": "未知的项目类型：请从列表中选择",
    "invalid_declared": "申报的规划指标有误：容积率、建筑密度、绿地率、建筑高度须为数字，"
    "用地性质须为用地用海分类代码",
    "unknown_land_use_code": "控规地块的用地代码不在《国土空间调查、规划、用途管制用地用海分类指南》中："
    "请核对该地块的用地代码",
    "invalid_attribute": "图层属性缺失或无法识别：请按提示核对对应要素的属性",
    "invalid_field_mapping": "字段对应有误：请核对字段名（如 RJL=容积率）",
    "duplicate_parcel_id": "地块编号重复：请为每个地块使用不同的编号",
    "no_published_blueprint": "尚无已发布的蓝图版本：请联系管理员发布蓝图",
    "blueprint_not_found": "蓝图版本不存在：请重新选择蓝图版本",
    "blueprint_not_published": "该蓝图版本尚未发布：请选择已发布的版本",
    "project_exists": "项目代码已存在：请核对项目代码",
    "project_not_found": "项目不存在：请核对项目代码",
    "project_not_in_pool": "库外项目不立项：该项目不在项目库中，请先入库",
    "check_not_latest": "须先按最新发布的蓝图版本重新检测，才能审查通过",
    "check_not_found": "检测记录不存在",
    "invalid_transition": "当前项目状态不允许此操作",
    "review_required": "须先记录同意的联合审查决定及理由",
    "unknown_department": "未知部门或该部门不在本轮征询范围：请核对部门",
    "wrong_department": "只能以本部门名义答复意见",
    "round_not_found": "意见征询不存在：请核对项目和征询轮次",
    "round_closed": "本轮意见征询已办结，不能再答复",
    "round_open": "该项目已有进行中的意见征询：请等待办结后再发起",
    "already_answered": "本部门已答复，意见不可修改",
    "round_not_due": "仍有部门未答复且征询期限未到：请等待答复或期限届满后再办结",
    "not_in_planning": "仅策划阶段的项目可征询部门意见",
    "invalid_answer": "答复意见不完整：有条件同意须填写条件，不同意须填写理由",
    "invalid_webhook_url": "回调地址无效：仅支持 http/https，且地址中不得包含用户名或密码",
    "no_warning": "该项目没有待确认的预警",
    "unauthenticated": "未登录：请先登录",
    "invalid_api_key": "密钥无效或已吊销：请重新登录",
    "forbidden": "无此权限",
    "invalid_request": "填写的内容有误：请按提示修改",
    "too_many_requests": "请求过于频繁：请稍后再试",
    "insufficient_storage": "服务器磁盘已满：本次提交未保存，请联系管理员后重试",
    "invalid_parameter": "查询参数有误：请按提示修改",
    "internal_error": "服务内部错误：请记下错误编号并联系管理员",
}


# Directories on the server (an upload's temp dir, the data dir) never reach a client: libraries such as
# GDAL quote the full path they were given. The file's own name stays.
_ROOTS = sorted({tempfile.gettempdir().rstrip("/"), "/tmp", "/var", "/home", "/work", "/root", "/srv",
                 "/opt", "/usr", "/mnt", "/data", "/private", "/Users"}, key=len, reverse=True)
_SERVER_DIRS = re.compile(
    r"(?<![\w:/])(?:" + "|".join(re.escape(r) for r in _ROOTS) + r")/(?:[^\s'\"()<>/]+/)*"
)


def scrub_paths(text: str) -> str:
    """``text`` without server directories: ``/tmp/blueprint-upload-x1/p.zip`` becomes ``p.zip``."""
    return _SERVER_DIRS.sub("", text)


# The core's messages serve the CLI too ("pass --crs EPSG:N", "(CLI: --crs GCJ02 --replace)"); over HTTP
# the same advice names the form fields of the upload. Options the API has no field for stay, said as
# the blueprint command's.
CLI_OPTION = re.compile(r"--(crs|encoding|layer|kind)\b(?: ([A-Za-z0-9][\w:.+-]*))?")
CLI_HINT = re.compile(r"\(CLI: ([^()]*)\)")
HINT_OPTIONS = re.compile(r"^(?:--(crs|encoding|layer|kind|replace)(?: ([A-Za-z0-9][\w:.+-]*))?\s*)+$")
HINT_OPTION = re.compile(r"--([a-z]+)(?: ([A-Za-z0-9][\w:.+-]*))?")


def _form_field(match: re.Match[str]) -> str:
    field, value = match.group(1), match.group(2)
    if value == "EPSG:N":  # the core's placeholder: give an example a user can copy
        return f"the form field {field}, e.g. {field}=EPSG:4548"
    return f"the form field {field}={value}" if value else f"the form field {field}"


def _hint(options: str) -> str:
    if not HINT_OPTIONS.match(options.strip()):
        return f"(with the blueprint command: {options})"
    fields = [f"{name}={value or 'true'}" for name, value in HINT_OPTION.findall(options)]
    return f"(form field{'s' if len(fields) > 1 else ''} {', '.join(fields)})"


def api_words(message: str) -> str:
    """A core message in API words: ``pass --crs EPSG:N`` becomes ``send the form field crs, e.g. …``,
    ``(CLI: --crs GCJ02 --replace)`` becomes ``(form fields crs=GCJ02, replace=true)``."""
    parts = CLI_HINT.split(message)  # text, hint, text, hint, ..., text
    return "".join(
        _hint(part) if i % 2 else CLI_OPTION.sub(_form_field, part.replace("pass --", "send --"))
        for i, part in enumerate(parts)
    )


def error_body(code: str, detail: str) -> dict[str, str]:
    body = {"code": code, "detail": scrub_paths(detail)}
    if code in MESSAGES_ZH:
        body["message_zh"] = MESSAGES_ZH[code]
    return body


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
    if getattr(exc, "retry_after", None) is not None:  # api.ratelimit.RateLimitedError
        headers = {"Retry-After": str(exc.retry_after)}  # type: ignore[attr-defined]
    body = error_body(exc.code, api_words(exc.user_message))
    return JSONResponse(body, status_code=status, headers=headers)


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


DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
DISK_FULL_MESSAGES = ("database or disk is full", "no space left on device", "disk quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT from a file write, SQLite's "database or disk is full", PostgreSQL's disk_full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        orig = getattr(current, "orig", None)
        if getattr(orig, "pgcode", None) in ("53100", "53000"):
            return True
        if any(m in str(current).lower() for m in DISK_FULL_MESSAGES):
            return True
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False


def _unexpected_or_disk_full(request: Request, exc: Exception) -> JSONResponse:
    # A full disk is the operator's problem, not a bug: 507, and nothing was committed half (every write
    # is one transaction; files are written to a temporary name and renamed)
    if is_disk_full(exc):
        log.error("disk full on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(
            error_body("insufficient_storage", "the server is out of disk space; nothing was stored "
                       "服务器磁盘已满，本次请求未保存任何内容"),
            status_code=507,
            headers={"Retry-After": "300"},
        )
    return _unexpected(request, exc)


def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI parses declared JSON bodies with json.loads, which recurses once per nesting level
    return JSONResponse(
        error_body("invalid_request", "the request is nested too deeply 请求体嵌套层数过多"), status_code=422
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
    app.add_exception_handler(RecursionError, _too_deep)
    # the errors a full disk raises get handlers of their own (answered by ExceptionMiddleware, not
    # re-raised to the server like the catch-all); anything else they cover is still a 500
    app.add_exception_handler(OSError, _unexpected_or_disk_full)
    app.add_exception_handler(DBAPIError, _unexpected_or_disk_full)
    app.add_exception_handler(Exception, _unexpected_or_disk_full)
