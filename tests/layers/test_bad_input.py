"""Unreadable, truncated, oversized and empty input gives a domain error naming the file."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Polygon

from layers.errors import (
    EmptyLayerError,
    FileTooLargeError,
    OneBlueprintError,
    UnknownKindError,
    UnreadableLayerError,
)
from layers.ingest import read_layer, read_parcels
from layers.model import Limits
from tests.geoms import EMPTY, X0, Y0


def _write(frame: gpd.GeoDataFrame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".kml":
        frame.to_file(path, driver="KML")
    else:
        frame.to_file(path)
    return path


@pytest.mark.parametrize("name", ["red.gpkg", "red.geojson", "red.fgb", "red.parquet", "red.shp", "red.kml"])
def test_truncated_files(tmp_path, red_frame, work_crs, name):
    frame = red_frame.to_crs(4326) if name.endswith(".kml") else red_frame
    path = _write(frame, tmp_path / name)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(UnreadableLayerError) as err:
        read_parcels(path, work_crs=work_crs)
    assert name in err.value.user_message


def test_garbage_with_a_known_extension(tmp_path, work_crs):
    path = tmp_path / "plan.gpkg"
    path.write_bytes(b"this is not a geopackage at all" * 10)
    with pytest.raises(UnreadableLayerError, match=r"plan\.gpkg.*GeoPackage"):
        read_parcels(path, work_crs=work_crs)


def test_truncated_geotiff(tmp_path, catalogue, work_crs):
    import rasterio
    from affine import Affine

    path = tmp_path / "slope.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs="EPSG:4548", transform=Affine(10, 0, X0, 0, -10, Y0)) as dst:
        dst.write(np.ones((64, 64), dtype="uint8"), 1)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UnreadableLayerError, match=r"slope\.tif"):
        read_layer(path, "geohazard_zone", work_crs=work_crs, catalogue=catalogue)


def test_missing_file(tmp_path, work_crs):
    with pytest.raises(UnreadableLayerError, match=r"nope\.gpkg"):
        read_parcels(tmp_path / "nope.gpkg", work_crs=work_crs)


def test_file_over_the_byte_limit(tmp_path, red_frame, work_crs):
    path = _write(red_frame, tmp_path / "red.gpkg")
    with pytest.raises(FileTooLargeError, match=r"red\.gpkg.*upload limit"):
        read_parcels(path, work_crs=work_crs, limits=Limits(max_bytes=1000))


def test_shapefile_size_counts_all_its_parts(tmp_path, red_frame, work_crs):
    path = _write(red_frame, tmp_path / "red.shp")
    shp_only = path.stat().st_size
    with pytest.raises(FileTooLargeError):
        read_parcels(path, work_crs=work_crs, limits=Limits(max_bytes=shp_only + 10))


def test_too_many_features(tmp_path, red_frame, work_crs):
    path = _write(red_frame, tmp_path / "red.gpkg")
    with pytest.raises(FileTooLargeError, match="3 features"):
        read_parcels(path, work_crs=work_crs, limits=Limits(max_features=2))


def test_too_many_vertices(tmp_path, work_crs):
    angles = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    circle = Polygon(np.c_[X0 + 100 * np.cos(angles), Y0 + 100 * np.sin(angles)])
    path = _write(gpd.GeoDataFrame(geometry=[circle], crs=4548), tmp_path / "circle.fgb")
    with pytest.raises(FileTooLargeError, match="501 vertices"):
        read_parcels(path, work_crs=work_crs, limits=Limits(max_vertices=400))


def test_layer_of_only_empty_geometries(tmp_path, work_crs):
    path = _write(gpd.GeoDataFrame({"id": [1]}, geometry=[EMPTY], crs=4548), tmp_path / "empty.gpkg")
    with pytest.raises(EmptyLayerError, match=r"empty\.gpkg"):
        read_parcels(path, work_crs=work_crs)


def test_unknown_kind(tmp_path, red_frame, catalogue, work_crs):
    path = _write(red_frame, tmp_path / "red.gpkg")
    with pytest.raises(UnknownKindError, match="nonsense"):
        read_layer(path, "nonsense", work_crs=work_crs, catalogue=catalogue)


def test_geographic_work_crs_is_refused(tmp_path, red_frame, catalogue):
    from pyproj import CRS

    path = _write(red_frame, tmp_path / "red.gpkg")
    with pytest.raises(OneBlueprintError, match="projected"):
        read_layer(path, "ecological_redline", work_crs=CRS.from_epsg(4490), catalogue=catalogue)
