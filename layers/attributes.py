"""layers.attributes: attributes of detailed-plan parcels and regional assessments, checked at import.

A catalogue kind with ``fields`` (``detailed_plan``, ``regional_assessment``) maps canonical attributes
(``land_use``, ``far_max`` …) to the department's field names (``YDDM``, ``RJL`` …; overridable per
import). :func:`normalise_attributes` adds one column per canonical attribute to the layer frame —
codes as text, limits as numbers or null, dates as ``YYYY-MM-DD`` or null — and reports each feature
whose value is missing or unreadable as a repair (never silently 0: an absent limit is "no limit").
An unknown land-use code or assessment type is an import error naming the feature.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd

from layers.errors import FieldMappingError, InvalidAttributeError, UnknownLandUseError
from layers.land_use import LandUseCodes, load_land_use_codes
from layers.model import Repair

if TYPE_CHECKING:
    from layers.catalogue import Catalogue, LayerKind


@dataclass(frozen=True)
class FieldSpec:
    """What a canonical attribute holds and how a missing value is reported."""

    key: str
    type: str  # "code" (land use), "assessment", "number", "percent", "text", "date"
    name_zh: str
    name_en: str
    required: bool = False  # missing: an import error (the feature cannot be used at all)
    report_missing: bool = True  # missing: a repair entry per feature (else silently "none")
    missing_means: str = "no limit"


FIELD_SPECS: dict[str, FieldSpec] = {
    s.key: s
    for s in (
        FieldSpec("land_use", "code", "用地代码", "land-use code", required=True),
        FieldSpec("far_max", "number", "容积率上限", "maximum floor area ratio"),
        FieldSpec("far_min", "number", "容积率下限", "minimum floor area ratio", report_missing=False),
        FieldSpec("building_density_max", "percent", "建筑密度上限", "maximum building density"),
        FieldSpec("green_ratio_min", "percent", "绿地率下限", "minimum green ratio"),
        FieldSpec("height_max_m", "number", "建筑限高", "maximum building height"),
        FieldSpec("assessment_type", "assessment", "评估类型", "assessment type", required=True),
        FieldSpec("document_number", "text", "文号", "document number", missing_means="no number"),
        FieldSpec("approved", "date", "批准日期", "approval date", missing_means="approval date unknown"),
        FieldSpec("valid_until", "date", "有效期至", "valid until", missing_means="no expiry date"),
    )
}
LIMIT_FIELDS = ("far_max", "far_min", "building_density_max", "green_ratio_min", "height_max_m")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")


def attributed(kind: LayerKind) -> bool:
    """Whether features of ``kind`` are carried one by one with their attributes (not partitioned)."""
    return bool(kind.fields)


def parse_field_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``["RJL=容积率", ...]`` (CLI ``--field``, API form ``fields``) as a mapping; bad pairs are an error."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        for part in (p for p in str(pair).replace("\n", ",").split(",") if p.strip()):
            name, sep, column = part.partition("=")
            if not sep or not name.strip() or not column.strip():
                raise FieldMappingError(f"field override {part!r} is not NAME=COLUMN (e.g. RJL=容积率)")
            out[name.strip()] = column.strip()
    return out


def resolve_fields(
    kind: LayerKind, columns: list[str], overrides: Mapping[str, str] | None, source: str
) -> tuple[dict[str, str | None], list[str]]:
    """Canonical attribute → the file's column (None when absent), and notes on absent optional ones."""
    defaults = kind.field_map
    by_name = {name.upper(): canonical for canonical, name in defaults.items()}
    wanted = dict(defaults)
    for name, column in (overrides or {}).items():
        canonical = name if name in defaults else by_name.get(name.upper())
        if canonical is None:
            known = ", ".join(f"{n} ({FIELD_SPECS[c].name_zh})" for c, n in defaults.items())
            raise FieldMappingError(
                f"{source}: field override {name}={column}: a {kind.key} layer has no "
                f"field {name!r}; its fields are {known}"
            )
        wanted[canonical] = column
    lower = {c.lower(): c for c in columns}
    found: dict[str, str | None] = {}
    notes: list[str] = []
    for canonical, column in wanted.items():
        spec = FIELD_SPECS[canonical]
        actual = column if column in columns else lower.get(column.lower())
        overridden = canonical in {by_name.get(n.upper(), n) for n in (overrides or {})}
        if actual is None and (overridden or spec.required):
            hint = "" if overridden else f" (name the field with --field {defaults[canonical]}=<column>)"
            raise FieldMappingError(
                f"{source}: no column {column!r} for {spec.name_zh} {spec.name_en}{hint}; "
                f"columns: {', '.join(columns) or '(none)'}"
            )
        if actual is None:
            notes.append(
                f"{source}: no column {column!r} ({spec.name_zh} {spec.name_en}): "
                f"{spec.missing_means} for every feature"
            )
        found[canonical] = actual
    return found, notes


def normalise_attributes(
    frame: gpd.GeoDataFrame,
    kind: LayerKind,
    catalogue: Catalogue,
    *,
    overrides: Mapping[str, str] | None = None,
    source: str = "layer",
    codes: LandUseCodes | None = None,
) -> tuple[gpd.GeoDataFrame, list[Repair], list[str]]:
    """``frame`` with one column per canonical attribute, the per-feature repairs and layer notes."""
    columns = [str(c) for c in frame.columns if c != frame.geometry.name and c != "feature_id"]
    found, notes = resolve_fields(kind, columns, overrides, source)
    codes = codes or load_land_use_codes()
    ids = [str(v) for v in frame["feature_id"]]
    repairs: list[Repair] = []
    values: dict[str, list[Any]] = {}
    for canonical, column in found.items():
        spec = FIELD_SPECS[canonical]
        raw = frame[column].tolist() if column is not None else [None] * len(frame)
        label = column or kind.field_map[canonical]
        values[canonical] = [
            _value(spec, label, v, fid, catalogue, codes, source, repairs, column is not None)
            for fid, v in zip(ids, raw, strict=True)
        ]
    return frame.assign(**values), repairs, notes


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _value(
    spec: FieldSpec,
    column: str,
    value: Any,
    fid: str,
    catalogue: Catalogue,
    codes: LandUseCodes,
    source: str,
    repairs: list[Repair],
    present: bool,
) -> Any:
    """One feature's canonical value; reports (``repairs``) or raises for a bad one."""
    where = f"{source}: feature {fid}"
    if _missing(value):
        if spec.required:
            raise InvalidAttributeError(f"{where} has no {spec.name_zh} {spec.name_en} (field {column})")
        if spec.report_missing and present:
            repairs.append(
                Repair(
                    fid,
                    f"{spec.key}_missing",
                    spec.missing_means,
                    f"{spec.name_zh} {spec.name_en} ({column}) is empty",
                )
            )
        return None
    if spec.type == "code":
        return _land_use(value, where, column, codes)
    if spec.type == "assessment":
        return _assessment(value, where, column, catalogue)
    if spec.type == "text":
        return str(value).strip()
    if spec.type == "date":
        parsed = _date(value)
        if parsed is None:
            repairs.append(
                Repair(
                    fid,
                    f"{spec.key}_invalid",
                    spec.missing_means,
                    f"{spec.name_zh} {spec.name_en} ({column}) {value!r} is not a date YYYY-MM-DD",
                )
            )
        return parsed
    number = _number(value)
    if number is None:
        repairs.append(
            Repair(
                fid,
                "indicator_not_numeric",
                spec.missing_means,
                f"{spec.name_zh} {spec.name_en} ({column}) {value!r} is not a number",
            )
        )
        return None
    if number < 0 or (spec.type == "percent" and number > 100):
        limits = "0–100 %" if spec.type == "percent" else "≥ 0"
        repairs.append(
            Repair(
                fid,
                "indicator_out_of_range",
                spec.missing_means,
                f"{spec.name_zh} {spec.name_en} ({column}) {number:g} is outside {limits}",
            )
        )
        return None
    return number


def _land_use(value: Any, where: str, column: str, codes: LandUseCodes) -> str:
    code = LandUseCodes.normalise(value)
    if code is None or codes.get(code) is None:
        raise UnknownLandUseError(
            f"{where}: land-use code {value!r} (field {column}) is not a code of "
            f"{codes.source_zh or 'the classification'}"
            " 用地代码不在《国土空间调查、规划、用途管制用地用海分类指南》中"
        )
    return code


def _assessment(value: Any, where: str, column: str, catalogue: Catalogue) -> str:
    text = str(value).strip()
    for key, kind in catalogue.assessment_types.items():
        if text in (key, kind.name_zh):
            return key
    known = ", ".join(f"{k} {t.name_zh}" for k, t in catalogue.assessment_types.items())
    raise InvalidAttributeError(
        f"{where}: assessment type {text!r} (field {column}) is unknown; known: {known}"
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = (float(value) if isinstance(value, (int, float))
                  else float(str(value).strip().rstrip("%％").strip()))
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _date(value: Any) -> str | None:
    """``YYYY-MM-DD`` from a date, a timestamp or text: 2024-05-01, 2024/5/1, 2024年5月1日, 20240501."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return value.to_pydatetime().date().isoformat()
    text = str(value).strip()
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    text = text.split("T")[0].split(" ")[0]
    match = _DATE.match(text)
    if not match:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        return None
