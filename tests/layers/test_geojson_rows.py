"""The check path's array reader (layers.geojson_rows) against the general GeoJSON reader: same parcels."""

from __future__ import annotations

import json
from typing import Any

import geopandas as gpd
import pytest
import shapely
from pyproj import CRS
from shapely.affinity import translate
from shapely.geometry import mapping

from layers.errors import OneBlueprintError
from layers.geojson_rows import ParcelRows, parcel_rows_from_geojson
from layers.ingest import parcels_from_geojson
from layers.model import ParcelSet
from tests.geoms import BOW_TIE, MULTIPART, SLIVER, WITH_HOLE, square

WORK = CRS.from_epsg(4548)
AWKWARD = {"bow_tie": BOW_TIE, "hole": WITH_HOLE, "multipart": MULTIPART, "sliver": SLIVER,
           "square": square(300, 300, 40)}


def collection(geoms: list[Any], props: list[dict[str, Any]] | None = None, crs: str = "EPSG:4326",
               member: bool = False) -> dict[str, Any]:
    frame = gpd.GeoSeries(geoms, crs="EPSG:4548").to_crs(crs)
    props = props or [{"parcel_id": str(i + 1)} for i in range(len(geoms))]
    features = [{"type": "Feature", "properties": p, "geometry": mapping(g)}
                for p, g in zip(props, frame, strict=True)]
    body: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if member:
        body["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.loads(json.dumps(body))


def names_of(parcels: ParcelSet) -> list[str | None]:
    """Names as the Screener reads them from a frame (checks.engine.Screener._submitted)."""
    frame = parcels.frame
    if "name" not in frame.columns:
        return [None] * len(frame)
    return [v if isinstance(v, str) else None for v in frame["name"].tolist()]


def assert_same(obj: dict[str, Any]) -> ParcelRows:
    fast = parcel_rows_from_geojson(obj, work_crs=WORK)
    general = parcels_from_geojson(obj, work_crs=WORK)
    assert isinstance(fast, ParcelRows), "this submission should take the fast path"
    assert fast.ids == [str(v) for v in general.frame["parcel_id"]]
    assert fast.names == names_of(general)
    assert shapely.to_wkb(fast.geoms).tolist() == shapely.to_wkb(general.frame.geometry.values).tolist()
    assert (fast.source, fast.crs_in, fast.checksum) == (general.source, general.crs_in, general.checksum)
    assert fast.repairs == general.repairs and fast.notes == general.notes
    assert fast.frame.equals(general.frame)  # the frame built on demand is the general reader's
    return fast


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_geometries_read_alike(name: str) -> None:
    assert_same(collection([AWKWARD[name]]))


def test_several_parcels_names_ids_and_repairs_alike() -> None:
    geoms = [BOW_TIE, translate(WITH_HOLE, 200), translate(MULTIPART, 0, 300), translate(SLIVER, 50, 400)]
    props = [{"地块编号": f"A-{i}", "名称": f"地块{i}", "area": 1.5 * i} for i in range(4)]
    fast = assert_same(collection(geoms, props))
    assert fast.ids == ["A-0", "A-1", "A-2", "A-3"] and fast.names[1] == "地块1"
    assert any(r.action for r in fast.repairs)  # the bow-tie was repaired and reported


def test_crs_member_is_honoured_alike() -> None:
    fast = assert_same(collection([square(10, 10, 50)], crs="EPSG:4548", member=True))
    assert fast.crs_in == "EPSG:4548"


def test_unclosed_ring_closed_and_noted_alike() -> None:
    obj = collection([square(10, 10, 50)])
    ring = obj["features"][0]["geometry"]["coordinates"][0]
    ring.pop()  # drop the closing vertex
    fast = assert_same(obj)
    assert [r.problem for r in fast.repairs] == ["ring_not_closed"]


def test_numeric_names_fall_back_to_the_general_reader() -> None:
    obj = collection([square(10, 10, 50)], [{"parcel_id": "1", "名称": 7}])
    assert not isinstance(parcel_rows_from_geojson(obj, work_crs=WORK), ParcelRows)


def errors_of(obj: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
    found = []
    for reader in (parcel_rows_from_geojson, parcels_from_geojson):
        with pytest.raises(OneBlueprintError) as caught:
            reader(obj, work_crs=WORK)
        found.append((caught.value.code, str(caught.value)))
    return found[0], found[1]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e400])
def test_non_finite_coordinates_refused_alike(bad: float) -> None:
    obj = collection([square(10, 10, 50)])
    obj["features"][0]["geometry"]["coordinates"][0][1][0] = bad
    fast, general = errors_of(obj)
    assert fast == general and fast[0] == "non_finite_coordinates"


def test_duplicate_parcel_numbers_refused_alike() -> None:
    fast, general = errors_of(collection([square(10, 10, 50), square(100, 10, 50)],
                                         [{"parcel_id": "7"}, {"parcel_id": "7"}]))
    assert fast == general and "7" in fast[1]


def test_far_away_parcels_read_alike() -> None:  # the screener refuses them (tests/api/test_check_rows.py)
    assert_same(collection([square(50_000, 80_000, 50)]))

