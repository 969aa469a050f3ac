"""layers.bubiao: read and write the ministry 部标 coordinate TXT (建设用地报批 / 勘测定界 exchange)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from layers.crs import gk_epsg
from layers.errors import (
    CRSConflictError,
    CRSError,
    CRSMissingError,
    EncodingError,
    GeometryTypeError,
    UnreadableLayerError,
)

# Section markers and the parcel header layout fixed by the standard.
ATTR_SECTION = "[属性描述]"
COORD_SECTION = "[地块坐标]"
PARCEL_FIELDS = ("界址点数", "地块面积", "地块编号", "地块名称", "图形属性", "图幅号", "地块用途", "地类编码")
FRAME_COLUMNS = ("parcel_id", "name", "use", "land_code", "declared_area", "sheet", "geometry")
DECIMALS = 4  # the standard's 精度=0.0001 (0.1 mm); the writer prints exactly this many decimals
ZONE_FACTOR = 1_000_000.0  # a zone prefix is the zone number times 10^6 added to the easting

DEFAULT_HEADER: dict[str, str] = {
    "格式版本号": "1.01版本",
    "数据产生单位": "",
    "数据产生日期": "",
    "坐标系": "2000国家大地坐标系",
    "几度分带": "3",
    "投影类型": "高斯克吕格",
    "计量单位": "米",
    "带号": "",
    "精度": "0.0001",
    "转换参数": ",,,,,,",
}


class BubiaoError(UnreadableLayerError):
    """A 部标 coordinate file that does not follow the standard; the message names the line."""

    code = "bubiao_invalid"


class BubiaoHeaderError(BubiaoError):
    code = "bubiao_missing_header"


class BubiaoNumberError(BubiaoError):
    code = "bubiao_bad_number"


class BubiaoPointCountError(BubiaoError):
    code = "bubiao_point_count"


class BubiaoRingError(BubiaoError):
    """A ring that is not closed or has fewer than three distinct points."""

    code = "bubiao_bad_ring"


class BubiaoUnclosedRingError(BubiaoRingError):
    code = "bubiao_unclosed_ring"


class BubiaoTooFewPointsError(BubiaoRingError):
    code = "bubiao_too_few_points"


@dataclass
class BubiaoFile:
    """A parsed 部标 file: one row per parcel, the CRS the header and coordinates imply, the header.

    ``frame`` columns: parcel_id, name, use (地块用途), land_code (地类编码), declared_area
    (地块面积 as written, in 公顷 hectares per the standard; NaN if blank), sheet (图幅号),
    geometry (in ``crs``).
    """

    frame: gpd.GeoDataFrame
    crs: CRS
    header: dict[str, str] = field(default_factory=dict)


@dataclass
class _Parcel:
    line_no: int
    fields: list[str]
    points: list[tuple[int, str, int, float, float]] = field(default_factory=list)  # line, 点号, 圈号, X, Y


# ---------------------------------------------------------------- CRS from header


def _datum(header: dict[str, str]) -> str:
    """'cgcs2000', 'beijing1954' or 'xian1980' as the header's 坐标系 names it, else the name as given."""
    name = header.get("坐标系", "").replace(" ", "")
    if not name or "2000" in name or "CGCS" in name.upper():
        return "cgcs2000"
    if "54" in name or "北京" in name:
        return "beijing1954"
    if "80" in name or "西安" in name:
        return "xian1980"
    return name


def central_meridian(zone_width: int, zone: int) -> int:
    """Central meridian of a GK zone: 3-degree zone N → 3N; 6-degree zone N → 6N − 3."""
    return 3 * zone if zone_width == 3 else 6 * zone - 3


def _int_field(header: dict[str, str], key: str, source: str) -> int | None:
    raw = header.get(key, "").strip()
    if not raw:
        return None
    match = re.match(r"^(\d+)", raw)
    if not match:
        raise BubiaoHeaderError(f"{source}: [属性描述] {key}={raw!r} is not a whole number")
    return int(match.group(1))


# first EPSG code of the old-datum GK systems: (datum, zone width, prefixed) → (code, first zone)
OLD_DATUM_GK = {("beijing1954", 3, True): (2401, 25), ("beijing1954", 3, False): (2422, 25),
                ("xian1980", 3, True): (2349, 25), ("xian1980", 3, False): (2370, 25),
                ("beijing1954", 6, True): (21413, 13), ("beijing1954", 6, False): (21473, 13),
                ("xian1980", 6, True): (2327, 13), ("xian1980", 6, False): (2338, 13)}


def _old_datum_gk(datum: str, width: int, zone: int, prefixed: bool, source: str) -> CRS:
    """The Beijing 1954 / Xi'an 1980 GK CRS of a zone (read; layers.crs then asks for the parameters)."""
    first, first_zone = OLD_DATUM_GK[(datum, width, prefixed)]
    if not 0 <= zone - first_zone <= 20 or (width == 6 and zone - first_zone > 10):
        raise CRSError(f"{source}: {width}-degree zone {zone} is outside China")
    return CRS.from_epsg(first + zone - first_zone)


def crs_from_header(header: dict[str, str], sample_easting: float, source: str = "部标 file") -> CRS:
    """Decide the CRS: 几度分带 + 带号 from the header, prefixed or not as the eastings show.

    1954北京 / 1980西安 files get their old-datum GK CRS; reading them on needs the datum parameters
    (layers.crs.require_new_datum refuses them otherwise)."""
    datum = _datum(header)
    if datum not in ("cgcs2000", "beijing1954", "xian1980"):
        raise CRSError(f"{source}: 坐标系={header.get('坐标系')} is not supported; "
                       "2000国家大地坐标系 (CGCS2000), 1954北京坐标系 and 1980西安坐标系 are read")
    width = _int_field(header, "几度分带", source) or 3
    if datum != "cgcs2000":
        zone = _int_field(header, "带号", source)
        prefix = int(abs(sample_easting) // ZONE_FACTOR)
        if not (prefix or zone):
            raise CRSMissingError(f"{source}: eastings have no zone prefix and the header gives no 带号")
        return _old_datum_gk(datum, width, prefix or zone or 0, bool(prefix), source)
    zone = _int_field(header, "带号", source)
    prefix = int(abs(sample_easting) // ZONE_FACTOR)
    try:
        if prefix:  # eastings carry the zone number, e.g. 39512345.678
            if zone is not None and zone != prefix:
                raise CRSConflictError(
                    f"{source}: header says 带号={zone} but eastings carry zone prefix {prefix}")
            return CRS.from_epsg(gk_epsg(width, zone=prefix))
        if zone is None:
            raise CRSMissingError(f"{source}: eastings have no zone prefix and the header gives no 带号; "
                                  "the central meridian cannot be known")
        return CRS.from_epsg(gk_epsg(width, central_meridian=central_meridian(width, zone)))
    except CRSError as exc:
        if exc.user_message.startswith(source):
            raise
        # gk_epsg's message names neither the file nor the column the zone came from
        told = zone if zone is not None else "(none)"
        raise type(exc)(f"{source}: 几度分带={width}, 带号={told}, Y (easting) {sample_easting:.1f}: "
                        f"{exc.user_message}; the 部标 format writes X = northing, "
                        "Y = easting, so check the header and whether the X and Y columns are swapped"
                        ) from exc


def _gk_parameters(crs: CRS) -> tuple[int, int, float] | None:
    """(zone width, zone, false-easting prefix offset) of a CGCS2000 GK EPSG code, else None."""
    epsg = crs.to_epsg() or 0
    if 4513 <= epsg <= 4533:
        zone = epsg - 4513 + 25
        return 3, zone, zone * ZONE_FACTOR
    if 4534 <= epsg <= 4554:
        return 3, (75 + 3 * (epsg - 4534)) // 3, 0.0
    if 4491 <= epsg <= 4501:
        zone = epsg - 4491 + 13
        return 6, zone, zone * ZONE_FACTOR
    if 4502 <= epsg <= 4512:
        return 6, (75 + 6 * (epsg - 4502) + 3) // 6, 0.0
    return None


# ---------------------------------------------------------------- reading


def decode_bytes(data: bytes, encoding: str | None, source: str) -> tuple[str, str]:
    """Text and encoding used: the declared one, else strict UTF-8, else GB18030 (a GBK superset)."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError) as exc:
            raise EncodingError(f"{source}: cannot decode as {encoding}: {exc}") from exc
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise EncodingError(f"{source}: neither UTF-8 nor GBK/GB18030 text: {exc}") from exc


def _load(source: Path | str | bytes, encoding: str | None) -> tuple[str, str]:
    """(text, source label); a str holding the section marker or newlines is text, not a path."""
    if isinstance(source, bytes):
        return decode_bytes(source, encoding, "部标 text")[0], "部标 text"
    if isinstance(source, str) and (ATTR_SECTION in source or COORD_SECTION in source or "\n" in source):
        return source, "部标 text"
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableLayerError(f"{path.name}: cannot read: {exc.strerror or exc}") from exc
    return decode_bytes(data, encoding, path.name)[0], path.name


def _number(raw: str, what: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise BubiaoNumberError(f"{where}: {what} {raw.strip()!r} is not a number") from None
    if not np.isfinite(value):
        raise BubiaoNumberError(f"{where}: {what} {raw.strip()!r} is not a finite number")
    return value


def _split_sections(lines: list[str], source: str) -> tuple[dict[str, str], int]:
    """Header key=values and the index of the first line after [地块坐标]."""
    stripped = [ln.strip() for ln in lines]
    if COORD_SECTION not in stripped:
        raise BubiaoHeaderError(f"{source}: no {COORD_SECTION} section; not a 部标 coordinate file")
    coord_at = stripped.index(COORD_SECTION)
    if ATTR_SECTION not in stripped[:coord_at]:
        raise BubiaoHeaderError(f"{source}: no {ATTR_SECTION} block before {COORD_SECTION} "
                                f"(line {coord_at + 1})")
    header: dict[str, str] = {}
    for text in stripped[stripped.index(ATTR_SECTION) + 1:coord_at]:
        if "=" in text:
            key, _, value = text.partition("=")
            header[key.strip()] = value.strip()
    return header, coord_at + 1


def _parcels(lines: list[str], start: int, source: str) -> Iterator[_Parcel]:
    """Group the coordinate section into parcels: a header line ending in '@' then its point lines."""
    current: _Parcel | None = None
    for idx in range(start, len(lines)):
        text = lines[idx].strip()
        line_no = idx + 1
        if not text:
            continue
        if text.endswith("@"):
            if current is not None:
                yield current
            current = _Parcel(line_no, [f.strip() for f in text[:-1].rstrip(",").split(",")])
            continue
        if current is None:
            raise BubiaoHeaderError(f"{source} line {line_no}: point line before any parcel header "
                                    "(a line ending in '@')")
        parts = [p.strip() for p in text.split(",")]
        where = f"{source} line {line_no} (parcel {_field(current.fields, 2) or '?'})"
        if len(parts) != 4:
            raise BubiaoError(f"{where}: a point line needs 点号,圈号,X,Y; got {len(parts)} field(s)")
        ring = _number(parts[1], "圈号 (ring number)", where)
        if ring != int(ring) or ring < 1:
            raise BubiaoNumberError(f"{where}: 圈号 {parts[1]!r} must be a positive whole number")
        x = _number(parts[2], "X (northing)", where)
        y = _number(parts[3], "Y (easting)", where)
        current.points.append((line_no, parts[0], int(ring), x, y))
    if current is not None:
        yield current


def _field(fields: list[str], i: int) -> str:
    return fields[i] if i < len(fields) else ""


def _rings(parcel: _Parcel, where: str) -> list[np.ndarray]:
    """The closed rings of a parcel as (easting, northing) arrays, in file order."""
    rings: list[np.ndarray] = []
    order: list[int] = []
    by_ring: dict[int, list[tuple[int, str, int, float, float]]] = {}
    for point in parcel.points:
        if point[2] not in by_ring:
            order.append(point[2])
            by_ring[point[2]] = []
        elif order[-1] != point[2]:
            raise BubiaoRingError(f"{where} line {point[0]}: points of 圈号 {point[2]} are not contiguous")
        by_ring[point[2]].append(point)
    for ring_no in order:
        pts = by_ring[ring_no]
        xy = np.array([(p[4], p[3]) for p in pts], dtype=float)  # file has X=northing, Y=easting
        if len(xy) < 4:
            raise BubiaoTooFewPointsError(
                f"{where} 圈号 {ring_no} (lines {pts[0][0]}-{pts[-1][0]}): {len(xy)} point(s); "
                "a ring needs at least 3 distinct points plus the closing point")
        if not np.array_equal(xy[0], xy[-1]):
            raise BubiaoUnclosedRingError(
                f"{where} 圈号 {ring_no} (lines {pts[0][0]}-{pts[-1][0]}): ring is not closed; the last "
                f"point must repeat the first ({pts[0][1]})")
        if len(np.unique(xy[:-1], axis=0)) < 3:
            raise BubiaoTooFewPointsError(f"{where} 圈号 {ring_no} (line {pts[0][0]}): fewer than 3 "
                                          "distinct points")
        rings.append(xy)
    return rings


def _assemble(rings: list[np.ndarray]) -> BaseGeometry:
    """Ring 1 is an exterior; a later ring inside an exterior is its hole, otherwise a new part.

    The standard numbers rings but does not label holes, and multipart parcels list each part
    as its own ring, so containment decides.
    """
    shells: list[tuple[Polygon, list[np.ndarray]]] = []
    for xy in rings:
        ring_poly = Polygon(xy)
        host = next((i for i, (shell, _) in enumerate(shells)
                     if shell.contains(ring_poly.representative_point())), None)
        if host is None:
            shells.append((ring_poly, []))
        else:
            shells[host][1].append(xy)
    polys = [Polygon(shell.exterior.coords, holes) for shell, holes in shells]
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _parcel_row(parcel: _Parcel, source: str) -> dict[str, object]:
    fields = parcel.fields
    pid = _field(fields, 2)
    where = f"{source} line {parcel.line_no} (parcel {pid or '?'})"
    if len(fields) < 3:
        raise BubiaoError(f"{where}: parcel header needs at least 界址点数,地块面积,地块编号; got {fields}")
    count = _number(fields[0], "界址点数 (point count)", where)
    if count != len(parcel.points):
        raise BubiaoPointCountError(f"{where}: header says {int(count)} points (界址点数) but "
                                    f"{len(parcel.points)} point line(s) follow")
    kind = _field(fields, 4)
    if kind and kind != "面":
        raise GeometryTypeError(f"{where}: 图形属性 is {kind!r}; only parcels (面) are polygons")
    area_raw = _field(fields, 1)
    declared = _number(area_raw, "地块面积 (area)", where) if area_raw else float("nan")
    return {"parcel_id": pid, "name": _field(fields, 3), "use": _field(fields, 6),
            "land_code": _field(fields, 7), "declared_area": declared, "sheet": _field(fields, 5),
            "geometry": _assemble(_rings(parcel, where))}


def read_bubiao(source: Path | str | bytes, encoding: str | None = None) -> BubiaoFile:
    """Parse a 部标 file (path, text or bytes) into parcels in the GK CRS its header and eastings imply."""
    text, label = _load(source, encoding)
    lines = text.splitlines()
    header, start = _split_sections(lines, label)
    rows = [_parcel_row(p, label) for p in _parcels(lines, start, label)]
    if not rows:
        raise BubiaoError(f"{label}: {COORD_SECTION} holds no parcels")
    seen: set[str] = set()
    for row in rows:
        if row["parcel_id"] in seen:
            raise BubiaoError(f"{label}: parcel id (地块编号) {row['parcel_id']!r} appears twice")
        seen.add(str(row["parcel_id"]))
    first = rows[0]["geometry"]
    assert isinstance(first, BaseGeometry)
    crs = crs_from_header(header, float(shapely.get_coordinates(first)[0, 0]), label)
    frame = gpd.GeoDataFrame(pd.DataFrame(rows, columns=list(FRAME_COLUMNS)), geometry="geometry", crs=crs)
    return BubiaoFile(frame=frame, crs=crs, header=header)


# ---------------------------------------------------------------- writing


def _target_crs(crs: CRS, centroid_lon: float, zone_prefix: bool) -> tuple[CRS, int, int]:
    """(CRS to write in, zone width, zone number); non-GK input goes to its centroid's 3-degree zone."""
    params = _gk_parameters(crs)
    width, zone = (params[0], params[1]) if params else (3, round(centroid_lon / 3.0))
    if zone_prefix:
        epsg = gk_epsg(width, zone=zone)
    else:
        epsg = gk_epsg(width, central_meridian=central_meridian(width, zone))
    return CRS.from_epsg(epsg), width, zone


def _to_target(frame: gpd.GeoDataFrame, target: CRS) -> gpd.GeoSeries:
    """Geometries in ``target``; between prefixed and plain GK of one zone only the easting shifts."""
    source, dest = _gk_parameters(CRS.from_user_input(frame.crs)), _gk_parameters(target)
    if source and dest and source[:2] == dest[:2]:
        shift = dest[2] - source[2]  # exact: adding the prefix avoids a round trip through PROJ
        geoms = shapely.transform(np.asarray(frame.geometry.values, dtype=object),
                                  lambda xy: xy + np.array([shift, 0.0]))
        return gpd.GeoSeries(geoms, index=frame.index, crs=target)
    return frame.geometry.to_crs(target)


def _clean_text(value: object) -> str:
    """A header field: ASCII commas would split it, so they become full-width; NaN/None become blank."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).replace(",", "，").replace("@", "＠").replace("\n", " ").strip()


def _ring_lines(ring: np.ndarray, ring_no: int, start: int) -> tuple[list[str], int]:
    """Point lines for one closed ring (easting, northing array); the closing point reuses the first 点号."""
    out: list[str] = []
    n = len(ring) - 1
    for i in range(len(ring)):
        number = start + (i if i < n else 0)
        out.append(f"J{number},{ring_no},{ring[i, 1]:.{DECIMALS}f},{ring[i, 0]:.{DECIMALS}f}")
    return out, start + n


def _polygon_rings(geom: BaseGeometry) -> list[np.ndarray]:
    """Exterior then holes of each part, as rounded closed coordinate arrays."""
    parts = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    rings: list[np.ndarray] = []
    for part in parts:
        if not isinstance(part, Polygon):
            raise GeometryTypeError(f"a 部标 parcel must be a polygon, got {part.geom_type}")
        for ring in [part.exterior, *part.interiors]:
            rings.append(np.round(np.asarray(ring.coords, dtype=float)[:, :2], DECIMALS))
    return rings


def _parcel_block(row: pd.Series, geom: BaseGeometry, index: int) -> list[str]:
    pid = _clean_text(row.get("parcel_id")) or str(index)
    if geom is None or geom.is_empty:
        raise GeometryTypeError(f"parcel {pid}: empty geometry cannot be written to a 部标 file")
    points: list[str] = []
    number = 1
    for ring_no, ring in enumerate(_polygon_rings(geom), start=1):
        lines, number = _ring_lines(ring, ring_no, number)
        points.extend(lines)
    declared = row.get("declared_area")
    if declared is None or (isinstance(declared, float) and np.isnan(declared)):
        declared = geom.area / 10_000.0  # the standard states 地块面积 in hectares (公顷)
    text = [_clean_text(row.get(key)) for key in ("name", "sheet", "use", "land_code")]
    header = [str(len(points)), f"{float(declared):.{DECIMALS}f}", pid, text[0], "面", *text[1:], "@"]
    return [",".join(header), *points]


def write_bubiao(frame: gpd.GeoDataFrame, path: Path | str, *, header: dict[str, str] | None = None,
                 zone_prefix: bool = True, encoding: str = "gbk") -> Path:
    """Write parcels as a 部标 TXT (GBK by default, as the submission systems expect); returns the path.

    Geometries go into the CGCS2000 GK zone of their CRS (or of their centroid when the frame is not
    GK), with the zone number prefixed to eastings when ``zone_prefix``. Coordinates have 4 decimals,
    so reading the file back gives the same coordinates rounded to 0.1 mm.
    """
    if frame.crs is None:
        raise CRSMissingError("parcels to write have no CRS")
    if len(frame) == 0:
        raise GeometryTypeError("no parcels to write")
    lon = float(frame.geometry.to_crs(4490).union_all().centroid.x)
    target, width, zone = _target_crs(CRS.from_user_input(frame.crs), lon, zone_prefix)
    geoms = _to_target(frame, target)
    values = {**DEFAULT_HEADER, "数据产生日期": dt.date.today().isoformat(), **(header or {})}
    values.update({"几度分带": str(width), "带号": str(zone)})
    lines = [ATTR_SECTION, *(f"{k}={v}" for k, v in values.items()), COORD_SECTION]
    for index, ((_, row), geom) in enumerate(zip(frame.iterrows(), geoms, strict=True), start=1):
        lines.extend(_parcel_block(row, geom, index))
    out = Path(path)
    tmp = out.with_name(out.name + ".part")
    # write then rename: a failure (e.g. a character GBK cannot encode) leaves nothing half-written
    try:
        tmp.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    except UnicodeEncodeError as exc:
        tmp.unlink(missing_ok=True)
        raise EncodingError(f"{out.name}: text cannot be encoded as {encoding}: {exc}") from exc
    tmp.replace(out)
    return out
