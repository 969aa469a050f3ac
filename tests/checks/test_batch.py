"""checks.batch and checks.distributed: the batch table agrees with screen(), and dask agrees exactly."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Polygon

from bench.bench_check import direct_blueprint, query_parcels
from checks.areas import ellipsoidal_areas
from checks.batch import COLUMNS, screen_batch
from checks.batch_fast import overlap_areas
from checks.distributed import dask_client, screen_distributed
from checks.engine import Screener
from checks.errors import UnknownProjectTypeError
from tests.checks.conftest import parcels, rect


def random_parcels(n: int, seed: int = 3) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x, y, w = rng.uniform(0, 380, n), rng.uniform(0, 180, n), rng.uniform(0.5, 40, n)
    shapes = [rect(a, b, min(a + s, 400), min(b + s, 200)) for a, b, s in zip(x, y, w, strict=True)]
    return parcels(*shapes, ids=[f"B{i}" for i in range(n)]).frame


def test_batch_rows_agree_with_screen(screener):
    frame = random_parcels(60)
    table = screen_batch(frame, screener, "residential", chunk=7)
    assert list(table.columns) == [*COLUMNS, "geometry"]
    single = screener.screen(parcels(*frame.geometry, ids=list(frame["parcel_id"])), "residential")
    for parcel in single["parcels"]:
        rows = table[table["parcel_id"] == parcel["parcel_id"]]
        assert set(rows["parcel_verdict"]) == {parcel["verdict"]}
        assert rows["area_m2"].iloc[0] == parcel["area_m2"]
        assert list(rows["kind"]) == [h["kind"] for h in parcel["conflicts"]]
        assert list(rows["overlap_area_m2"]) == [h["overlap_area_m2"] for h in parcel["conflicts"]]
        assert [json.loads(f) for f in rows["feature_ids"]] == [h["feature_ids"] for h in parcel["conflicts"]]
    # natural order of parcel ids: B2 before B10
    ids = list(dict.fromkeys(table["parcel_id"]))
    assert ids.index("B2") < ids.index("B10")


@pytest.fixture(scope="module")
def city(rules, catalogue) -> Screener:
    """A synthetic city of ≈4 000 pieces (farmland patches, grid cells with holes, zones, hazards)."""
    return Screener(direct_blueprint(4000), rules, catalogue)


def city_parcels(n: int = 300) -> gpd.GeoDataFrame:
    """Rotated rectangles (the convex fast path) and, every fifth parcel, a concave, holed or multipart
    one (the GEOS path), all inside the city."""
    rng = np.random.default_rng(5)
    geoms = list(query_parcels(n, seed=5, margin=3000.0))
    for i in range(0, n, 5):
        g = geoms[i]
        c = g.centroid
        kind = (i // 5) % 3
        if kind == 0:  # L-shape
            geoms[i] = g.difference(shapely.box(c.x, c.y, c.x + 400, c.y + 400))
        elif kind == 1:  # a hole
            geoms[i] = g.difference(c.buffer(rng.uniform(10, 30)))
        else:  # two parts
            geoms[i] = shapely.MultiPolygon([g, shapely.affinity.translate(g, 600, 0)])
    return gpd.GeoDataFrame({"parcel_id": [f"C{i}" for i in range(n)]}, geometry=geoms, crs="EPSG:4548")


@pytest.mark.parametrize("project_type", ["industrial", "linear_infrastructure"])
def test_batch_equals_single_submission_on_a_city(city, project_type):
    """The area-only batch path gives the single-submission engine's hits, verdicts and feature ids;
    plane areas agree to 1e-9 relative (plus the 1e-4 m² rounding of both). Ellipsoidal areas agree to
    5e-3 m²: the engine takes Karney's geodesic polygon through the vertices of the union of a kind's
    overlaps, the batch sums the parts on the authalic sphere (checks.batch_fast); both differ from the
    ellipsoidal area of the plane region (edges densified to 0.5 m) by up to ≈3e-3 m² here."""
    frame = city_parcels()
    table = screen_batch(frame, city, project_type, chunk=97)
    single = city.screen(parcels(*frame.geometry, ids=list(frame["parcel_id"])), project_type)
    rows = table.groupby("parcel_id", sort=False)
    hits = several = 0
    for parcel in single["parcels"]:
        got = rows.get_group(parcel["parcel_id"])
        assert set(got["parcel_verdict"]) == {parcel["verdict"]}
        assert got["area_m2"].iloc[0] == parcel["area_m2"]
        assert got["ellipsoidal_area_m2"].iloc[0] == parcel["ellipsoidal_area_m2"]
        want = parcel["conflicts"]
        assert list(got["kind"].dropna()) == [h["kind"] for h in want]
        if not want:
            continue
        hits += len(want)
        assert list(got["rule"]) == [h["rule"] for h in want]
        assert list(got["below_tolerance"]) == [h["below_tolerance"] for h in want]
        # the very text json.dumps gives (feature sets looked up per version, unions over feature codes)
        assert list(got["feature_ids"]) == [json.dumps(h["feature_ids"]) for h in want]
        several += sum(len(h["feature_ids"]) > 1 for h in want)
        for measure, rtol, atol in (("overlap_area_m2", 1e-9, 1e-4),
                                    ("overlap_ellipsoidal_area_m2", 0.0, 5e-3)):
            expect = np.array([h[measure] for h in want])
            assert (np.abs(got[measure].to_numpy() - expect) <= rtol * expect + atol).all(), measure
        expect = np.array([h["overlap_ratio"] for h in want])
        assert np.abs(got["overlap_ratio"].to_numpy() - expect).max() <= 1e-8
    assert hits > 500  # ≈2 hits a parcel: the comparison is not vacuous
    assert several >= 1  # a hit with several source features (a union of feature sets) is compared too


def test_overlap_areas_unrounded_match_the_engine(city):
    """Unrounded: same (parcel, kind) hits and member pieces as Screener.overlaps; plane areas to 1e-9
    relative, ellipsoidal to 5e-3 m² (see above)."""
    geoms = np.asarray(city_parcels().geometry.values, dtype=object)
    for urban in (False, True):
        want = city.overlaps(geoms.copy(), urban_construction=urban)
        got = overlap_areas(city, geoms.copy(), ellipsoidal_areas(geoms, city.crs), urban_construction=urban)
        assert list(got.parcel) == list(want.parcel) and list(got.kind) == list(want.kind)
        assert list(got.member_bounds) == list(want.member_bounds)
        assert list(got.member_piece) == list(want.member_piece)
        np.testing.assert_allclose(got.area, want.area, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(got.ellipsoidal_area, want.ellipsoidal_area, rtol=0, atol=5e-3)
        np.testing.assert_allclose(got.covered, want.covered, rtol=1e-9)


def test_batch_keeps_going_past_bad_parcels(screener):
    frame = parcels(rect(10, 10, 20, 20), rect(380, 10, 450, 60), Polygon(), rect(210, 10, 220, 20),
                    ids=["in", "out", "empty", "urban"]).frame
    seen = []
    table = screen_batch(frame, screener, "industrial", chunk=2,
                         progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 4), (4, 4)]
    by_id = table.groupby("parcel_id")
    assert set(by_id.get_group("out")["error"]) == {"parcel_outside_city"}
    assert by_id.get_group("out")["outside_m2"].iloc[0] == pytest.approx(2500.0)
    assert set(by_id.get_group("empty")["error"]) == {"no_parcels"}
    assert "empty" in by_id.get_group("empty")["repairs"].iloc[0]
    assert set(by_id.get_group("in")["parcel_verdict"]) == {"conflict"}
    assert set(by_id.get_group("urban")["parcel_verdict"]) == {"pass"}
    assert table.loc[table["parcel_id"] == "urban", "geometry"].notna().all()


def test_batch_table_round_trips_through_parquet(screener, tmp_path):
    table = screen_batch(random_parcels(20), screener, "industrial")
    path = tmp_path / "results.parquet"
    table.to_parquet(path)
    back = gpd.read_parquet(path)
    assert len(back) == len(table) and back.crs == table.crs


def test_batch_unknown_project_type(screener):
    with pytest.raises(UnknownProjectTypeError):
        screen_batch(random_parcels(3), screener, "spaceport")


def test_dask_result_equals_in_process_result(screener, city):
    awkward = parcels(Polygon(), rect(390, 10, 460, 60), ids=["empty", "outside"]).frame
    frame = pd.concat([random_parcels(300, seed=11), awkward], ignore_index=True)
    expected = screen_batch(frame, screener, "industrial")
    assert set(expected.loc[expected["parcel_id"].isin(["empty", "outside"]), "parcel_verdict"]) == {"error"}
    with dask_client(None, n_workers=2) as client:  # the default LocalCluster of two processes
        local = screen_distributed(frame, screener, "industrial", partitions=5, client=client)
        by_address = screen_distributed(frame, screener, "industrial", partitions=3,
                                        scheduler=client.scheduler.address)
        city_frame = city_parcels()
        city_expected = screen_batch(city_frame, city, "industrial")
        city_dask = screen_distributed(city_frame, city, "industrial", partitions=4, client=client)
    for got, want in ((local, expected), (by_address, expected), (city_dask, city_expected)):
        pd.testing.assert_frame_equal(got.drop(columns="geometry"), want.drop(columns="geometry"))
        assert list(got.geometry.to_wkb()) == list(want.geometry.to_wkb())
    assert expected["parcel_verdict"].nunique() == 4  # every verdict, and error rows
