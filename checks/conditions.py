"""checks.conditions: planning conditions (控规地块) and regional assessments (区域评估) of screened parcels.

Result contract (issue #14; each result parcel gets both keys, the result gets ``check_date``)::

    "conditions": [{"layer", "feature_id", "overlap_m2", "land_use": {"code", "name_zh", "name_en"},
                    "limits": {"far_max", "far_min", "building_density_max", "green_ratio_min",
                               "height_max_m"},           # number or null (null = no limit)
                    "findings": [{"indicator": "land_use"|"far"|"building_density"|"green_ratio"|"height_m",
                                  "name_zh", "name_en", "declared", "limit",
                                  "bound": "max"|"min"|"compatible",
                                  "margin",                # limit − declared (max), declared − limit (min):
                                                           # ≥ 0 within, < 0 breach; null for land use
                                  "ok", "explanation_zh", "explanation_en"}],
                    "outcome": "conflict"|"pass"|"listed"}]
    "assessments": [{"type", "name_zh", "name_en", "status": "exempt"|"partial"|"expired"|"due",
                     "covered_m2", "uncovered_m2",
                     "documents": [{"layer", "feature_id", "number", "approved", "valid_until", "valid"}],
                     "explanation_zh", "explanation_en"}]      # every catalogue type, catalogue order

Conditions: one per plan parcel the project parcel overlaps above the overlap tolerance (an overlap
below both tolerances is edge residue and not listed), largest overlap first. Without declared values
the outcome is ``listed`` and findings are empty; with them each declared indicator that has a limit
gives a finding (``far`` up to two: max and min), and any finding not ok makes the condition
``conflict`` — and the parcel's verdict conflict. Percentages (density, green ratio) are 0–100.
Assessments: ``covered_m2`` is the part covered by valid documents of the type (approved on or before
the check date and valid until at least it); ``exempt`` when the uncovered rest is below the overlap
tolerance, ``partial`` when some is covered, ``expired`` when only expired documents cover it, ``due``
otherwise. Areas are plane areas in the parcel's own 3° zone (``checks.areas``).
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from checks.areas import PlaneZones, zone_areas
from checks.errors import InvalidDeclaredError, RulesError
from layers.catalogue import Catalogue
from layers.land_use import LandUseCodes, load_land_use_codes

NOISE_M2 = 1e-4
DECLARED_FIELDS = ("land_use", "far", "building_density", "green_ratio", "height_m")
INDICATORS: dict[str, tuple[str, str, str]] = {  # indicator → (name_zh, name_en, unit)
    "land_use": ("用地性质", "land use", ""),
    "far": ("容积率", "floor area ratio", ""),
    "building_density": ("建筑密度", "building density", "%"),
    "green_ratio": ("绿地率", "green ratio", "%"),
    "height_m": ("建筑高度", "building height", "m"),
}
# declared indicator → the plan limits it is held against, with their bound
LIMITS_OF: dict[str, tuple[tuple[str, str], ...]] = {
    "far": (("far_max", "max"), ("far_min", "min")),
    "building_density": (("building_density_max", "max"),),
    "green_ratio": (("green_ratio_min", "min"),),
    "height_m": (("height_max_m", "max"),),
}
LIMIT_KEYS = ("far_max", "far_min", "building_density_max", "green_ratio_min", "height_max_m")
STATUS_ZH = {
    "exempt": "可复用（免于单独评估）",
    "partial": "部分覆盖",
    "expired": "已过期",
    "due": "须单独评估",
}
EPS = 1e-9  # a declared value equal to its limit is within it (floating-point residue aside)


# ---------------------------------------------------------------- declared values


@dataclass(frozen=True)
class Declared:
    """The project's own plan, as declared with a check (every value optional)."""

    land_use: str | None = None
    far: float | None = None
    building_density: float | None = None
    green_ratio: float | None = None
    height_m: float | None = None

    def any(self) -> bool:
        return any(getattr(self, f) is not None for f in DECLARED_FIELDS)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in DECLARED_FIELDS if getattr(self, f) is not None}


def parse_declared(values: Mapping[str, Any] | None, codes: LandUseCodes | None = None) -> Declared:
    """Declared values from the API body or ``--declare k=v``; a bad one raises naming its field."""
    if not values:
        return Declared()
    codes = codes or load_land_use_codes()
    unknown = set(values) - set(DECLARED_FIELDS)
    if unknown:
        raise InvalidDeclaredError(
            f"declared.{sorted(unknown)[0]}: unknown field; declare {', '.join(DECLARED_FIELDS)} 申报字段未知"
        )
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if name == "land_use":
            code = LandUseCodes.normalise(value)
            if code is None or codes.get(code) is None:
                raise InvalidDeclaredError(
                    f"declared.land_use: {_short(value)} is not a land-use code of the "
                    "national classification (e.g. 0701, 1001) 用地代码无效"
                )
            out[name] = code
            continue
        out[name] = _declared_number(name, value)
    return Declared(**out)


def _short(value: Any) -> str:
    """A submitted value as quoted in an error, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _declared_number(name: str, value: Any) -> float:
    zh = INDICATORS[name][0]
    number: float | None = None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
    except (ValueError, OverflowError):  # not a number, or an integer too large for a float
        number = None
    if number is None or not math.isfinite(number):
        raise InvalidDeclaredError(f"declared.{name}: {_short(value)} is not a number {zh}须为数字")
    if number < 0 or (INDICATORS[name][2] == "%" and number > 100):
        span = "0–100 (%)" if INDICATORS[name][2] == "%" else "≥ 0"
        raise InvalidDeclaredError(f"declared.{name}: {number:g} is outside {span} {zh}超出范围")
    return number


# ---------------------------------------------------------------- land-use compatibility


@dataclass(frozen=True)
class Allow:
    project: tuple[str, ...]
    plan: tuple[str, ...]  # () = every plan land use
    zh: str
    en: str


@dataclass(frozen=True)
class Compatibility:
    """Which project land uses fit which plan land uses (checks/land_use_compat.toml)."""

    allows: tuple[Allow, ...] = ()

    def check(self, project: str, plan: str) -> tuple[bool, str, str]:
        """(compatible, reason zh, reason en) for a project code on a plan parcel's code."""
        if project == plan:
            return True, "用地性质一致", "same land use"
        # inside the plan's class (0702 on 07, 100102 on 1001) or the same second-level class (0701 on
        # 070101); a coarser project code (07 on 0701) could be any of the class's uses: not compatible
        if project.startswith(plan) or (len(project) >= 4 and len(plan) >= 4 and project[:4] == plan[:4]):
            return True, "同属一个用地类别", "same land-use class"
        for allow in self.allows:
            if any(project.startswith(p) for p in allow.project) and (
                not allow.plan or any(plan.startswith(p) for p in allow.plan)
            ):
                return True, allow.zh, allow.en
        return False, "", ""


def _codes_list(value: Any, where: str) -> tuple[str, ...]:
    if value == "*":
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise RulesError(f'{where} must be a code, a list of codes or "*"')
    return tuple(items)


def load_compatibility(path: Path | None = None) -> Compatibility:
    """The compatibility table in ``path`` (default: the built-in ``checks/land_use_compat.toml``)."""
    origin = f"land-use compatibility file {path}" if path else "built-in land-use compatibility"
    try:
        text = (
            Path(path).read_text(encoding="utf-8")
            if path is not None
            else resources.files("checks").joinpath("land_use_compat.toml").read_text(encoding="utf-8")
        )
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{origin}: {exc}") from exc
    allows = []
    for i, spec in enumerate(doc.get("allow", []), start=1):
        where = f"{origin}: allow #{i}"
        if not isinstance(spec, dict) or not {"project", "plan", "zh", "en"} <= set(spec):
            raise RulesError(f"{where} needs project, plan, zh and en")
        project = _codes_list(spec["project"], f"{where}.project")
        if not project:
            raise RulesError(f'{where}.project must name codes, not "*"')
        allows.append(
            Allow(project, _codes_list(spec["plan"], f"{where}.plan"), str(spec["zh"]), str(spec["en"]))
        )
    return Compatibility(tuple(allows))


# ---------------------------------------------------------------- the index


@dataclass
class _Features:
    """Condition or assessment features of a blueprint as arrays, with an STRtree."""

    frame: gpd.GeoDataFrame
    geoms: NDArray[np.object_] = field(init=False)
    tree: shapely.STRtree = field(init=False)
    rows: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.geoms = np.asarray(self.frame.geometry.values, dtype=object)
        self.tree = shapely.STRtree(self.geoms)
        self.rows = self.frame.drop(columns=[self.frame.geometry.name]).to_dict("records")

    def overlaps(
        self, geoms: NDArray[np.object_], crs: CRS, zones: PlaneZones
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.object_], NDArray[np.float64]]:
        """(parcel, feature, overlap geometry, plane area in the parcel's zone) above noise."""
        if len(self.geoms) == 0 or len(geoms) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0, dtype=object), np.empty(0)
        p, f = self.tree.query(geoms, predicate="intersects")
        order = np.lexsort((f, p))
        p, f = p[order].astype(np.int64), f[order].astype(np.int64)
        inter = shapely.intersection(geoms[p], self.geoms[f])
        area = zone_areas(inter, crs, zones, owner=p)
        keep = area > NOISE_M2
        return p[keep], f[keep], inter[keep], area[keep]


Tolerance = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.bool_]]


class ConditionIndex:
    """The condition features (detailed plans) and assessment features of one blueprint version.

    Built once with the Screener (read-only afterwards); :meth:`evaluate` gives each parcel's
    ``conditions`` and ``assessments`` (the contract in the module docstring).
    """

    def __init__(
        self,
        features: gpd.GeoDataFrame,
        crs: CRS,
        catalogue: Catalogue,
        *,
        compatibility: Compatibility | None = None,
        codes: LandUseCodes | None = None,
    ) -> None:
        self.crs = crs
        self.catalogue = catalogue
        self.codes = codes or load_land_use_codes()
        self.compat = compatibility or load_compatibility()
        frame = features if features is not None else gpd.GeoDataFrame(geometry=[], crs=crs)
        has = lambda c: c in frame.columns  # noqa: E731 - a two-word membership test
        plans = frame[frame["land_use"].notna()] if has("land_use") else frame.iloc[0:0]
        docs = frame[frame["assessment_type"].notna()] if has("assessment_type") else frame.iloc[0:0]
        self.plans = _Features(plans.reset_index(drop=True))
        self.docs = _Features(docs.reset_index(drop=True))

    @property
    def has_assessments(self) -> bool:
        return len(self.docs.geoms) > 0

    def evaluate(
        self,
        geoms: NDArray[np.object_],
        area: NDArray[np.float64],
        zones: PlaneZones,
        declared: Declared,
        check_date: dt.date,
        below: Tolerance,
    ) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Per parcel: (conditions, assessments)."""
        out: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = [([], []) for _ in range(len(geoms))]
        p, f, _, overlap = self.plans.overlaps(geoms, self.crs, zones)
        keep = ~below(overlap, overlap / area[p]) if len(p) else np.zeros(0, dtype=bool)
        p, f, overlap = p[keep], f[keep], overlap[keep]
        for i in np.lexsort((f, -overlap, p)).tolist():  # per parcel, largest overlap first
            out[int(p[i])][0].append(self._condition(self.plans.rows[int(f[i])], float(overlap[i]), declared))
        dp, df, _, _ = self.docs.overlaps(geoms, self.crs, zones)  # sorted by parcel
        cut = np.searchsorted(dp, np.arange(len(geoms) + 1))
        for parcel in range(len(geoms)):
            mine = df[cut[parcel]:cut[parcel + 1]]
            out[parcel][1].extend(self._assessments(parcel, mine, geoms, area, zones, check_date, below))
        return out

    # --- conditions --------------------------------------------------------------------------------

    def _condition(self, row: Mapping[str, Any], overlap: float, declared: Declared) -> dict[str, Any]:
        code = str(row["land_use"])
        use = self.codes.get(code)
        limits = {k: _number_or_none(row.get(k)) for k in LIMIT_KEYS}
        findings = self._findings(code, limits, declared) if declared.any() else []
        outcome = (
            "listed" if not declared.any() else ("conflict" if any(not x["ok"] for x in findings) else "pass")
        )
        return {
            "layer": str(row["layer"]),
            "feature_id": str(row["feature_id"]),
            "overlap_m2": round(overlap, 4),
            "land_use": use.as_dict() if use else {"code": code, "name_zh": code, "name_en": code},
            "limits": limits,
            "findings": findings,
            "outcome": outcome,
        }

    def _findings(
        self, code: str, limits: Mapping[str, float | None], declared: Declared
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if declared.land_use is not None:
            found.append(self._land_use_finding(declared.land_use, code))
        for indicator, bounds in LIMITS_OF.items():
            value = getattr(declared, indicator)
            if value is None:
                continue
            for key, bound in bounds:
                limit = limits[key]
                if limit is not None:
                    found.append(_limit_finding(indicator, float(value), limit, bound))
        return found

    def _land_use_finding(self, project: str, plan: str) -> dict[str, Any]:
        ok, why_zh, why_en = self.compat.check(project, plan)
        pz, pe = self._use_label(project)
        qz, qe = self._use_label(plan)
        if ok:
            zh = f"拟建用地性质 {pz} 与控规用地性质 {qz} 相容（{why_zh}）。"
            en = f"The declared land use {pe} fits the plan's land use {qe} ({why_en})."
        else:
            zh = f"拟建用地性质 {pz} 与控规用地性质 {qz} 不相容。"
            en = f"The declared land use {pe} does not fit the plan's land use {qe}."
        return {
            "indicator": "land_use",
            "name_zh": INDICATORS["land_use"][0],
            "name_en": INDICATORS["land_use"][1],
            "declared": project,
            "limit": plan,
            "bound": "compatible",
            "margin": None,
            "ok": ok,
            "explanation_zh": zh,
            "explanation_en": en,
        }

    def _use_label(self, code: str) -> tuple[str, str]:
        use = self.codes.get(code)
        return (f"{code} {use.name_zh}", f"{code} {use.name_en}") if use else (code, code)

    # --- assessments -------------------------------------------------------------------------------

    def _assessments(
        self,
        parcel: int,
        feats: NDArray[np.int64],
        geoms: NDArray[np.object_],
        area: NDArray[np.float64],
        zones: PlaneZones,
        check_date: dt.date,
        below: Tolerance,
    ) -> list[dict[str, Any]]:
        rows = self.docs.rows
        out = []
        for key, kind in self.catalogue.assessment_types.items():
            mine = [int(f) for f in feats.tolist() if rows[f]["assessment_type"] == key]
            valid = [f for f in mine if _valid(rows[f], check_date)]
            covered = 0.0
            if valid and bool(shapely.contains(self.docs.geoms[valid], geoms[parcel]).any()):
                covered = float(area[parcel])  # one document covers it all: no overlay needed
            elif valid:
                cover = shapely.intersection(geoms[parcel], shapely.union_all(self.docs.geoms[valid]))
                covered = float(
                    zone_areas(
                        np.asarray([cover], dtype=object), self.crs, zones, owner=np.asarray([parcel])
                    )[0]
                )
            covered = min(covered, float(area[parcel]))
            uncovered = max(float(area[parcel]) - covered, 0.0)
            expired = [f for f in mine if _expired(rows[f], check_date)]
            if covered > NOISE_M2 and bool(
                below(np.asarray([uncovered]), np.asarray([uncovered / area[parcel]]))[0]
            ):
                status = "exempt"
            elif covered > NOISE_M2:
                status = "partial"
            elif expired:
                status = "expired"
            else:
                status = "due"
            documents = [
                _document(rows[f], check_date) for f in sorted(mine, key=lambda f: str(rows[f]["feature_id"]))
            ]
            zh, en = _assessment_text(status, kind.name_zh, kind.name_en, covered, uncovered, documents)
            out.append(
                {
                    "type": key,
                    "name_zh": kind.name_zh,
                    "name_en": kind.name_en,
                    "status": status,
                    "covered_m2": round(covered, 4),
                    "uncovered_m2": round(uncovered, 4),
                    "documents": documents,
                    "explanation_zh": zh,
                    "explanation_en": en,
                }
            )
        return out


def _number_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _limit_finding(indicator: str, declared: float, limit: float, bound: str) -> dict[str, Any]:
    zh_name, en_name, unit = INDICATORS[indicator]
    margin = limit - declared if bound == "max" else declared - limit
    ok = margin >= -EPS
    d, lim, gap = _fmt(declared) + unit, _fmt(limit) + unit, _fmt(abs(margin)) + unit
    if bound == "max":
        zh = (
            f"{zh_name} {d} 未超过控规上限 {lim}（余量 {gap}）。"
            if ok
            else f"{zh_name} {d} 超过控规上限 {lim}（超出 {gap}）。"
        )
        en = (
            f"{en_name.capitalize()} {d} is within the plan's maximum {lim} (margin {gap})."
            if ok
            else f"{en_name.capitalize()} {d} exceeds the plan's maximum {lim} by {gap}."
        )
    else:
        zh = (
            f"{zh_name} {d} 不低于控规下限 {lim}（余量 {gap}）。"
            if ok
            else f"{zh_name} {d} 低于控规下限 {lim}（不足 {gap}）。"
        )
        en = (
            f"{en_name.capitalize()} {d} meets the plan's minimum {lim} (margin {gap})."
            if ok
            else f"{en_name.capitalize()} {d} is below the plan's minimum {lim} by {gap}."
        )
    return {
        "indicator": indicator,
        "name_zh": zh_name,
        "name_en": en_name,
        "declared": declared,
        "limit": limit,
        "bound": bound,
        "margin": round(margin, 6),
        "ok": bool(ok),
        "explanation_zh": zh,
        "explanation_en": en,
    }


def _date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _valid(row: Mapping[str, Any], on: dt.date) -> bool:
    """Approved on or before ``on`` (or no date given) and valid until at least ``on`` (or no expiry)."""
    approved, until = _date(row.get("approved")), _date(row.get("valid_until"))
    return (approved is None or approved <= on) and (until is None or on <= until)


def _expired(row: Mapping[str, Any], on: dt.date) -> bool:
    until = _date(row.get("valid_until"))
    return until is not None and until < on


def _document(row: Mapping[str, Any], on: dt.date) -> dict[str, Any]:
    approved, until = _date(row.get("approved")), _date(row.get("valid_until"))
    number = row.get("document_number")
    return {
        "layer": str(row["layer"]),
        "feature_id": str(row["feature_id"]),
        "number": None
        if number is None or (isinstance(number, float) and math.isnan(number))
        else str(number),
        "approved": approved.isoformat() if approved else None,
        "valid_until": until.isoformat() if until else None,
        "valid": _valid(row, on),
    }


def _numbers(documents: Sequence[Mapping[str, Any]], valid: bool) -> str:
    names = [d["number"] or f"{d['layer']}#{d['feature_id']}" for d in documents if d["valid"] == valid]
    return "、".join(names)


def _assessment_text(
    status: str, zh: str, en: str, covered: float, uncovered: float, documents: Sequence[Mapping[str, Any]]
) -> tuple[str, str]:
    valid, stale = _numbers(documents, True), _numbers(documents, False)
    if status == "exempt":
        return (
            f"{zh}：地块已由有效的区域评估成果（{valid}）全部覆盖，可直接复用，免于单独评估。",
            f"{en}: the parcel is fully covered by a valid regional assessment ({valid}); the project "
            "reuses it and is exempt from its own.",
        )
    if status == "partial":
        return (
            f"{zh}：有效的区域评估成果（{valid}）覆盖 {covered:.2f} 平方米，尚有 {uncovered:.2f} 平方米"
            "未覆盖，须对未覆盖部分单独评估。",
            f"{en}: a valid regional assessment ({valid}) covers {covered:.2f} m²; {uncovered:.2f} m² "
            "are not covered and need their own assessment.",
        )
    if status == "expired":
        return (
            f"{zh}：覆盖该地块的区域评估成果（{stale}）已过有效期，须重新评估或单独评估。",
            f"{en}: the regional assessment covering the parcel ({stale}) has expired; a new or own "
            "assessment is needed.",
        )
    return (
        f"{zh}：该地块无区域评估成果，须单独评估。",
        f"{en}: no regional assessment covers the parcel; the project needs its own.",
    )


def explain_conditions(conditions: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(zh, en) sentences on a parcel's planning conditions, for its explanation."""
    if not conditions:
        return "", ""
    zh, en = [], []
    for c in conditions:
        use = c["land_use"]
        head_zh = (f"涉及控规地块 {c['feature_id']}（{use['code']} {use['name_zh']}，"
                   f"重叠 {c['overlap_m2']:.2f} 平方米）")
        head_en = (
            f"Detailed-plan parcel {c['feature_id']} ({use['code']} {use['name_en']}, "
            f"overlap {c['overlap_m2']:.2f} m²)"
        )
        if c["outcome"] == "listed":
            zh.append(head_zh + "：未申报规划指标，列出适用的规划条件。")
            en.append(head_en + ": no planning values declared; the applicable conditions are listed.")
            continue
        bad = [x for x in c["findings"] if not x["ok"]]
        if bad:
            zh.append(head_zh + "：不符合规划条件。" + "".join(x["explanation_zh"] for x in bad))
            en.append(
                head_en + ": breaches its planning conditions. " + " ".join(x["explanation_en"] for x in bad)
            )
        else:
            zh.append(head_zh + "：符合规划条件。")
            en.append(head_en + ": meets its planning conditions.")
    return "".join(zh), " ".join(en)


def empty_features(crs: CRS) -> gpd.GeoDataFrame:
    """A blueprint's condition features when it has none."""
    return gpd.GeoDataFrame(
        {"kind": [], "layer": [], "feature_id": []}, geometry=gpd.GeoSeries([], crs=crs), crs=crs
    )
