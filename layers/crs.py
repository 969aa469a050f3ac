"""layers.crs: the one place coordinate reference systems are decided.

Storage CRS (also at province scale, spanning several 3° zones): one projected working CRS, a single 3°
Gauss-Krüger zone (default EPSG:4548, CM 117°E — the middle of Anhui's zones 38/39/40). Blueprints are
merged, snap-rounded to 1 mm and stored in it and never reprojected (a reprojected coverage loses
validity where edges bend; degrees have no 1 mm grid). Areas are taken per piece or parcel in its own 3°
zone (``layers.areas``), ellipsoidal areas on CGCS2000 remain the reference; measurements in
docs/architecture.md ("Storage CRS and areas at province scale").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from layers.errors import (
    CoordinatesOutOfRangeError,
    CRSConflictError,
    CRSError,
    CRSMismatchError,
    CRSMissingError,
    OldDatumError,
)

CGCS2000 = CRS.from_epsg(4490)  # geographic, lon/lat on the CGCS2000 ellipsoid
OUTPUT_CRS = CRS.from_epsg(4326)  # RFC 7946 GeoJSON, applied at the edge only
DEFAULT_WORK_EPSG = 4548  # CGCS2000 / 3-degree Gauss-Kruger CM 117E, no zone prefix (Tongling)


# the offset datums of Chinese web maps: longitude/latitude on WGS 84, shifted by an obfuscation
OFFSET_DATUMS = {"GCJ02": "GCJ-02 (高德/腾讯 web maps)", "BD09": "BD-09 (百度 web maps)"}


class OffsetCRS(CRS):
    """WGS 84 longitude/latitude as a Chinese web map shifts it (``offset`` "GCJ02" or "BD09").

    Read as declared with ``--crs GCJ02`` / ``--crs BD09``: the reader undoes the shift exactly
    (:func:`undo_offset`) and goes on with plain EPSG:4326.
    """

    offset: str = ""

    @classmethod
    def named(cls, offset: str) -> OffsetCRS:
        crs = cls("EPSG:4326")
        crs.offset = offset
        return crs


def offset_name(value: object) -> str | None:
    """'GCJ02' or 'BD09' for the many ways to write them (GCJ-02, gcj_02, BD-09...), else None."""
    if isinstance(value, OffsetCRS):
        return value.offset
    if not isinstance(value, str):
        return None
    key = value.upper().replace("-", "").replace("_", "").replace(" ", "")
    return key if key in OFFSET_DATUMS else None


def parse_crs(value: str | int | CRS) -> CRS:
    """A CRS from 'EPSG:4548', 4548, a WKT, a pyproj CRS, or 'GCJ02' / 'BD09' (an :class:`OffsetCRS`);
    a clear error otherwise."""
    offset = offset_name(value)
    if offset is not None:
        return value if isinstance(value, OffsetCRS) else OffsetCRS.named(offset)
    try:
        return CRS.from_user_input(value)
    except Exception as exc:
        raise CRSError(f"not a coordinate reference system: {value!r}; use an EPSG code such as "
                       "EPSG:4490, a WKT, or GCJ02 / BD09 for coordinates from Chinese web maps") from exc


def require_projected(crs: CRS) -> CRS:
    """The working CRS must be projected so areas and tolerances are in metres."""
    if not crs.is_projected:
        raise CRSError(f"working CRS must be projected (metres), got {crs.to_string()}")
    return crs


def crs_label(crs: CRS | None) -> str:
    """'EPSG:4548' where an EPSG code is known, else the CRS name."""
    if crs is None:
        return "none"
    epsg = crs.to_epsg(min_confidence=70)
    return f"EPSG:{epsg}" if epsg else crs.name


def to_work_crs(frame: gpd.GeoDataFrame, work_crs: CRS, *, declared: CRS | None = None,
                source: str = "layer") -> gpd.GeoDataFrame:
    """Return ``frame`` reprojected into ``work_crs``.

    ``declared`` labels a frame that arrived without a CRS (set, not transform).
    A frame whose own CRS disagrees with ``declared`` is rejected.
    """
    require_projected(work_crs)
    if frame.crs is None:
        if declared is None:
            raise CRSMissingError(f"{source}: has no CRS and none was declared (pass --crs EPSG:N)")
        frame = frame.set_crs(declared)
    elif declared is not None and not same_crs(CRS.from_user_input(frame.crs), declared):
        raise CRSConflictError(
            f"{source}: the file says {crs_label(CRS.from_user_input(frame.crs))}, "
            f"the caller declared {crs_label(declared)}"
        )
    if CRS.from_user_input(frame.crs).equals(work_crs, ignore_axis_order=True):
        return frame.set_crs(work_crs, allow_override=True)
    return frame.to_crs(work_crs)


# pyproj transformers are not safe to share between threads (API request threads): one cache per thread
_local = threading.local()


def transformer(source: CRS, target: CRS) -> Transformer:
    """A cached always_xy transformer (what GeoDataFrame.to_crs builds), keyed by the defining strings;
    the one transformer cache of the core (layers.ingest and checks.areas use it)."""
    cache: dict[tuple[str, str], Transformer] | None = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (source.srs, target.srs)
    found = cache.get(key) if all(key) else None
    if found is None:
        found = Transformer.from_crs(source, target, always_xy=True)
        if all(key):
            cache[key] = found
    return found


# (source.srs, target.srs) -> the PROJ pipeline Transformer.from_crs chose for the pair (None: PROJ picks
# among several operations per coordinate), process-wide: the search is the slow part, not the pipeline
_pipelines: dict[tuple[str, str], str | None] = {}


def pipeline_transformer(source: CRS, target: CRS) -> Transformer:
    """The operation :func:`transformer` uses, rebuilt in each thread from its PROJ pipeline string.

    ``Transformer.from_crs`` searches PROJ's database in every thread that makes one: ≈ 40 ms of CPU for
    EPSG:4548 → 4326 (0.4 ms for 4548 → 4490), paid again by each of the API's worker threads (and by
    every geopandas ``to_crs``). The pipeline it chose is built in ≈ 0.2 ms with the same coordinates.
    For ``transform`` only: a pipeline carries no CRS, so ``transform_bounds`` needs :func:`transformer`.
    Where PROJ would pick among several operations per coordinate, this is :func:`transformer` itself.
    """
    cache: dict[tuple[str, str], Transformer] | None = getattr(_local, "pipelines", None)
    if cache is None:
        cache = _local.pipelines = {}
    key = (source.srs, target.srs)
    if not all(key):
        return transformer(source, target)
    found = cache.get(key)
    if found is None:
        if key not in _pipelines:  # a race makes two threads search once each; the answer is the same
            _pipelines[key] = _single_operation(transformer(source, target))
        definition = _pipelines[key]
        found = cache[key] = (transformer(source, target) if definition is None
                              else Transformer.from_pipeline(definition))
    return found


def _single_operation(tr: Transformer) -> str | None:
    """The PROJ pipeline of ``tr``; None when PROJ chooses the operation per coordinate (the definition
    then reads "unavailable until proj_trans is called")."""
    definition = tr.definition or ""
    return definition if definition.startswith("proj=") else None


def reproject_array(geoms: NDArray[np.object_], source: CRS, target: CRS) -> NDArray[np.object_]:
    """GeoSeries.to_crs on an array, always_xy, with the pipeline of :func:`pipeline_transformer`; Z is
    carried where present and missing geometries stay missing."""
    if source.equals(target, ignore_axis_order=True) or source.is_exact_same(target):
        return geoms
    tr = pipeline_transformer(source, target)
    out = np.empty_like(geoms)
    missing = np.asarray(shapely.is_missing(geoms), dtype=bool)
    has_z = np.asarray(shapely.has_z(geoms), dtype=bool)
    for z, rows in ((False, ~has_z & ~missing), (True, has_z & ~missing)):
        if rows.any():
            coords = shapely.get_coordinates(geoms[rows], include_z=z)
            moved = tr.transform(*(coords[:, i] for i in range(coords.shape[1])))
            out[rows] = shapely.set_coordinates(geoms[rows].copy(), np.array(moved).T)
    out[missing] = None
    return out


def assert_same_crs(a: gpd.GeoDataFrame | gpd.GeoSeries, b: gpd.GeoDataFrame | gpd.GeoSeries,
                    what: str = "frames") -> None:
    """Raise :class:`CRSMismatchError` unless both carry the same CRS. Never warns."""
    ca, cb = a.crs, b.crs
    if ca is None or cb is None or not CRS.from_user_input(ca).equals(cb, ignore_axis_order=True):
        raise CRSMismatchError(f"CRS mismatch between {what}: {crs_label(ca)} vs {crs_label(cb)}")


def output_geometries(geoms: NDArray[np.object_], crs: CRS) -> NDArray[np.object_]:
    """``geoms`` (in ``crs``) in EPSG:4326 with RFC 7946 ring orientation: exteriors counter-clockwise,
    holes clockwise (the GeoJSON edge; :func:`to_output` for frames)."""
    return np.asarray(shapely.orient_polygons(reproject_array(geoms, crs, OUTPUT_CRS), exterior_cw=False),
                      dtype=object)


def to_output(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> gpd.GeoDataFrame | gpd.GeoSeries:
    """Reproject to EPSG:4326 for GeoJSON output (the edge only), with RFC 7946 ring orientation:
    exteriors counter-clockwise, holes clockwise (areas are unchanged; only the vertex order turns)."""
    if frame.crs is None:
        return frame.to_crs(OUTPUT_CRS)  # geopandas' own error for a frame without a CRS
    # not frame.to_crs: it builds a Transformer per call (≈ 40 ms for the working CRS → 4326)
    source = CRS.from_user_input(frame.crs)
    geoms = np.asarray(frame.geometry.values if isinstance(frame, gpd.GeoDataFrame) else frame.values,
                       dtype=object)
    oriented = output_geometries(geoms, source)
    if isinstance(frame, gpd.GeoSeries):
        return gpd.GeoSeries(oriented, index=frame.index, crs=OUTPUT_CRS, name=frame.name)
    out = frame.copy()
    out[out.geometry.name] = gpd.GeoSeries(oriented, index=out.index, crs=OUTPUT_CRS)
    return out.set_crs(OUTPUT_CRS, allow_override=True)


# ---------------------------------------------------------------- Gauss-Krüger zones and coordinate sanity

ZONE_FACTOR = 1_000_000.0  # a zone prefix adds zone × 10^6 to the easting: 39 500 000 = zone 39, x 500 000
CHINA_LON = (73.0, 136.0)
CHINA_LAT = (3.0, 54.0)
CHINA_NORTHING = (300_000.0, 6_100_000.0)  # GK northings of latitudes 3..54
MERCATOR_X = (8_100_000.0, 15_200_000.0)  # EPSG:3857 eastings of longitudes 73..136
MERCATOR_Y = (330_000.0, 7_200_000.0)  # EPSG:3857 northings of latitudes 3..54
GK_HALF_SPAN_M = 400_000.0  # an easting further than this from 500 km is outside any GK zone in China
PREFIXED_HALF_SPAN_M = 340_000.0  # half a 6-degree zone at 18°N is 317 km; a prefixed easting stays inside


@dataclass(frozen=True)
class GaussKruger:
    """A transverse-Mercator CRS read from its parameters (works for EPSG codes and .prj WKT alike)."""

    central_meridian: float
    false_easting: float
    zone_width: int  # 3 or 6 (from the central meridian; 3 when both fit)

    @property
    def prefix(self) -> int:
        """The zone number carried in the easting, 0 if the eastings are not prefixed."""
        return int(self.false_easting // ZONE_FACTOR)


def gk_epsg(zone_width: int, *, zone: int | None = None, central_meridian: float | None = None) -> int:
    """EPSG code of the CGCS2000 Gauss-Krüger CRS for a zone number (prefixed eastings) or a CM."""
    if zone_width == 3:
        if zone is not None:
            if not 25 <= zone <= 45:
                raise CRSError(f"3-degree zone {zone} is outside China (25..45)")
            return 4513 + zone - 25
        cm = round(central_meridian or 0)
        if cm % 3 or not 75 <= cm <= 135:
            raise CRSError(f"central meridian {central_meridian} is not a 3-degree CM in China (75..135)")
        return 4534 + (cm - 75) // 3
    if zone_width == 6:
        if zone is not None:
            if not 13 <= zone <= 23:
                raise CRSError(f"6-degree zone {zone} is outside China (13..23)")
            return 4491 + zone - 13
        cm = round(central_meridian or 0)
        if (cm - 75) % 6 or not 75 <= cm <= 135:
            raise CRSError(f"central meridian {central_meridian} is not a 6-degree CM in China (75..135)")
        return 4502 + (cm - 75) // 6
    raise CRSError(f"zone width must be 3 or 6, got {zone_width}")


ZONE3_RANGE = (25, 45)  # 3-degree zones over China: CM 75°E (zone 25) .. 135°E (zone 45)


def zone3_of_longitude(lon: NDArray[np.float64]) -> NDArray[np.int64]:
    """The 3-degree GK zone of each longitude: zone N spans CM 3N ± 1.5°."""
    return np.floor((np.asarray(lon, dtype=np.float64) + 1.5) / 3.0).astype(np.int64)


def zone3_of_crs(crs: CRS | None) -> int | None:
    """The 3-degree zone whose central meridian a GK CRS uses (prefixed or not), else None."""
    gk = gauss_kruger(crs) if crs is not None else None
    if gk is None or abs(gk.central_meridian / 3.0 - round(gk.central_meridian / 3.0)) > 1e-9:
        return None
    zone = round(gk.central_meridian / 3.0)
    return zone if ZONE3_RANGE[0] <= zone <= ZONE3_RANGE[1] else None


def zone3_crs(zone: int) -> CRS:
    """CGCS2000 3-degree GK CRS of a zone without the zone prefix (EPSG:4534..4554)."""
    return CRS.from_epsg(gk_epsg(3, central_meridian=3 * zone))


def own_zone3(frame: gpd.GeoDataFrame | gpd.GeoSeries) -> int | None:
    """The 3-degree zone of the centroid of all of ``frame``'s geometries, None outside China's zones."""
    if frame.crs is None or len(frame) == 0:
        return None
    centre = frame.geometry.union_all().centroid if isinstance(frame, gpd.GeoDataFrame) else \
        frame.union_all().centroid
    lon, _ = transformer(CRS.from_user_input(frame.crs), CGCS2000).transform(centre.x, centre.y)
    zone = int(zone3_of_longitude(np.asarray([lon]))[0])
    return zone if ZONE3_RANGE[0] <= zone <= ZONE3_RANGE[1] else None


def gauss_kruger(crs: CRS) -> GaussKruger | None:
    """The GK parameters of a transverse-Mercator CRS, or None for any other CRS."""
    op = crs.coordinate_operation
    if not crs.is_projected or op is None or "Transverse Mercator" not in op.method_name:
        return None
    params = {p.name: p.value for p in op.params}
    cm = float(params.get("Longitude of natural origin", 0.0))
    fe = float(params.get("False easting", 0.0))
    return GaussKruger(central_meridian=cm, false_easting=fe, zone_width=_zone_width(crs, cm, fe))


def _zone_width(crs: CRS, cm: float, fe: float) -> int:
    """3 or 6 degrees, from the prefix, the name or the area of use; 6 (the lenient check) if unsure.

    A CM such as 117°E is both a 3-degree and a 6-degree central meridian, so the CM alone cannot tell.
    """
    prefix = int(fe // ZONE_FACTOR)
    if prefix:
        return 6 if 13 <= prefix <= 23 else 3
    name = crs.name.lower().replace("_", "-")
    if "3-degree" in name:
        return 3
    area = crs.area_of_use
    if area is not None and area.east - area.west <= 3.5:
        return 3
    return 3 if round(cm) % 6 != 3 else 6


def _prefix_epsg(prefix: int) -> int | None:
    """CGCS2000 EPSG for an easting prefix: 25..45 are 3-degree zones, 13..23 are 6-degree zones."""
    if 25 <= prefix <= 45:
        return gk_epsg(3, zone=prefix)
    if 13 <= prefix <= 23:
        return gk_epsg(6, zone=prefix)
    return None


def _cm_epsg(central_meridian: float, zone_width: int) -> int | None:
    try:
        return gk_epsg(zone_width, central_meridian=central_meridian)
    except CRSError:
        return None


def _within(lo: float, hi: float, span: tuple[float, float]) -> bool:
    return span[0] <= lo and hi <= span[1]


def _looks_geographic_china(x: tuple[float, float], y: tuple[float, float]) -> bool:
    return _within(*x, CHINA_LON) and _within(*y, CHINA_LAT)


def _looks_swapped_geographic(x: tuple[float, float], y: tuple[float, float]) -> bool:
    return _within(*x, CHINA_LAT) and _within(*y, CHINA_LON)


def _looks_mercator(x: tuple[float, float], y: tuple[float, float]) -> bool:
    return _within(*x, MERCATOR_X) and _within(*y, MERCATOR_Y)


def _easting_kind(x: tuple[float, float]) -> tuple[str, int]:
    """('prefixed', zone) for 8-digit eastings of one zone, ('plain', 0) for ≈500 km, else ('other', 0)."""
    prefixes = {int(x[0] // ZONE_FACTOR), int(x[1] // ZONE_FACTOR)}
    if len(prefixes) == 1:
        prefix = prefixes.pop()
        inside = (500_000.0 - PREFIXED_HALF_SPAN_M, 500_000.0 + PREFIXED_HALF_SPAN_M)
        if _prefix_epsg(prefix) is not None and _within(x[0] % ZONE_FACTOR, x[1] % ZONE_FACTOR, inside):
            return "prefixed", prefix
    if _within(*x, (500_000.0 - GK_HALF_SPAN_M, 500_000.0 + GK_HALF_SPAN_M)):
        return "plain", 0
    return "other", 0


def _looks_projected_gk(x: tuple[float, float], y: tuple[float, float]) -> bool:
    return _easting_kind(x)[0] != "other" and _within(*y, CHINA_NORTHING)


def suggest_crs(bounds: tuple[float, float, float, float]) -> str:
    """What the coordinates look like, with the likely EPSG code(s), for help text."""
    minx, miny, maxx, maxy = bounds
    x, y = (minx, maxx), (miny, maxy)
    if _looks_geographic_china(x, y):
        return "they look like longitude/latitude degrees: CGCS2000 EPSG:4490 (or WGS 84 EPSG:4326)"
    if _looks_swapped_geographic(x, y):
        return ("they look like latitude/longitude with the axes swapped (x holds latitude): swap them, "
                "then EPSG:4490")
    if _looks_projected_gk(x, y):
        kind, prefix = _easting_kind(x)
        if kind == "prefixed":
            gk = (f"Gauss-Krüger metres with zone prefix {prefix} in the easting: "
                  f"EPSG:{_prefix_epsg(prefix)}")
            if _looks_mercator(x, y):  # 6-degree prefixes 13..15 overlap Web-Mercator eastings
                return f"they look like either Web-Mercator metres (EPSG:3857) or {gk}"
            return f"they look like {gk}"
        return ("they look like Gauss-Krüger metres without a zone prefix: a central-meridian CRS, "
                "e.g. EPSG:4548 for CM 117°E (Tongling), EPSG:4549 for CM 120°E")
    if _looks_projected_gk(y, x):
        return ("they look like Gauss-Krüger metres with X and Y swapped (surveying writes X = northing): "
                "swap the columns first")
    if _looks_mercator(x, y):
        return "they look like Web-Mercator metres: EPSG:3857"
    return "they match no CRS commonly used in China"


def _num(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.5f}"


def _bounds_text(bounds: tuple[float, float, float, float]) -> str:
    return f"x {_num(bounds[0])}..{_num(bounds[2])}, y {_num(bounds[1])}..{_num(bounds[3])}"


def diagnose_coordinates(bounds: tuple[float, float, float, float], crs: CRS, *,
                         source: str = "layer") -> list[str]:
    """Check that coordinates fit ``crs``; raise on a classic mistake, return notes otherwise.

    Raises :class:`CoordinatesOutOfRangeError` (lon/lat swapped, Web-Mercator metres labelled as
    degrees, GK eastings with/without a zone prefix that the CRS does not have, coordinates outside
    the declared zone) or :class:`CRSConflictError` (the easting prefix names another zone). The
    message names the source and the CRS and suggests the likely EPSG code.
    """
    if not all(np.isfinite(bounds)):
        return []  # an empty layer: nothing to check
    minx, miny, maxx, maxy = bounds
    x, y = (minx, maxx), (miny, maxy)
    label = crs_label(crs)
    where = f"{source} ({label}, {_bounds_text(bounds)})"
    if crs.is_geographic:
        return _diagnose_geographic(x, y, where)
    gk = gauss_kruger(crs)
    if gk is not None:
        return _diagnose_gk(x, y, gk, crs, where)
    if crs.to_epsg() == 3857 and (max(abs(minx), abs(maxx)) <= 180 and max(abs(miny), abs(maxy)) <= 90):
        raise CoordinatesOutOfRangeError(
            f"{where}: coordinates are degrees but labelled Web Mercator metres; "
            "declare EPSG:4490 (or EPSG:4326) instead")
    return []


def _diagnose_geographic(x: tuple[float, float], y: tuple[float, float], where: str) -> list[str]:
    if _looks_geographic_china(x, y):
        return []
    if _looks_swapped_geographic(x, y):
        raise CoordinatesOutOfRangeError(
            f"{where}: longitude and latitude are swapped (x looks like latitude 3..54, y like longitude "
            "73..136 in China); write x = longitude, y = latitude")
    if max(abs(x[0]), abs(x[1])) > 180 or max(abs(y[0]), abs(y[1])) > 90:
        if _looks_mercator(x, y):
            raise CoordinatesOutOfRangeError(
                f"{where}: coordinates are Web-Mercator metres labelled as degrees; "
                "the data is probably EPSG:3857")
        raise CoordinatesOutOfRangeError(
            f"{where}: coordinates are metres, not degrees; {suggest_crs((x[0], y[0], x[1], y[1]))}")
    return [f"{where}: coordinates lie outside China"]


def _diagnose_gk(x: tuple[float, float], y: tuple[float, float], gk: GaussKruger, crs: CRS,
                 where: str) -> list[str]:
    if max(abs(x[0]), abs(x[1])) <= 180 and max(abs(y[0]), abs(y[1])) <= 90:
        raise CoordinatesOutOfRangeError(
            f"{where}: coordinates are degrees but the CRS is Gauss-Krüger metres; "
            "the data is probably EPSG:4490")
    if _easting_kind(x)[0] == "other" and _within(*x, CHINA_NORTHING) and _easting_kind(y)[0] != "other":
        raise CoordinatesOutOfRangeError(
            f"{where}: X and Y are swapped (x holds northings, y eastings; Chinese surveying writes "
            "X = northing, Y = easting); swap the columns so that x = easting")
    kind, prefix = _easting_kind(x)
    if kind == "prefixed" and gk.prefix == 0:
        raise CoordinatesOutOfRangeError(
            f"{where}: eastings carry zone prefix {prefix} but the CRS has none; "
            f"the data is probably EPSG:{_prefix_epsg(prefix)}")
    if kind == "prefixed" and prefix != gk.prefix:
        raise CRSConflictError(
            f"{where}: eastings carry zone prefix {prefix} but the CRS is zone {gk.prefix}; "
            f"the data is probably EPSG:{_prefix_epsg(prefix)}")
    if kind == "plain" and gk.prefix:
        plain = _cm_epsg(gk.central_meridian, gk.zone_width)
        hint = f"EPSG:{plain}" if plain else f"the CM {gk.central_meridian:g}°E CRS without prefix"
        raise CoordinatesOutOfRangeError(
            f"{where}: eastings have no zone prefix but the CRS expects zone {gk.prefix} "
            f"(eastings near {gk.false_easting:,.0f}); the data is probably {hint}")
    return _check_inside_zone(x, y, gk, crs, where)


def _check_inside_zone(x: tuple[float, float], y: tuple[float, float], gk: GaussKruger, crs: CRS,
                       where: str) -> list[str]:
    """Eastings must fall within the zone's longitudes (half width plus a 0.5° overlap margin)."""
    to_geo = Transformer.from_crs(crs, crs.geodetic_crs or CGCS2000, always_xy=True)
    lons, lats = to_geo.transform(np.array([x[0], x[1], x[0], x[1]]), np.array([y[0], y[0], y[1], y[1]]))
    if not np.all(np.isfinite(lons)) or not np.all(np.isfinite(lats)):
        raise CoordinatesOutOfRangeError(f"{where}: coordinates cannot be located in the declared zone; "
                                         f"{suggest_crs((x[0], y[0], x[1], y[1]))}")
    offset = float(np.max(np.abs(lons - gk.central_meridian)))
    if offset > gk.zone_width / 2 + 0.5 or not _within(float(lats.min()), float(lats.max()), CHINA_LAT):
        west, east = float(lons.min()), float(lons.max())
        south, north = float(lats.min()), float(lats.max())
        raise CoordinatesOutOfRangeError(
            f"{where}: coordinates fall outside the declared zone (CM {gk.central_meridian:g}°E): "
            f"they would lie at {west:.2f}..{east:.2f}°E, {south:.2f}..{north:.2f}°N; "
            f"check the zone; {suggest_crs((x[0], y[0], x[1], y[1]))}")
    return []


# ---------------------------------------------------------------- old national datums

OLD_DATUMS = {"beijing1954": "Beijing 1954 (1954北京坐标系)", "newbeijing": "New Beijing (新1954北京坐标系)",
              "xian1980": "Xi'an 1980 (1980西安坐标系)"}
DatumParams = tuple[float, float, float, float, float, float, float]


def old_datum(crs: CRS) -> str | None:
    """The name of the old Chinese datum ``crs`` is on (Beijing 1954, New Beijing, Xi'an 1980), or None."""
    geodetic = crs.geodetic_crs
    datum = geodetic.datum.name if geodetic is not None and geodetic.datum is not None else ""
    key = datum.lower().replace("'", "").replace(" ", "").replace("_", "")
    return OLD_DATUMS.get(key)


def parse_datum_params(text: str) -> DatumParams:
    """Seven comma-separated numbers: dx, dy, dz (m), rx, ry, rz (arc-seconds), ds (ppm)."""
    try:
        values = tuple(float(v) for v in text.replace("，", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 7:
        raise CRSError(f"datum parameters must be 7 numbers dx,dy,dz,rx,ry,rz,ds (m, arc-seconds, ppm), "
                       f"got {text!r}")
    return (values[0], values[1], values[2], values[3], values[4], values[5], values[6])


def bind_datum_params(crs: CRS, params: DatumParams) -> CRS:
    """``crs`` bound to WGS 84 by a 7-parameter (position-vector) Helmert set (a PROJ BoundCRS)."""
    from pyproj.crs import BoundCRS
    from pyproj.crs.coordinate_operation import ToWGS84Transformation

    geodetic = crs.geodetic_crs or crs
    return BoundCRS(source_crs=crs, target_crs=CRS.from_epsg(4326),
                    transformation=ToWGS84Transformation(geodetic, *params))


def require_new_datum(crs: CRS, source: str, params: DatumParams | None = None) -> None:
    """CGCS2000 and WGS 84 pass; an old datum without its 7 parameters is refused in words."""
    datum = old_datum(crs)
    if datum is not None and params is None:
        raise OldDatumError(
            f"{source}: {crs_label(crs)} is on the {datum} datum. Without published transformation "
            "parameters it could only be moved to CGCS2000 by PROJ's ballpark (a zero shift, tens of metres "
            "off), so it is not read. Supply the 7-parameter set for your area (CLI: --datum-params "
            "dx,dy,dz,rx,ry,rz,ds in metres, arc-seconds and ppm, position-vector convention), or convert "
            "the file to CGCS2000 (EPSG:4490, 4513–4554) first")


def old_datum_to_cgcs2000(frame: gpd.GeoDataFrame, crs: CRS, params: DatumParams,
                          source: str = "layer") -> tuple[gpd.GeoDataFrame, str]:
    """Frame on an old datum moved to CGCS2000 longitude/latitude by the supplied Helmert set.

    PROJ applies a BoundCRS's parameters only towards WGS 84 (towards CGCS2000 it would take its
    ballpark), so the frame goes to EPSG:4326 with them and is then labelled EPSG:4490 (CGCS2000 and
    WGS 84 differ by centimetres).
    """
    tr = Transformer.from_crs(bind_datum_params(crs, params), OUTPUT_CRS, always_xy=True)
    if "Transformation" not in tr.description and "Helmert" not in tr.description:
        raise CRSError(f"{source}: PROJ found no way to apply the datum parameters to {crs_label(crs)}")

    def move(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    geoms = shapely.transform(np.asarray(frame.geometry.values, dtype=object), move)
    moved = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index), crs=CGCS2000)
    note = (f"{old_datum(crs)} → CGCS2000 by the supplied 7 parameters "
            f"({', '.join(f'{v:g}' for v in params)}; position vector)")
    return moved, note


def resolve_crs(file_crs: CRS | None, declared: CRS | None, *, implied: bool = False,
                bounds: tuple[float, float, float, float] | None = None,
                source: str = "layer", datum_params: DatumParams | None = None) -> tuple[CRS, list[str]]:
    """Decide the CRS of a source: the file's, else the declared one; notes say why.

    ``implied`` marks a CRS the format only assumes (GeoJSON without a ``crs`` member is EPSG:4326);
    a declared CRS overrides it. A file CRS that disagrees with a declared one is a conflict. Without
    either the error suggests what the coordinates look like. The chosen CRS is then checked against
    the coordinates with :func:`diagnose_coordinates`. A CRS on an old datum (Beijing 1954, Xi'an 1980)
    is refused unless ``datum_params`` are given (the reader then applies them with
    :func:`old_datum_to_cgcs2000`).
    """
    notes: list[str] = []
    if file_crs is None or (implied and declared is not None):
        if declared is None:
            hint = f"; {suggest_crs(bounds)}" if bounds is not None and all(np.isfinite(bounds)) else ""
            raise CRSMissingError(f"{source}: has no CRS and none was declared (pass --crs EPSG:N){hint}")
        chosen = declared
        notes.append(f"CRS {crs_label(declared)} as declared (the file states none)")
    elif declared is not None and not same_crs(file_crs, declared):
        misfit = _misfit(bounds, file_crs, source) if bounds is not None else None
        if misfit is None or _misfit(bounds, declared, source) is not None:
            raise CRSConflictError(f"{source}: the file says {crs_label(file_crs)}, "
                                   f"the caller declared {crs_label(declared)}")
        # a wrong .prj is common; the declared CRS wins only where the coordinates prove the file wrong
        chosen = declared
        notes.append(f"CRS {crs_label(declared)} as declared, overriding the file's {crs_label(file_crs)} "
                     f"that the coordinates do not fit ({misfit})")
    else:
        chosen = file_crs
        notes.append(f"CRS {crs_label(file_crs)} {'assumed by the format' if implied else 'from the file'}")
    if bounds is not None:
        notes.extend(diagnose_coordinates(bounds, chosen, source=source))
    require_new_datum(chosen, source, datum_params)
    return chosen, notes


def _misfit(bounds: tuple[float, float, float, float] | None, crs: CRS, source: str) -> str | None:
    """Why the coordinates do not fit ``crs``, or None if they do."""
    if bounds is None:
        return None
    try:
        diagnose_coordinates(bounds, crs, source=source)
    except CRSError as exc:
        return exc.user_message
    return None


def same_crs(a: CRS, b: CRS) -> bool:
    """Equal CRSs, also when one comes from a .prj WKT and the other from an EPSG code."""
    if a.equals(b, ignore_axis_order=True):
        return True
    epsg_a, epsg_b = a.to_epsg(min_confidence=70), b.to_epsg(min_confidence=70)
    return epsg_a is not None and epsg_a == epsg_b
