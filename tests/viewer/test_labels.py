"""Boundary labels (/viewer/labels/{version}) and conflicts that stay visible at city scale."""

from __future__ import annotations

import gzip

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import shape

from tests.viewer.conftest import WORK, MemorySource, b, conflicts_frame, make_app, signed_in, to_4326
from tests.viewer.test_mvt import decode
from viewer.boundary import boundary_labels
from viewer.layer_index import MARKER_PX
from viewer.tilegrid import pixel_size, tile_of
from viewer.tiles import TileService

GROUPS = {"permanent_farmland": "line", "urban_boundary": "line", "city_boundary": "boundary"}

# three districts tiling the 2 km test city, as an XZQ layer would name them
DISTRICTS = gpd.GeoDataFrame(
    {"XZQMC": ["铜官区", "义安区", "郊区"], "XZQDM": ["340705", "340706", "340711"]},
    geometry=[b(-1000, -1000, 0, 1000), b(0, 0, 1000, 1000), b(0, -1000, 1000, 0)], crs=WORK)


class WithBoundary(MemorySource):
    def boundary(self, version: str) -> gpd.GeoDataFrame:
        return DISTRICTS


def test_every_named_area_gets_one_label_inside_it_largest_first() -> None:
    result = boundary_labels(DISTRICTS)
    assert [label["name"] for label in result["labels"]] == ["铜官区", "义安区", "郊区"]
    assert result["labels"][0]["area_m2"] == pytest.approx(2_000_000)
    for label, geom in zip(result["labels"], DISTRICTS.geometry, strict=True):
        inside = shape(to_4326(geom)).buffer(-1e-5)  # well inside, not on the edge
        assert inside.contains(shapely.Point(label["lon"], label["lat"])), label["name"]
    assert len(result["outlines"]["features"]) == 3


def test_a_crescent_area_is_labelled_inside_it_not_at_its_centroid() -> None:
    crescent = b(-1000, -1000, 1000, 1000).difference(b(-600, -1000, 1000, 600))
    frame = gpd.GeoDataFrame({"名称": ["铜陵市"]}, geometry=[crescent], crs=WORK)
    assert not crescent.contains(crescent.centroid)
    label = boundary_labels(frame)["labels"][0]
    assert shape(to_4326(crescent)).contains(shapely.Point(label["lon"], label["lat"]))


def test_unnamed_or_missing_boundary_gives_outlines_or_nothing() -> None:
    unnamed = DISTRICTS.drop(columns=["XZQMC"])
    assert boundary_labels(unnamed)["labels"] == []  # XZQDM is a code, not a name
    assert len(boundary_labels(unnamed)["outlines"]["features"]) == 3
    assert boundary_labels(None) == {"labels": [], "outlines": {"type": "FeatureCollection", "features": []}}


def test_the_labels_route_reads_the_sources_boundary() -> None:
    client = signed_in(make_app(WithBoundary()))
    r = client.get("/viewer/labels/v1")
    assert r.status_code == 200 and r.headers["etag"]
    assert [label["name"] for label in r.json()["labels"]] == ["铜官区", "义安区", "郊区"]
    assert client.get("/viewer/labels/v1", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert client.get("/viewer/labels/v9").status_code == 404
    # a source without the optional boundary(): an empty answer, never an error
    assert signed_in(make_app(MemorySource())).get("/viewer/labels/v1").json()["labels"] == []


class TinyConflict(MemorySource):
    """The test city with one more conflict: 3 m × 3 m, far below a pixel at city zoom."""

    def conflicts(self, version: str) -> gpd.GeoDataFrame:
        frame = conflicts_frame()
        tiny = frame.iloc[[0]].copy()
        tiny["conflict_id"], tiny["area_m2"] = "C000002", 9.0
        tiny = tiny.set_geometry([b(600, 600, 603, 603)], crs=WORK)
        return gpd.GeoDataFrame(gpd.pd.concat([frame, tiny], ignore_index=True), crs=WORK)


@pytest.mark.parametrize("z", [9, 11, 13])
def test_a_sub_pixel_conflict_is_sent_as_a_marker_at_city_zoom(z: int) -> None:
    service = TileService(TinyConflict(), GROUPS)
    centre = to_4326(b(600, 600, 603, 603).centroid)["coordinates"]
    x, y = tile_of(*centre, z)
    layer = decode(gzip.decompress(service.mvt("v1", z, x, y)))["conflicts"]
    tiny = [f for f in layer["features"] if f["properties"]["conflict_id"] == "C000002"]
    assert len(tiny) == 1, "the conflict is in the tile"
    marker = shape(tiny[0]["geometry"])
    side_px = (marker.bounds[2] - marker.bounds[0]) * 256 / layer["extent"]
    assert side_px == pytest.approx(MARKER_PX, abs=0.2)  # six screen pixels, whatever its true size
    assert tiny[0]["properties"]["area_m2"] == 9.0  # the panel still says how big it really is


def test_a_conflict_large_enough_keeps_its_shape() -> None:
    service = TileService(TinyConflict(), GROUPS)
    z = 16  # 100 m ≈ 40 px here
    assert 100 / pixel_size(z) > MARKER_PX
    x, y = tile_of(*to_4326(b(100, -200, 200, -100).centroid)["coordinates"], z)
    layer = decode(gzip.decompress(service.mvt("v1", z, x, y)))["conflicts"]
    big = next(f for f in layer["features"] if f["properties"]["conflict_id"] == "C000001")
    assert len(shape(big["geometry"]).exterior.coords) == 5  # still the 100 m square's four corners


def test_a_click_near_a_marker_names_that_conflict_and_its_plans() -> None:
    client = signed_in(make_app(TinyConflict()))
    centre = b(600, 600, 603, 603).centroid
    lon, lat = to_4326(shapely.Point(centre.x + 40, centre.y))["coordinates"]
    assert client.get(f"/viewer/identify/v1?lon={lon}&lat={lat}").json()["conflicts"] == []
    found = client.get(f"/viewer/identify/v1?lon={lon}&lat={lat}&r=60").json()["conflicts"]
    assert [c["conflict_id"] for c in found] == ["C000002"]
    assert found[0]["layer_a"] == "农田 2025" and found[0]["layer_b"] == "城镇 2025"
    assert "优先" in found[0]["resolution"]
    assert client.get(f"/viewer/identify/v1?lon={lon}&lat={lat}&r=5000").status_code == 422
