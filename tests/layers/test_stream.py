"""layers.stream: a layer read in chunks gives what read_layer gives, and stores the same.

The layer is generated: 2,400 squares (10 m, 2 m apart) around tests.geoms (X0, Y0) in EPSG:4548, with
awkward features planted in different chunks of 1,000 (a bow tie in the first and the third, empty
geometries in the first and the third, a multipart and a polygon with a hole), Chinese names, and an
integer column with a gap in the second chunk only. Written as a GeoPackage (EPSG:4548), a FlatGeobuf
a zipped GBK Shapefile without .cpg in EPSG:4527 (so the stream also reprojects and detects text) and a
GBK Shapefile with its .cpg.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import sqlalchemy as sa
from geopandas.testing import assert_geodataframe_equal

from layers.errors import EmptyLayerError, FileTooLargeError
from layers.geometry import repair_rank
from layers.ingest import read_layer
from layers.model import Limits
from layers.store import LayerNotFoundError, LayerStore
from layers.stream import open_layer
from tests.geoms import BOW_TIE, EMPTY, MULTIPART, WITH_HOLE, X0, Y0
from tests.storage.helpers import farmland_layer

COUNT, CHUNK = 2_400, 1_000
PLANTED = {5: BOW_TIE, 900: EMPTY, 1200: MULTIPART, 1500: WITH_HOLE, 2100: EMPTY, 2300: BOW_TIE}


def grid_layer(count: int = COUNT) -> gpd.GeoDataFrame:
    cols = 60
    i = np.arange(count)
    x, y = X0 + 2_000 + (i % cols) * 12.0, Y0 + 2_000 + (i // cols) * 12.0
    geoms = shapely.box(x, y, x + 10, y + 10)
    for row, geom in PLANTED.items():
        if row < count:
            geoms[row] = geom
    counts = pd.array(i, dtype="Int64")
    if count > 1_100:
        counts[1_100] = pd.NA  # a gap in the second chunk only: that chunk reads the column as float64
    return gpd.GeoDataFrame({"BSM": [f"JBNT{k:06d}" for k in i], "名称": [f"基本农田{k}" for k in i],
                             "count": counts}, geometry=geoms, crs=4548)


def write(frame: gpd.GeoDataFrame, directory: Path, fmt: str) -> Path:
    if fmt == "gpkg":
        path = directory / "farm.gpkg"
        frame.to_file(path, layer="永久基本农田", driver="GPKG")
    elif fmt == "fgb":
        path = directory / "farm.fgb"
        frame.to_file(path, driver="FlatGeobuf", SPATIAL_INDEX="NO")  # an index refuses empty geometries
    elif fmt == "shp-cpg":  # a GBK Shapefile whose .cpg says so: GDAL decodes it
        path = directory / "农田.shp"
        frame.to_file(path, encoding="GBK")
        assert path.with_suffix(".cpg").exists()
    else:  # a GBK Shapefile without .cpg, zipped, in EPSG:4527 (GK zone 39 with prefix)
        parts = directory / "shp"
        parts.mkdir()
        frame.to_crs(4527).to_file(parts / "农田.shp", encoding="GBK")
        (parts / "农田.cpg").unlink(missing_ok=True)
        path = directory / "farm.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for part in sorted(parts.iterdir()):
                archive.write(part, part.name)
    return path


@pytest.fixture(params=["gpkg", "fgb", "shp-zip", "shp-cpg"])
def layer_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return write(grid_layer(), tmp_path, request.param)


def read_both(path: Path, catalogue, work_crs, **kw):  # type: ignore[no-untyped-def]
    plan = read_layer(path, "permanent_farmland", work_crs=work_crs, catalogue=catalogue, **kw)
    with open_layer(path, "permanent_farmland", work_crs=work_crs, catalogue=catalogue,
                    chunk_features=CHUNK, **kw) as stream:
        chunks = list(stream.chunks())
    return plan, stream, chunks


def test_chunks_are_the_layer_read_whole(layer_file: Path, catalogue, work_crs) -> None:
    plan, stream, chunks = read_both(layer_file, catalogue, work_crs)
    assert stream.streamed and stream.total == COUNT and len(chunks) == 3
    assert [c.read for c in chunks] == [1_000, 2_000, 2_400]
    frame = pd.concat([c.frame for c in chunks], ignore_index=True)
    frame["count"] = frame["count"].astype("float64")  # int64 in the chunks without a gap
    expected = plan.frame.assign(count=plan.frame["count"].astype("float64"))
    assert_geodataframe_equal(frame, expected, check_less_precise=False)
    in_chunks = sorted((r for c in chunks for r in c.repairs), key=lambda r: repair_rank(r.problem))
    assert in_chunks == list(plan.repairs)
    assert {r.problem for r in plan.repairs} == {"empty", "invalid"}
    assert (stream.name, stream.source, stream.checksum, stream.crs_in, stream.crs_out, stream.encoding) == (
        plan.name, plan.source, plan.checksum, plan.crs_in, plan.crs_out, plan.encoding)
    assert stream.notes == list(plan.notes)
    assert stream.meta == plan.meta
    assert frame["名称"].iloc[-1] == "基本农田2399"  # text decoded as read_layer decodes it


def test_stored_stream_equals_the_stored_whole_layer(layer_file: Path, catalogue, work_crs,
                                                     engine: sa.Engine) -> None:
    store = LayerStore(engine)
    plan = read_layer(layer_file, "permanent_farmland", work_crs=work_crs, catalogue=catalogue, name="whole")
    whole = store.save(plan)
    seen: list[tuple[int, int]] = []
    with open_layer(layer_file, "permanent_farmland", work_crs=work_crs, catalogue=catalogue,
                    name="chunked", chunk_features=CHUNK) as stream:
        chunked = store.save_stream(stream, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1_000, COUNT), (2_000, COUNT), (2_400, COUNT)]
    different = {"id", "name", "created_at"}
    assert {k: v for k, v in chunked.items() if k not in different} == {
        k: v for k, v in whole.items() if k not in different}
    assert chunked["feature_count"] == COUNT - 2  # the two empty geometries are dropped
    a, b = store.get("whole"), store.get("chunked")
    assert_geodataframe_equal(a.frame, b.frame)
    assert a.frame["count"].dtype == "float64" and a.frame["count"].isna().sum() == 1
    assert (a.repairs, a.notes, a.meta) == (b.repairs, b.notes, b.meta)


def test_ids_fall_back_to_row_numbers_over_the_whole_layer(tmp_path: Path, catalogue, work_crs) -> None:
    frame = grid_layer()
    frame.loc[2_350, "BSM"] = frame.loc[10, "BSM"]  # unique in each chunk, not in the layer
    plan, stream, chunks = read_both(write(frame, tmp_path, "gpkg"), catalogue, work_crs)
    ids = [i for c in chunks for i in c.frame["feature_id"]]
    assert ids == plan.frame["feature_id"].tolist()
    assert ids[:2] == ["1", "2"] and ids[-1] == str(COUNT)
    assert not any("feature_id from attribute" in n for n in stream.notes)


def test_a_vertex_limit_passed_in_a_later_chunk_stores_nothing(layer_file: Path, catalogue, work_crs,
                                                                engine: sa.Engine) -> None:
    store = LayerStore(engine)
    before = farmland_layer(name="农田")
    store.save(before)
    limits = Limits(max_vertices=7_000, scope="plan-layer",
                    raise_with={"max_vertices": "set BLUEPRINT_LAYER_MAX_VERTICES to raise it"})
    with pytest.raises(FileTooLargeError, match=r"vertices in its first 2,000 features, more than the "
                                                r"plan-layer limit of 7,000 vertices; set BLUEPRINT_LAYER"), \
            open_layer(layer_file, "permanent_farmland", work_crs=work_crs, catalogue=catalogue,
                       name="农田", limits=limits, chunk_features=CHUNK) as stream:
        store.save_stream(stream, replace=True)
    assert store.summary("农田")["checksum"] == before.checksum  # the layer to replace is untouched
    assert store.count("农田") == 3
    with open_layer(layer_file, "permanent_farmland", work_crs=work_crs, catalogue=catalogue, name="new",
                    limits=limits, chunk_features=CHUNK) as stream, pytest.raises(FileTooLargeError):
        store.save_stream(stream)
    with pytest.raises(LayerNotFoundError):
        store.summary("new")


def test_a_layer_of_empty_geometries_is_refused_as_read_layer_does(tmp_path: Path, catalogue,
                                                                   work_crs) -> None:
    frame = gpd.GeoDataFrame({"BSM": [str(i) for i in range(2_500)]}, geometry=[EMPTY] * 2_500, crs=4548)
    path = write(frame, tmp_path, "gpkg")
    with pytest.raises(EmptyLayerError) as whole:
        read_layer(path, "permanent_farmland", work_crs=work_crs, catalogue=catalogue)
    with pytest.raises(EmptyLayerError) as chunked, open_layer(
            path, "permanent_farmland", work_crs=work_crs, catalogue=catalogue, chunk_features=CHUNK) as s:
        list(s.chunks())
    assert str(chunked.value) == str(whole.value)


def test_a_layer_of_one_chunk_is_read_whole(tmp_path: Path, catalogue, work_crs) -> None:
    path = write(grid_layer(300), tmp_path, "gpkg")
    with open_layer(path, "permanent_farmland", work_crs=work_crs, catalogue=catalogue,
                    chunk_features=CHUNK) as stream:
        chunks = list(stream.chunks())
    assert not stream.streamed and len(chunks) == 1 and len(chunks[0].frame) == 300


def test_chunks_follow_the_file_size_by_default(tmp_path: Path) -> None:
    from layers.stream import CHUNK_FEATURES, MIN_CHUNK_FEATURES, chunk_size

    path = tmp_path / "f.gpkg"
    path.write_bytes(b"x" * 1_000_000)
    assert chunk_size(path, 1) == MIN_CHUNK_FEATURES  # 1 MB a feature: few a chunk
    assert chunk_size(path, 10**7) == CHUNK_FEATURES  # 0.1 B a feature: the cap
    assert chunk_size(path, 10, chunk_features=7) == 7
