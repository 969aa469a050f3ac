"""Core messages in API words: form fields, not CLI options; what to send, not a temp path."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest

from api.errors import api_words
from tests.api.conftest import Api, rect
from tests.api.test_service import assert_error


@pytest.fixture
def shapefile_without_prj(tmp_path: Path) -> Path:
    folder = tmp_path / "shp"
    folder.mkdir()
    frame = gpd.GeoDataFrame({"dkbh": ["1"]}, geometry=[rect(1500, 400, 1600, 500)])  # no CRS: no .prj
    frame.to_file(folder / "parcels.shp")
    return folder / "parcels.shp"


def _zip(shp: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for part in shp.parent.iterdir():
            archive.write(part, part.name)
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_crs_missing_names_the_form_field_not_the_cli_option(fresh: Api, shapefile_without_prj: Path) -> None:
    for path, data in (
        ("/api/v1/layers", {"kind": "ecological_redline", "name": "redline"}),
        ("/api/v1/checks", {"project_type": "industrial"}),
    ):
        role = "admin" if "layers" in path else "planner"
        files = {"file": ("parcels.zip", _zip(shapefile_without_prj), "application/zip")}
        r = fresh.post(role, path, files=files, data=data)
        assert_error(r, 422, "crs_missing")
        detail = r.json()["detail"]
        assert "--crs" not in detail and "form field crs" in detail, detail
        assert "EPSG:4548" in detail  # an example to copy, and the zone hint from the core is kept


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_a_bare_shp_upload_says_to_send_the_parts_as_a_zip(fresh: Api, shapefile_without_prj: Path) -> None:
    for path, data, role in (
        ("/api/v1/layers", {"kind": "ecological_redline", "name": "redline"}, "admin"),
        ("/api/v1/checks", {"project_type": "industrial"}, "planner"),
    ):
        files = {"file": ("parcels.shp", shapefile_without_prj.read_bytes(), "application/octet-stream")}
        r = fresh.post(role, path, files=files, data=data)
        assert_error(r, 422, "unreadable_file")
        detail = r.json()["detail"]
        assert "upload the .shp/.shx/.dbf/.prj together as a .zip" in detail, detail
        assert "/tmp" not in detail and "SHAPE_RESTORE_SHX" not in detail


@pytest.mark.parametrize(
    ("core", "api"),
    [
        ("a.zip!a.shp: has no CRS and none was declared (pass --crs EPSG:N)",
         "a.zip!a.shp: has no CRS and none was declared (send the form field crs, e.g. crs=EPSG:4548)"),
        ("a.dbf: neither UTF-8 nor GBK; pass the encoding explicitly (--encoding)",
         "a.dbf: neither UTF-8 nor GBK; pass the encoding explicitly (the form field encoding)"),
        ("a.gpkg: holds 2 layers (x, y); name one with --layer",
         "a.gpkg: holds 2 layers (x, y); name one with the form field layer"),
        ("a.geojson: looks like GCJ-02; pass --crs GCJ02",
         "a.geojson: looks like GCJ-02; send the form field crs=GCJ02"),
        ("a.geojson: Declare the CRS as GCJ02 (CLI: --crs GCJ02) to convert them exactly",
         "a.geojson: Declare the CRS as GCJ02 (form field crs=GCJ02) to convert them exactly"),
        ("Import it again declaring the CRS as BD09 (CLI: --crs BD09 --replace)",
         "Import it again declaring the CRS as BD09 (form fields crs=BD09, replace=true)"),
        # no form field for transformation parameters: the advice stays, said as the command's
        ("Supply the 7-parameter set (CLI: --datum-params dx,dy,dz,rx,ry,rz,ds in metres), or convert",
         "Supply the 7-parameter set (with the blueprint command: --datum-params dx,dy,dz,rx,ry,rz,ds in "
         "metres), or convert"),
        ("nothing to say about options", "nothing to say about options"),
    ],
)
def test_api_words(core: str, api: str) -> None:
    assert api_words(core) == api
