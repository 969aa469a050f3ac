"""Transformers rebuilt from the PROJ pipeline from_crs chose: same coordinates, no database search per
thread (issue #16: ≈ 40 % of a loaded server's CPU went into Transformer.from_crs in new threads)."""

from __future__ import annotations

import threading
from typing import Any

import geopandas as gpd
import numpy as np
import pyproj.transformer
import pytest
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import Point, Polygon

from layers import crs as crs_module
from layers.crs import OUTPUT_CRS, pipeline_transformer, reproject_array, to_output, transformer

PAIRS = [(4326, 4548), (4548, 4326), (4548, 4490), (4490, 4548), (4326, 4528), (4548, 4549), (3857, 4548)]
LONLAT = (116.5, 30.5, 118.5, 31.5)  # around Tongling


def sample_points(epsg: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(epsg)
    lon, lat = rng.uniform(LONLAT[0], LONLAT[2], n), rng.uniform(LONLAT[1], LONLAT[3], n)
    to_source = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_epsg(epsg), always_xy=True)
    x, y = to_source.transform(lon, lat)
    return np.asarray(x), np.asarray(y)


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_pipeline_gives_the_coordinates_of_from_crs(source: int, target: int) -> None:
    s, t = CRS.from_epsg(source), CRS.from_epsg(target)
    x, y = sample_points(source)
    expected = Transformer.from_crs(s, t, always_xy=True).transform(x, y)
    got = pipeline_transformer(s, t).transform(x, y)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def in_new_thread(fn: Any) -> Any:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed back to the test thread
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def refuse_from_crs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail where PROJ would search for a CRS-to-CRS operation: a new ``Transformer.from_crs`` or a shared
    one used in a thread for the first time (pyproj re-creates it per thread the same way)."""
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a CRS-to-CRS transformer was created again (PROJ database search)")

    monkeypatch.setattr(pyproj.transformer.TransformerFromCRS, "__call__", refused)


def test_a_new_thread_builds_no_transformer_from_crs(monkeypatch: pytest.MonkeyPatch) -> None:
    work = CRS.from_epsg(4548)
    pipeline_transformer(work, OUTPUT_CRS)  # the process has met the pair once
    refuse_from_crs(monkeypatch)
    x, y = in_new_thread(lambda: pipeline_transformer(work, OUTPUT_CRS).transform(500_000.0, 3_420_000.0))
    assert 117.0 - 1e-9 < x < 117.0 + 1e-9 and 30.9 < y < 31.0


def test_to_output_in_a_new_thread_builds_no_transformer_from_crs(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OGC items page or a location answer reprojects through to_output in an API worker thread; it
    used GeoDataFrame.to_crs, a new Transformer (≈ 40 ms for the working CRS → 4326) on every call."""
    frame = gpd.GeoDataFrame({"n": [1]}, geometry=[Point(500_000, 3_420_000).buffer(50)], crs="EPSG:4548")
    to_output(frame)
    refuse_from_crs(monkeypatch)
    out = in_new_thread(lambda: to_output(frame))
    assert CRS.from_user_input(out.crs).equals(OUTPUT_CRS)


def test_to_output_equals_geopandas_to_crs_with_rfc7946_rings() -> None:
    ring = [(500_000, 3_420_000), (500_000, 3_420_100), (500_100, 3_420_100), (500_100, 3_420_000)]
    hole = [(500_020, 3_420_020), (500_080, 3_420_020), (500_080, 3_420_080), (500_020, 3_420_080)]
    geoms = [Polygon(ring, [hole]), None, Point(500_010, 3_420_010, 7.0)]
    frame = gpd.GeoDataFrame({"n": [1, 2, 3]}, geometry=geoms, crs="EPSG:4548")
    expected = frame.to_crs(OUTPUT_CRS)
    out = to_output(frame)
    assert list(out["n"]) == [1, 2, 3] and CRS.from_user_input(out.crs).equals(OUTPUT_CRS)
    assert CRS.from_user_input(frame.crs).to_epsg() == 4548  # the input is left as it was
    assert out.geometry.iloc[1] is None
    assert shapely.equals_exact(out.geometry.iloc[0], shapely.orient_polygons(expected.geometry.iloc[0]),
                                tolerance=0)
    assert shapely.is_ccw(out.geometry.iloc[0].exterior)
    assert out.geometry.iloc[2].has_z and out.geometry.iloc[2].z == 7.0
    assert shapely.equals_exact(out.geometry.iloc[2], expected.geometry.iloc[2], tolerance=0)
    series = to_output(frame.geometry)
    assert isinstance(series, gpd.GeoSeries) and series.iloc[0].equals_exact(out.geometry.iloc[0], 0)


def test_several_candidate_operations_fall_back_to_from_crs(monkeypatch: pytest.MonkeyPatch) -> None:
    """When PROJ picks the operation per coordinate there is no single pipeline to reuse."""
    key_source, key_target = CRS.from_epsg(4326), CRS.from_epsg(4548)
    monkeypatch.setattr(crs_module, "_pipelines", {(key_source.srs, key_target.srs): None})
    got = in_new_thread(lambda: pipeline_transformer(key_source, key_target))
    assert got.source_crs is not None  # a from_crs transformer, which carries its CRSs
    assert crs_module._single_operation(transformer(key_source, key_target)) is not None


def test_reproject_array_keeps_missing_and_same_crs() -> None:
    geoms = np.array([Point(1, 2), None], dtype=object)
    same = reproject_array(geoms, CRS.from_epsg(4548), CRS.from_epsg(4548))
    assert same is geoms
    moved = reproject_array(np.array([Point(500_000, 3_420_000), None], dtype=object),
                            CRS.from_epsg(4548), OUTPUT_CRS)
    assert moved[1] is None and abs(moved[0].x - 117.0) < 1e-9
