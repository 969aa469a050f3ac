"""checks.batch and checks.distributed: the batch table agrees with screen(), and dask agrees exactly."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon

from checks.batch import COLUMNS, screen_batch
from checks.distributed import dask_client, screen_distributed
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


def test_dask_result_equals_in_process_result(screener):
    awkward = parcels(Polygon(), rect(390, 10, 460, 60), ids=["empty", "outside"]).frame
    frame = pd.concat([random_parcels(300, seed=11), awkward], ignore_index=True)
    expected = screen_batch(frame, screener, "industrial")
    assert set(expected.loc[expected["parcel_id"].isin(["empty", "outside"]), "parcel_verdict"]) == {"error"}
    with dask_client(None, n_workers=2) as client:  # the default LocalCluster of two processes
        local = screen_distributed(frame, screener, "industrial", partitions=5, client=client)
        by_address = screen_distributed(frame, screener, "industrial", partitions=3,
                                        scheduler=client.scheduler.address)
    for got in (local, by_address):
        pd.testing.assert_frame_equal(got.drop(columns="geometry"), expected.drop(columns="geometry"))
        assert list(got.geometry.to_wkb()) == list(expected.geometry.to_wkb())
    assert expected["parcel_verdict"].nunique() == 4  # every verdict, and error rows
