"""checks.engine: screen project parcels against one blueprint version (STRtree + vectorised shapely)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from blueprint.model import Blueprint
from checks.areas import PlaneZones, ellipsoidal_areas, plane_zones, reproject, zone_areas
from checks.conditions import Compatibility, ConditionIndex, Declared, empty_features, explain_conditions
from checks.errors import CheckError, DuplicateParcelIdError, NoParcelsError, ParcelOutsideCityError
from checks.explain import explain_parcel, explain_submission
from checks.results import (
    AREA_DECIMALS,
    RATIO_DECIMALS,
    collect_requirements,
    geojson_all,
    natural_key,
    rounded,
)
from checks.rules import OUTCOMES, OUTSIDE_URBAN, URBAN_BOUNDARY, ProjectType, Rule, Rules
from checks.submission import Submitted, lonlat_input, parcel_count, repaired, submitted
from layers.catalogue import Catalogue
from layers.crs import CGCS2000, OFFSET_DATUMS, crs_label, to_work_crs
from layers.errors import WebMapOffsetError
from layers.geometry import polygonal_part
from layers.model import ParcelSet, Repair
from layers.web_offsets import undo_offset

# pieces with this many vertices are prepared once, when the Screener is built: testing "piece contains
# the parcel" on a prepared piece is cheap, while intersecting a parcel with a big piece (zones with
# hundreds of holes) is the most expensive step. Small pieces are not worth the prepared index's memory.
# Preparing up front (not lazily) keeps the shared Screener read-only, so safe across request threads.
PREPARE_MIN_VERTICES = 64
# 1 cm² is far below survey precision: overlaps this small are floating-point residue of shared edges
# (a parcel that only touches a piece), never a real overlap, so they are dropped before any rule.
NOISE_M2 = 1e-4
VERDICTS = ("pass", "review", "conflict")  # index = severity
UNPLANNED = "unplanned"


@dataclass(frozen=True)
class KindLabel:
    """A kind as reported in results: catalogue kind or pseudo-kind."""

    key: str
    name_zh: str
    name_en: str


@dataclass
class Hits:
    """Overlaps of an array of parcels with the blueprint, one row per (parcel, effective kind)."""

    parcel: NDArray[np.int64]  # index into the screened parcel array
    kind: NDArray[np.int64]  # index into Screener.kinds
    geometry: NDArray[np.object_]  # polygonal overlap, working CRS
    area: NDArray[np.float64]
    ellipsoidal_area: NDArray[np.float64]
    member_bounds: NDArray[np.int64]  # hit i's pieces are member_piece[bounds[i]:bounds[i+1]]
    member_piece: NDArray[np.int64]
    covered: NDArray[np.float64]  # per parcel: area covered by any piece (for the city-extent test)
    # per parcel: ellipsoidal area, when asked for (computed in the same pass as the hits')
    parcel_ellipsoidal: NDArray[np.float64] | None = None


def pieces_extent(geoms: NDArray[np.object_]) -> tuple[float, float, float, float]:
    """The pieces' bounding box; NaN when there are none (shapely's ``total_bounds`` raises on none)."""
    if len(geoms) == 0:
        return (np.nan, np.nan, np.nan, np.nan)
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(geoms))
    return (xmin, ymin, xmax, ymax)


class Screener:
    """One blueprint version held in memory for screening: built once, shared by requests.

    Pieces go into an STRtree; each piece's JSON ``kinds`` list is factorised into a small table of
    kind combinations so a piece explodes into its effective kinds by array indexing, not parsing.
    Parcels (the query side) are prepared before the tree query so the intersects predicate runs on
    prepared geometries, and so are pieces with many vertices; intersection and area are vectorised
    shapely 2 calls, skipped where a prepared containment test shows one side inside the other.
    After construction the Screener is read-only apart from a cache of parsed piece sources, so one
    instance can serve concurrent requests.
    """

    def __init__(self, blueprint: Blueprint, rules: Rules, catalogue: Catalogue, *,
                 tolerance_m2: float = 1.0, tolerance_ratio: float = 0.001,
                 compatibility: Compatibility | None = None) -> None:
        if tolerance_m2 < 0 or not 0 <= tolerance_ratio <= 1:
            raise CheckError(f"tolerances must be ≥ 0 m² and within [0, 1], got {tolerance_m2}, "
                             f"{tolerance_ratio}")
        self.version = blueprint.version
        self.crs = CRS.from_user_input(blueprint.crs)
        self._crs_label = crs_label(self.crs)  # to_epsg costs ~0.1 ms: once, not per check
        self.rules = rules
        self.catalogue = catalogue
        self.tolerance_m2 = float(tolerance_m2)
        self.tolerance_ratio = float(tolerance_ratio)
        # the policy the results quote (outcomes, regulation texts): part of the check id, since another
        # rules file gives another result for the same parcels and version
        policy = (sorted(rules.table.items()), rules.fallback, sorted(rules.project_types.items()),
                  sorted(rules.pseudo_kinds.items()), rules.meta)
        self._rules_digest = hashlib.sha256(repr(policy).encode()).hexdigest()
        pieces = blueprint.pieces
        self._piece_ids = pieces["piece_id"].astype(str).to_numpy()
        self._sources = pieces["sources"].to_numpy()
        self._geoms = np.asarray(pieces.geometry.values, dtype=object)
        self._tree = shapely.STRtree(self._geoms)
        self._extent = pieces_extent(self._geoms)
        self._big = self._prepare_big(self._geoms)
        self._source_cache: dict[int, dict[str, tuple[str, ...]]] = {}
        self._rules_by_type: dict[str, tuple[list[Rule], NDArray[np.int64]]] = {}
        self._same_crs: dict[int, tuple[CRS, bool]] = {}
        codes, combos = pd.factorize(pieces["kinds"], sort=True)
        self._piece_combo = np.asarray(codes, dtype=np.int64)
        self.kinds = self._kind_vocabulary()
        self._kind_index = {k.key: i for i, k in enumerate(self.kinds)}
        parsed = [self._parse_kinds(str(c)) for c in combos]
        has_urban = any(URBAN_BOUNDARY in c for c in parsed) or any(
            ref.kind == URBAN_BOUNDARY for ref in blueprint.layers)
        # 城镇开发边界外 only means something when the blueprint has an urban boundary at all
        self._derive_outside = has_urban and OUTSIDE_URBAN in self._kind_index
        self._combo_plain = self._csr(parsed, outside=False)
        self._combo_urban = self._csr(parsed, outside=self._derive_outside)
        # 控规地块 and 区域评估 of the version (issue #14): conditions and assessments per parcel
        self.conditions = ConditionIndex(blueprint.features if blueprint.features is not None
                                         else empty_features(self.crs), self.crs, catalogue,
                                         compatibility=compatibility)

    # --- set-up ----------------------------------------------------------------------------------

    @staticmethod
    def _prepare_big(geoms: NDArray[np.object_]) -> NDArray[np.bool_]:
        """Prepare the pieces with many vertices; returns which ones they are."""
        big = np.asarray(shapely.get_num_coordinates(geoms) >= PREPARE_MIN_VERTICES, dtype=bool)
        shapely.prepare(geoms[big])
        return big

    def _kind_vocabulary(self) -> list[KindLabel]:
        """Catalogue control kinds in catalogue order, then the rules' pseudo-kinds."""
        labels = [KindLabel(k.key, k.name_zh, k.name_en) for k in self.catalogue.values()
                  if k.group != "boundary"]
        labels += [KindLabel(p.key, p.name_zh, p.name_en) for p in self.rules.pseudo_kinds.values()]
        return labels

    def _parse_kinds(self, text: str) -> tuple[str, ...]:
        try:
            kinds = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckError(f"blueprint {self.version}: pieces.kinds is not JSON: {text[:60]!r}") from exc
        boundary = {k.key for k in self.catalogue.values() if k.group == "boundary"}
        out: list[str] = []
        for kind in kinds:
            if kind == UNPLANNED or kind in boundary:
                continue  # the extent, not a control
            if kind not in self._kind_index:
                raise CheckError(f"blueprint {self.version} uses kind '{kind}', unknown to the catalogue")
            out.append(kind)
        return tuple(out)

    def _csr(self, combos: list[tuple[str, ...]], *, outside: bool
             ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Offsets and flat kind indices per combination, adding 城镇开发边界外 where asked."""
        flat: list[int] = []
        offsets = [0]
        for combo in combos:
            keys = list(combo)
            if outside and URBAN_BOUNDARY not in combo:
                keys.append(OUTSIDE_URBAN)
            flat.extend(self._kind_index[k] for k in keys)
            offsets.append(len(flat))
        return np.asarray(offsets, dtype=np.int64), np.asarray(flat, dtype=np.int64)

    def __getstate__(self) -> dict[str, Any]:
        # shipped to dask workers: pieces as one WKB array (fast to pickle); the STRtree is rebuilt there
        state = self.__dict__.copy()
        del state["_tree"]
        state["_geoms"] = shapely.to_wkb(self._geoms)
        state["_source_cache"] = {}
        state["_rules_by_type"] = {}
        state["_same_crs"] = {}
        del state["_big"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_rules_by_type", {})
        self.__dict__.setdefault("_same_crs", {})
        self._geoms = np.asarray(shapely.from_wkb(state["_geoms"]), dtype=object)
        self._tree = shapely.STRtree(self._geoms)
        self._extent = pieces_extent(self._geoms)
        self._big = self._prepare_big(self._geoms)

    @property
    def piece_count(self) -> int:
        return len(self._geoms)

    # --- the vectorised core ----------------------------------------------------------------------

    def _pairs(self, geoms: NDArray[np.object_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(parcel, piece) index pairs whose interiors or boundaries meet, sorted."""
        shapely.prepare(geoms)
        idx = self._tree.query(geoms, predicate="intersects")
        order = np.lexsort((idx[1], idx[0]))
        return idx[0][order].astype(np.int64), idx[1][order].astype(np.int64)

    def _explode(self, pair_piece: NDArray[np.int64], urban: bool
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """For each pair, one row per effective kind of its piece: (pair index, kind index)."""
        offsets, flat = self._combo_urban if urban else self._combo_plain
        combo = self._piece_combo[pair_piece]
        counts = offsets[combo + 1] - offsets[combo]
        rep = np.repeat(np.arange(len(pair_piece), dtype=np.int64), counts)
        first = np.repeat(offsets[combo] - (np.cumsum(counts) - counts), counts)
        kind = flat[first + np.arange(len(rep), dtype=np.int64)]
        return rep, kind

    def overlaps(self, geoms: NDArray[np.object_], *, urban_construction: bool,
                 parcel_ellipsoidal: bool = False) -> Hits:
        """Overlap of each parcel geometry (working CRS) with each effective kind it covers.

        ``parcel_ellipsoidal`` also gives the parcels' own ellipsoidal areas, in one pass with the hits'.
        """
        n = len(geoms)
        pair_parcel, pair_piece = self._pairs(geoms)
        inter = self._intersections(geoms[pair_parcel], pair_piece)
        areas = shapely.area(inter)
        covered = np.bincount(pair_parcel, weights=areas, minlength=n).astype(np.float64)
        real = areas > NOISE_M2
        pair_parcel, pair_piece, inter, areas = pair_parcel[real], pair_piece[real], inter[real], areas[real]
        types = shapely.get_type_id(inter)
        for i in np.flatnonzero((types != 3) & (types != 6)):  # keep only the polygonal part
            inter[i] = polygonal_part(inter[i])
        rep, kind = self._explode(pair_piece, urban_construction)
        key = pair_parcel[rep] * len(self.kinds) + kind
        order = np.argsort(key, kind="stable")  # stable: pieces stay in index order inside a hit
        members = rep[order]
        key_sorted = key[order]
        change = np.empty(len(key_sorted), dtype=bool)
        change[:1] = True
        np.not_equal(key_sorted[1:], key_sorted[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        bounds = np.append(starts, len(key)).astype(np.int64)
        hit_parcel = pair_parcel[members[starts]]
        hit_geoms = self._hit_geometries(geoms, inter, areas, members, bounds, hit_parcel)
        parcel_ell: NDArray[np.float64] | None = None
        if parcel_ellipsoidal:  # one reprojection and ring walk for parcels and hits together
            ell = ellipsoidal_areas(np.concatenate([geoms, hit_geoms]), self.crs)
            parcel_ell, hit_ell = ell[:n], ell[n:]
        else:
            hit_ell = ellipsoidal_areas(hit_geoms, self.crs)
        return Hits(parcel=hit_parcel, kind=kind[order][starts], geometry=hit_geoms,
                    area=np.asarray(shapely.area(hit_geoms), dtype=np.float64),
                    ellipsoidal_area=hit_ell, member_bounds=bounds, member_piece=pair_piece[members],
                    covered=covered, parcel_ellipsoidal=parcel_ell)

    def _intersections(self, parcels: NDArray[np.object_], pieces: NDArray[np.int64]) -> NDArray[np.object_]:
        """parcel ∩ piece per pair, skipping the overlay where one contains the other outright."""
        piece_geoms = self._geoms[pieces]
        out = np.empty(len(pieces), dtype=object)
        # the parcels are prepared (see _pairs): a piece strictly inside its parcel is the overlap
        piece_inside = np.asarray(shapely.contains_properly(parcels, piece_geoms), dtype=bool)
        parcel_inside = np.zeros(len(pieces), dtype=bool)
        big = self._big[pieces] & ~piece_inside
        if big.any():  # big pieces were prepared when the Screener was built
            parcel_inside[big] = shapely.contains_properly(piece_geoms[big], parcels[big])
        out[piece_inside] = piece_geoms[piece_inside]
        out[parcel_inside] = parcels[parcel_inside]
        rest = ~(piece_inside | parcel_inside)
        out[rest] = shapely.intersection(parcels[rest], piece_geoms[rest])
        return out

    @staticmethod
    def _hit_geometries(geoms: NDArray[np.object_], inter: NDArray[np.object_], areas: NDArray[np.float64],
                        members: NDArray[np.int64], bounds: NDArray[np.int64],
                        hit_parcel: NDArray[np.int64]) -> NDArray[np.object_]:
        """One geometry per hit: the single overlap, the whole parcel when the kind covers all of it
        (no overlay needed: pieces are disjoint, so the areas add up), else the union of the overlaps."""
        out = np.empty(len(bounds) - 1, dtype=object)
        if len(out) == 0:
            return out
        sizes = np.diff(bounds)
        summed = np.add.reduceat(areas[members], bounds[:-1])
        whole = summed >= shapely.area(geoms[hit_parcel]) * (1 - 1e-9)
        single = (sizes == 1) & ~whole
        out[whole] = geoms[hit_parcel[whole]]
        out[single] = inter[members[bounds[:-1][single]]]
        for h in np.flatnonzero(~whole & ~single):
            out[h] = shapely.union_all(inter[members[bounds[h]:bounds[h + 1]]])
        return out

    # --- rules and verdicts -----------------------------------------------------------------------

    def outcomes(self, project_type: str) -> NDArray[np.int64]:
        """Per kind index: 0 forbidden, 1 conditional, 2 allowed for this project type."""
        return self._rule_table(project_type)[1].copy()

    def _rule_table(self, project_type: str) -> tuple[list[Rule], NDArray[np.int64]]:
        """Per kind index: the rule and its outcome code, built once per project type (rules are
        read-only; a race between two first requests only builds the same table twice)."""
        found = self._rules_by_type.get(project_type)
        if found is None:
            rules = [self.rules.rule(k.key, project_type) for k in self.kinds]
            found = (rules, np.asarray([OUTCOMES.index(r.outcome) for r in rules], dtype=np.int64))
            self._rules_by_type[project_type] = found
        return found

    def derives_outside(self, ptype: ProjectType) -> bool:
        """Whether 城镇开发边界外 is reported for ``ptype``: for urban construction types, and for any type
        the rules file gives a rule other than ``allowed`` there (a configured rule is never ignored)."""
        if not self._derive_outside:
            return False
        return ptype.urban_construction or self.rules.rule(OUTSIDE_URBAN, ptype.key).outcome != "allowed"

    def below_tolerance(self, area: NDArray[np.float64], ratio: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Overlaps below BOTH tolerances are never a conflict (they make a review at most)."""
        return (area < self.tolerance_m2) & (ratio < self.tolerance_ratio)

    @staticmethod
    def severity(outcome: NDArray[np.int64], below: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Per hit: 2 conflict (forbidden, above tolerance), 1 review (conditional, or forbidden
        below tolerance), 0 pass (allowed)."""
        sev = np.where(outcome == 0, 2, np.where(outcome == 1, 1, 0))
        return np.where((sev == 2) & below, 1, sev).astype(np.int64)

    def outside_area(self, parcel_area: NDArray[np.float64], covered: NDArray[np.float64]
                     ) -> NDArray[np.float64]:
        """Area of each parcel not covered by any piece, with float residue clamped to zero."""
        outside = np.maximum(parcel_area - covered, 0.0)
        residue = np.maximum(NOISE_M2, parcel_area * 1e-9)
        return np.where(outside <= residue, 0.0, outside)

    def _piece_features(self, piece: int, kind: str) -> tuple[str, ...]:
        """'layer:feature_id' of the sources of ``kind`` behind one piece (JSON parsed once, cached)."""
        by_kind = self._source_cache.get(piece)
        if by_kind is None:
            grouped: dict[str, set[str]] = defaultdict(set)
            for src in json.loads(self._sources[piece] or "[]"):
                grouped[str(src.get("kind"))].add(f"{src.get('layer', '')}:{src.get('feature_id', '')}")
            by_kind = self._source_cache[piece] = {k: tuple(sorted(v)) for k, v in grouped.items()}
        return by_kind.get(kind, ())

    def feature_ids(self, pieces: Iterable[int], kind: str) -> list[str]:
        """'layer:feature_id' of every source feature of ``kind`` behind the given pieces, sorted
        (plain code-point order: cheap and stable; natural order is kept for parcel ids only)."""
        parts = [self._piece_features(int(p), kind) for p in pieces]
        if len(parts) == 1:
            return list(parts[0])
        return sorted({f for part in parts for f in part})

    # --- input ------------------------------------------------------------------------------------

    def validated(self, frame: gpd.GeoDataFrame, source: str) -> gpd.GeoDataFrame:
        """Parcels in the blueprint CRS with unique string ids (not yet repaired)."""
        if "parcel_id" not in frame.columns:
            raise CheckError(f"{source}: the parcels have no 'parcel_id' column")
        if frame["parcel_id"].isna().any():
            raise CheckError(f"{source}: {int(frame['parcel_id'].isna().sum())} parcel(s) have no parcel_id")
        frame = to_work_crs(frame, self.crs, source=source)
        frame = frame.assign(parcel_id=frame["parcel_id"].astype(str))
        dup = frame["parcel_id"][frame["parcel_id"].duplicated()]
        if len(dup):
            raise DuplicateParcelIdError(
                f"{source}: parcel_id '{dup.iloc[0]}' is used by more than one parcel")
        return frame

    @staticmethod
    def input_hash(ids: list[str], geoms: NDArray[np.object_],
                   names: list[str | None] | None = None) -> str:
        """sha256 of the submitted parcels, normalised: natural id order, normalised 2-D WKB, and the
        parcel names the result repeats (so a renamed parcel is a new submission, not an id clash)."""
        digest = hashlib.sha256()
        for i in sorted(range(len(ids)), key=lambda i: natural_key(ids[i])):
            geom = geoms[i]
            wkb = b"" if geom is None or geom.is_empty else shapely.to_wkb(
                shapely.normalize(geom), output_dimension=2, byte_order=1)
            name = names[i] if names is not None else None
            named = b"\1" + name.encode() + b"\0" if name else b""
            digest.update(ids[i].encode() + b"\0" + wkb + b"\0" + named)
        return digest.hexdigest()

    def check_id(self, input_hash: str, project_type: str, extra: str = "") -> str:
        """'chk_' + sha256(input hash, project type, version, tolerances, rules[, declared values and check
        date])[:16]: same input, same id."""
        key = (f"{input_hash}\0{project_type}\0{self.version}\0{self.tolerance_m2!r}"
               f"\0{self.tolerance_ratio!r}\0{self._rules_digest}" + (f"\0{extra}" if extra else ""))
        return "chk_" + hashlib.sha256(key.encode()).hexdigest()[:16]

    # --- one submission ---------------------------------------------------------------------------

    def screen(self, parcels: ParcelSet, project_type: str, check_id: str | None = None, *,
               declared: Declared | None = None, check_date: dt.date | None = None) -> dict[str, Any]:
        """Screen one submission; the result contract of issue #4 (see docs), with each parcel's planning
        ``conditions`` against ``declared`` values and its ``assessments`` valid on ``check_date``
        (default today) — the contract of :mod:`checks.conditions`."""
        declared = declared or Declared()
        check_date = check_date or dt.date.today()
        ptype = self.rules.require_project_type(project_type)
        if parcel_count(parcels) == 0:
            raise NoParcelsError(f"{parcels.source}: no parcels to screen")
        given = submitted(parcels, self.crs, self._is_work_crs)
        input_hash = self.input_hash(given.ids, given.geoms, given.names)
        # the result states its check date (assessment validity depends on it) and the declared values
        varies = check_date.isoformat() + ("\0" + json.dumps(declared.as_dict(), sort_keys=True)
                                           if declared.any() else "")
        check_id = check_id or self.check_id(input_hash, ptype.key, varies)
        clean, repairs = repaired(given, parcels.source)
        if not clean.ids:
            raise NoParcelsError(f"{parcels.source}: no parcel has any area left after repair")
        area = shapely.area(clean.geoms).astype(np.float64)
        if self._leaves_extent(clean.geoms, area):  # refused before the overlaps are built (a country: 220 s)
            self._require_inside(clean.ids, area, self.covered_area(clean.geoms), parcels.source,
                                 geoms=clean.geoms, crs_in=parcels.crs_in,
                                 offset_undone=parcels.offset_undone)
        hits = self.overlaps(clean.geoms, urban_construction=self.derives_outside(ptype),
                             parcel_ellipsoidal=True)
        self._require_inside(clean.ids, area, hits.covered, parcels.source,  # in the working plane
                             geoms=clean.geoms, crs_in=parcels.crs_in, offset_undone=parcels.offset_undone)
        zones = plane_zones(clean.geoms, self.crs, parcels.declared_zone)
        if zones.foreign.any():  # parcels outside the working zone: plane areas in their own zone
            area = zone_areas(clean.geoms, self.crs, zones)
            hits.area = zone_areas(hits.geometry, self.crs, zones, owner=hits.parcel)
        extra = self.conditions.evaluate(clean.geoms, area, zones, declared, check_date, self.below_tolerance)
        result = self._assemble(clean, area, hits, ptype, check_id, [*parcels.repairs, *repairs], zones,
                                extra)
        result["input_hash"] = input_hash
        result["check_date"] = check_date.isoformat()
        if declared.any():
            result["declared"] = declared.as_dict()
        return result

    def _leaves_extent(self, geoms: NDArray[np.object_], area: NDArray[np.float64]) -> bool:
        """Whether a parcel lies beyond the tolerance outside the pieces' bounding box: then it lies at least
        that far outside the city too (the box holds the city), whatever the overlaps would say."""
        if len(self._geoms) == 0:
            return False
        beyond = self.outside_area(area, shapely.area(shapely.clip_by_rect(geoms, *self._extent)))
        return bool(np.any((beyond > 0) & ~self.below_tolerance(beyond, beyond / area)))

    def covered_area(self, geoms: NDArray[np.object_]) -> NDArray[np.float64]:
        """Per parcel, the area the pieces cover (:meth:`overlaps`' ``covered``) without building the hits:
        all that telling whether parcels leave the city needs."""
        pair_parcel, pair_piece = self._pairs(geoms)
        areas = shapely.area(self._intersections(geoms[pair_parcel], pair_piece))
        return np.bincount(pair_parcel, weights=areas, minlength=len(geoms)).astype(np.float64)

    def _is_work_crs(self, crs: CRS) -> bool:
        """Whether ``crs`` is this Screener's CRS (asked once per CRS object: pyproj's equals is slow)."""
        known = self._same_crs.get(id(crs))
        if known is None or known[0] is not crs:
            known = self._same_crs[id(crs)] = (crs, crs is self.crs or crs.equals(self.crs,
                                                                                  ignore_axis_order=True))
        return known[1]

    def _require_inside(self, ids: list[str], area: NDArray[np.float64],
                        covered: NDArray[np.float64], source: str, *,
                        geoms: NDArray[np.object_] | None = None, crs_in: str = "",
                        offset_undone: str | None = None) -> None:
        outside = self.outside_area(area, covered)
        bad = np.flatnonzero((outside > 0) & ~self.below_tolerance(outside, outside / area))
        if len(bad):
            i = bad[0]
            pid = ids[i]
            more = f" (and {len(bad) - 1} more parcel(s))" if len(bad) > 1 else ""
            # declared GCJ-02 / BD-09 was undone on reading already: undoing an offset again would screen
            # them twice more (22 s of a 40 s check of a district) to suggest what was declared
            if geoms is not None and lonlat_input(crs_in) and offset_undone is None:
                self._refuse_web_map_offset(geoms[bad], outside[bad], [ids[b] for b in bad], source)
            raise ParcelOutsideCityError(
                f"{source}: parcel {pid} lies {outside[i]:.2f} m² ({outside[i] / area[i]:.2%}) outside the "
                f"city extent of blueprint {self.version}{more}")

    def _refuse_web_map_offset(self, geoms: NDArray[np.object_], outside: NDArray[np.float64],
                               ids: list[str], source: str) -> None:
        """Parcels given in longitude/latitude that leave the city: if undoing a web map's offset
        (GCJ-02, BD-09) brings every one of them (nearly) inside, they were read in the wrong datum."""
        for offset in OFFSET_DATUMS:
            lonlat = reproject(geoms, self.crs, CGCS2000)
            moved = reproject(undo_offset(lonlat, offset), CGCS2000, self.crs)
            left = self.outside_area(shapely.area(moved), self.covered_area(moved))
            if np.all(left <= 0.1 * outside):
                raise WebMapOffsetError(
                    f"{source}: parcel {ids[0]} lies {outside[0]:.2f} m² outside the city extent of "
                    f"blueprint {self.version}, but moved from {OFFSET_DATUMS[offset]} to WGS 84 it lies "
                    f"{left[0]:.2f} m² outside: the longitude/latitude look like {offset} read as WGS 84. "
                    f"Declare the CRS as {offset} (CLI: --crs {offset}) to convert them exactly")

    def _assemble(self, parcels: Submitted, area: NDArray[np.float64], hits: Hits, ptype: ProjectType,
                  check_id: str, repairs: list[Repair], zones: PlaneZones | None = None,
                  extra: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] | None = None
                  ) -> dict[str, Any]:
        """Build the result dict: parcels in natural id order, hits by severity then kind order."""
        rules, outcomes = self._rule_table(ptype.key)
        outcome = outcomes[hits.kind]
        ratio = hits.area / area[hits.parcel] if len(hits.area) else np.zeros(0)
        below = self.below_tolerance(hits.area, ratio)
        sev = self.severity(outcome, below)
        geoms = parcels.geoms
        out_geo = geojson_all(np.concatenate([geoms, hits.geometry]), self.crs)
        ell = hits.parcel_ellipsoidal if hits.parcel_ellipsoidal is not None else ellipsoidal_areas(
            geoms, self.crs)
        by_parcel: dict[int, list[int]] = defaultdict(list)
        for h in np.lexsort((hits.kind, outcome, hits.parcel)):
            by_parcel[int(hits.parcel[h])].append(int(h))
        repairs_by_id: dict[str, list[dict[str, str]]] = defaultdict(list)
        for r in repairs:
            repairs_by_id[r.feature_id].append(r.as_dict())
        tolerance = {"m2": self.tolerance_m2, "ratio": self.tolerance_ratio}
        label = (ptype.name_zh, ptype.name_en)
        work_label = self._crs_label
        entries = []
        for i, pid in enumerate(parcels.ids):
            conflicts = [self._hit_entry(hits, h, rules[int(hits.kind[h])], ratio[h], below[h],
                                         out_geo[len(geoms) + h])
                         for h in by_parcel.get(i, [])]
            worst = max((int(sev[h]) for h in by_parcel.get(i, [])), default=0)
            conditions, assessments = extra[i] if extra is not None else ([], [])
            if any(c["outcome"] == "conflict" for c in conditions):
                worst = 2  # a breached planning condition is a conflict
            entry: dict[str, Any] = {
                "parcel_id": pid, "area_m2": rounded(area[i], AREA_DECIMALS),
                "ellipsoidal_area_m2": rounded(ell[i], AREA_DECIMALS), "verdict": VERDICTS[worst],
                "conflicts": conflicts, "repairs": repairs_by_id.pop(pid, []),
            }
            if zones is not None:
                entry["plane_zone"] = zones.describe(i, work_label)
            if parcels.names[i]:
                entry["name"] = parcels.names[i]
            if extra is not None:
                entry["conditions"], entry["assessments"] = conditions, assessments
            entry["explanation_zh"], entry["explanation_en"] = explain_parcel(entry, label, tolerance)
            if conditions:
                zh, en = explain_conditions(conditions)
                entry["explanation_zh"] += zh
                entry["explanation_en"] += " " + en
            entry["geometry"] = out_geo[i]
            entries.append(entry)
        verdict = VERDICTS[max(VERDICTS.index(e["verdict"]) for e in entries)]
        zh, en = explain_submission(verdict, entries, self.version, label)
        return {
            "check_id": check_id, "blueprint_version": self.version, "project_type": ptype.key,
            "verdict": verdict, "parcels": entries, "tolerance": tolerance,
            # repairs of parcels that were dropped (empty, collapsed) and so have no entry above
            "repairs": [r for rs in repairs_by_id.values() for r in rs],
            "explanation_zh": zh, "explanation_en": en,
            "project_type_group": ptype.group_key,
            # which policy this verdict applied (the rules file's own version and effective date)
            "rules": self.rules.meta.as_dict(),
            "requirements": collect_requirements(entries),
        }

    def _hit_entry(self, hits: Hits, h: int, rule: Rule, ratio: float, below: bool,
                   geometry: Any) -> dict[str, Any]:
        """One element of a parcel's ``conflicts``: kind, rule, areas, sources, geometry."""
        label = self.kinds[int(hits.kind[h])]
        pieces = hits.member_piece[hits.member_bounds[h]:hits.member_bounds[h + 1]]
        return {
            "kind": label.key, "name_zh": label.name_zh, "name_en": label.name_en,
            "rule": rule.outcome,
            "overlap_area_m2": rounded(hits.area[h], AREA_DECIMALS),
            "overlap_ellipsoidal_area_m2": rounded(hits.ellipsoidal_area[h], AREA_DECIMALS),
            "overlap_ratio": rounded(ratio, RATIO_DECIMALS),
            "feature_ids": self.feature_ids((int(p) for p in pieces), label.key),
            "geometry": geometry,
            "below_tolerance": bool(below),
            "regulation": rule.regulation.as_dict(),
            # what the applicant must provide or obtain (conditional rules only; empty otherwise)
            "requirements": [r.as_dict() for r in rule.requirements],
            "piece_ids": sorted({str(self._piece_ids[p]) for p in pieces}),  # fixed-width ids
        }
