"""parcels_from_geojson runs the shared pipeline on arrays: it must give what the frame pipeline gives."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from pyproj import CRS

from layers.errors import OneBlueprintError
from layers.formats import RawLayer
from layers.ingest import (
    PARCEL_ID_COLUMNS,
    _finish,
    _geojson_features,
    _geojson_geometry,
    _legacy_crs,
    _parcel_set,
    _properties,
    parcels_from_geojson,
)
from layers.model import Limits, ParcelSet

LON, LAT = 117.80, 30.90


def _frame_pipeline(obj: dict[str, Any], work_crs: CRS, limits: Limits = Limits()) -> ParcelSet:
    """The GeoDataFrame pipeline every file format goes through (what parcels_from_geojson did before)."""
    features = _geojson_features(obj)
    legacy = _legacy_crs(obj)
    frame = gpd.GeoDataFrame(
        pd.DataFrame.from_records([_properties(f, i) for i, f in enumerate(features)],
                                  index=range(len(features))),
        geometry=[_geojson_geometry(f, i) for i, f in enumerate(features)], crs=None)
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    raw = RawLayer(frame, legacy or CRS.from_epsg(4326), "GeoJSON", "GeoJSON",
                   hashlib.sha256(text).hexdigest(), implied=legacy is None)
    return _parcel_set(_finish(raw, work_crs=work_crs, crs=None, limits=limits, geometry="polygon",
                               id_column="parcel_id", id_candidates=PARCEL_ID_COLUMNS))


def _square(dx: float = 0.0, size: float = 0.004, z: float | None = None) -> dict[str, Any]:
    ring = [[LON + dx, LAT], [LON + dx + size, LAT], [LON + dx + size, LAT + size], [LON + dx, LAT + size],
            [LON + dx, LAT]]
    if z is not None:
        ring = [[x, y, z] for x, y in ring]
    return {"type": "Polygon", "coordinates": [ring]}


def _bowtie(dx: float = 0.0) -> dict[str, Any]:
    x, y, d = LON + dx, LAT, 0.003
    return {"type": "Polygon", "coordinates": [[[x, y], [x + d, y + d], [x + d, y], [x, y + d], [x, y]]]}


def _fc(*features: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features), **extra}


def _f(geometry: dict[str, Any] | None, fid: Any = None, **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Feature", "properties": props, "geometry": geometry}
    if fid is not None:
        out["id"] = fid
    return out


CASES = {
    "one parcel": _fc(_f(_square(), parcel_id="P1", name="地块一")),
    "bare polygon": _square(),
    "single feature, id member": _f(_square(), fid="A-1", 名称="示范"),
    "integer ids": _fc(_f(_square(), id=10), _f(_square(0.01), id=2)),
    "float ids": _fc(_f(_square(), bh=1.0), _f(_square(0.01), bh=2.0)),
    "duplicate ids fall back to 1..n": _fc(_f(_square(), id="x"), _f(_square(0.01), id="x")),
    "gap in ids, unusable parcel_id kept aside": _fc(_f(_square(), parcel_id="a", dkmc="甲"),
                                                    _f(_square(0.01), dkmc=None)),
    "padded string ids": _fc(_f(_square(), 地块编号=" 7 "), _f(_square(0.01), 地块编号="8")),
    "mixed types": _fc(_f(_square(), id=1, flag=True, area=1.5), _f(_square(0.01), id="b", note="n")),
    "repaired bow-tie and empty": _fc(_f(_square(), id="1"), _f(_bowtie(0.01), id="2"), _f(None, id="3")),
    "3-D coordinates": _fc(_f(_square(z=12.5), id="z")),
    "multipolygon": _fc(_f({"type": "MultiPolygon", "coordinates": [_square()["coordinates"],
                                                                     _square(0.01)["coordinates"]]}, id="m")),
    "ids missing from one record": _fc(_f(_square(), id="a", 编号="E1"), _f(_square(0.01), 编号="E2")),
    "parcel_id used, other columns kept": _fc(_f(_square(), parcel_id="P-2", fid=3, 名称="乙"),
                                              _f(_square(0.01), parcel_id="P-10", fid=4, 名称=None)),
    "bh duplicated, objectid used": _fc(_f(_square(), bh="d", OBJECTID=-1),
                                        _f(_square(0.01), bh="d", OBJECTID=2**40)),
    "ids beyond int64": _fc(_f(_square(), id=2**70), _f(_square(0.01), id=1)),
    "non-ASCII ids": _fc(_f(_square(), dkbh="铜陵-甲"), _f(_square(0.01), dkbh="铜陵-乙")),
    "boolean and empty ids": _fc(_f(_square(), id=True, bh=""), _f(_square(0.01), id=False, bh="x")),
    "whitespace-only id": _fc(_f(_square(), id="\u3000"), _f(_square(0.01), id="b")),
    "no properties at all": _fc(_f(_square()), _f(_square(0.01))),
    "legacy CRS": _fc(_f(_square(), id="c"), crs={"type": "name", "properties": {"name": "EPSG:4490"}}),
    "legacy GK metres": _fc(_f({"type": "Polygon", "coordinates": [[[576000, 3420000], [576100, 3420000],
                                                                   [576100, 3420100], [576000, 3420000]]]},
                               id="gk"), crs={"type": "name", "properties": {"name": "EPSG:4548"}}),
}

BAD = {
    "no usable features": _fc(_f(None, id="1")),
    "empty collection": _fc(),
    "swapped axes": _f({"type": "Polygon", "coordinates": [[[LAT, LON], [LAT, LON + 0.01],
                                                            [LAT + 0.01, LON + 0.01], [LAT, LON]]]}),
    "a line": _fc(_f({"type": "LineString", "coordinates": [[LON, LAT], [LON + 0.01, LAT]]}, id="l")),
}


def _same(got: ParcelSet, want: ParcelSet) -> None:
    assert_geodataframe_equal(got.frame, want.frame, check_dtype=True, check_crs=True)
    assert list(got.frame.columns) == list(want.frame.columns)
    assert shapely.to_wkb(got.frame.geometry.values).tolist() == shapely.to_wkb(
        want.frame.geometry.values).tolist()  # bit for bit, not only "almost equal"
    assert (got.source, got.crs_in, got.checksum, got.repairs, got.notes) == (
        want.source, want.crs_in, want.checksum, want.repairs, want.notes)


@pytest.mark.parametrize("name", sorted(CASES))
def test_geojson_fast_path_matches_frame_pipeline(name, work_crs):
    obj = CASES[name]
    _same(parcels_from_geojson(obj, work_crs=work_crs), _frame_pipeline(obj, work_crs))


@pytest.mark.parametrize("name", sorted(BAD))
def test_geojson_fast_path_raises_like_frame_pipeline(name, work_crs):
    obj = BAD[name]
    # both paths must raise the same error with the same message
    with pytest.raises(Exception) as want:
        _frame_pipeline(obj, work_crs)
    with pytest.raises(type(want.value)) as got:
        parcels_from_geojson(obj, work_crs=work_crs)
    assert str(got.value) == str(want.value)


def test_geojson_vertex_limit(work_crs):
    obj = _fc(_f(_square(), id="1"), _f(_square(0.01), id="2"))
    with pytest.raises(OneBlueprintError, match="vertices"):
        parcels_from_geojson(obj, work_crs=work_crs, limits=Limits(max_vertices=9))


def test_geojson_repeated_calls_identical(work_crs):
    """The cached transformer and labels give the same parcels on every call."""
    obj = CASES["repaired bow-tie and empty"]
    first = parcels_from_geojson(obj, work_crs=work_crs)
    for _ in range(3):
        _same(parcels_from_geojson(obj, work_crs=work_crs), first)


def test_empty_feature_collection_is_a_domain_error():
    from pyproj import CRS

    from layers.errors import EmptyLayerError
    from layers.ingest import parcels_from_geojson

    with pytest.raises(EmptyLayerError, match="no usable features"):
        parcels_from_geojson({"type": "FeatureCollection", "features": []}, work_crs=CRS.from_epsg(4548))


def test_properties_that_are_not_an_object_are_a_domain_error(work_crs):
    from layers.errors import UnreadableLayerError

    obj = _fc(_f(_square(), id="1"))
    obj["features"][0]["properties"] = ["a", "b"]
    with pytest.raises(UnreadableLayerError, match=r"feature 1 has 'properties'"):
        parcels_from_geojson(obj, work_crs=work_crs)
