"""RFC 7946 ring orientation at the GeoJSON edge (layers.crs.to_output): exteriors counter-clockwise,
holes clockwise, so a naive signed geodesic area is the real one; areas never change (issue #11)."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, shape

from checks.areas import ellipsoidal_areas
from layers.crs import to_output
from tests.geoms import X0, Y0

GEOD = Geod(ellps="GRS80")


def clockwise_with_ccw_hole(dx: float = 0.0) -> Polygon:
    outer = [(X0 + dx, Y0), (X0 + dx, Y0 + 300), (X0 + dx + 300, Y0 + 300), (X0 + dx + 300, Y0)]
    hole = [(X0 + dx + 100, Y0 + 100), (X0 + dx + 200, Y0 + 100), (X0 + dx + 200, Y0 + 200),
            (X0 + dx + 100, Y0 + 200)]
    return Polygon(outer, [hole])


@pytest.fixture
def frame() -> gpd.GeoDataFrame:
    polygon = clockwise_with_ccw_hole()
    multi = MultiPolygon([clockwise_with_ccw_hole(1000), clockwise_with_ccw_hole(2000).reverse()])
    assert not polygon.exterior.is_ccw and polygon.interiors[0].is_ccw  # the wrong way round
    return gpd.GeoDataFrame({"parcel_id": ["1", "2", "3"]}, geometry=[polygon, multi, None], crs=4548)


def rings(geom):
    for part in getattr(geom, "geoms", [geom]):
        yield part.exterior, True
        for hole in part.interiors:
            yield hole, False


def test_to_output_orients_every_ring_and_keeps_areas(frame):
    out = to_output(frame)
    assert out.crs.to_epsg() == 4326 and out.geometry.iloc[2] is None
    for geom in out.geometry.iloc[:2]:
        for ring, exterior in rings(geom):
            assert ring.is_ccw == exterior
    # the naive signed geodesic area of the output equals the ellipsoidal area (CGCS2000 = GRS80)
    expected = ellipsoidal_areas(np.asarray(frame.geometry.values[:2], dtype=object), frame.crs)
    signed = [GEOD.geometry_area_perimeter(g)[0] for g in out.geometry.iloc[:2]]
    assert signed == pytest.approx(expected, rel=1e-9)
    before = [g.area for g in frame.to_crs(4326).geometry.iloc[:2]]  # shapely's, in degrees²
    assert [g.area for g in out.geometry.iloc[:2]] == pytest.approx(before, rel=1e-12)
    assert to_output(frame.geometry).iloc[0].exterior.is_ccw


def test_cli_geojson_output_is_rfc7946(frame, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.main import build_app

    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    source, target = tmp_path / "cw.gpkg", tmp_path / "out.geojson"
    frame.iloc[:2].to_file(source)
    run = CliRunner().invoke(build_app(), ["parcels", "convert", str(source), str(target)])
    assert run.exit_code == 0, run.output
    for feature in json.loads(target.read_text(encoding="utf-8"))["features"]:
        for ring, exterior in rings(shape(feature["geometry"])):
            assert ring.is_ccw == exterior
