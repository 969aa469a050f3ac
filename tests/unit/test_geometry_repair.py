"""layers.geometry.repair_frame on the awkward geometries."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely.geometry import LineString, Polygon

from layers.errors import GeometryTypeError
from layers.geometry import repair_frame
from tests import geoms


def frame(*geometries, crs="EPSG:4548"):
    return gpd.GeoDataFrame({"feature_id": [str(i + 1) for i in range(len(geometries))]},
                            geometry=list(geometries), crs=crs)


def test_bow_tie_is_made_valid_and_reported():
    fixed, repairs = repair_frame(frame(geoms.BOW_TIE))
    assert fixed.geometry.is_valid.all()
    assert fixed.geometry.iloc[0].area == pytest.approx(5000.0)
    assert [(r.feature_id, r.problem, r.action) for r in repairs] == [("1", "invalid", "make_valid")]
    assert "Self-intersection" in repairs[0].detail


def test_valid_hole_and_multipart_pass_untouched():
    fixed, repairs = repair_frame(frame(geoms.WITH_HOLE, geoms.MULTIPART))
    assert repairs == []
    assert list(fixed.geometry.geom_type) == ["Polygon", "MultiPolygon"]
    assert fixed.geometry.iloc[0].area == pytest.approx(7500.0)


def test_empty_and_missing_features_are_dropped_and_reported():
    fixed, repairs = repair_frame(frame(geoms.EMPTY, None, geoms.SLIVER))
    assert list(fixed["feature_id"]) == ["3"]
    assert {(r.feature_id, r.problem) for r in repairs} == {("1", "empty"), ("2", "empty")}


def test_z_is_dropped_and_reported():
    poly_z = Polygon([(x, y, 5.0) for x, y in geoms.SHARED_EDGE_LEFT.exterior.coords])
    fixed, repairs = repair_frame(frame(poly_z))
    assert not fixed.geometry.has_z.any()
    assert repairs[0].problem == "z_dropped"


def test_line_feature_is_an_error_naming_the_feature():
    line = LineString([(geoms.X0, geoms.Y0), (geoms.X0 + 1, geoms.Y0 + 1)])
    with pytest.raises(GeometryTypeError, match="feature 2 is a LineString"):
        repair_frame(frame(geoms.SHARED_EDGE_LEFT, line), source="roads.shp")
