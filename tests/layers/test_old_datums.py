"""Beijing 1954 / Xi'an 1980 input (issue #11): refused in words without parameters, never PROJ's silent
ballpark (a zero shift); converted by a supplied 7-parameter set (--datum-params)."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box
from typer.testing import CliRunner

from layers.crs import bind_datum_params, parse_datum_params
from layers.errors import CRSError, OldDatumError
from layers.ingest import read_layer, read_parcels

# a made-up but realistic-sized set (tens of metres): what a provincial 转换参数 table looks like
PARAMS = (-20.0, 80.0, 50.0, 0.5, -0.3, 1.2, 2.0)
CORNERS = [(117.800, 30.900), (117.803, 30.900), (117.803, 30.902), (117.800, 30.902)]


def xian80_bubiao(path):
    """A 部标 file in 1980西安坐标系 3° CM 117°E (EPSG:2384): CGCS2000 corners taken there with PARAMS."""
    to_xian = Transformer.from_crs(4326, bind_datum_params(CRS.from_epsg(2384), PARAMS), always_xy=True)
    points = [to_xian.transform(lon, lat) for lon, lat in [*CORNERS, CORNERS[0]]]
    lines = ["[属性描述]", "坐标系=1980西安坐标系", "几度分带=3", "投影类型=高斯克吕格", "计量单位=米",
             "带号=39", "精度=0.0001", "转换参数=,,,,,,", "[地块坐标]", "5,5.8000,XA-1,西安80地块,面,,,,@"]
    lines += [f"J{i % 4 + 1},1,{y:.4f},{x:.4f}" for i, (x, y) in enumerate(points)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    return path


def test_xian80_bubiao_without_parameters_is_refused_in_words(tmp_path, work_crs):
    path = xian80_bubiao(tmp_path / "xian80.txt")
    with pytest.raises(OldDatumError) as caught:
        read_parcels(path, work_crs=work_crs)
    message = caught.value.user_message
    assert caught.value.code == "crs_old_datum"
    assert "xian80.txt" in message and "Xi'an 1980" in message and "--datum-params" in message


def test_xian80_bubiao_with_parameters_lands_on_the_cgcs2000_corners(tmp_path, work_crs):
    path = xian80_bubiao(tmp_path / "xian80.txt")
    parcels = read_parcels(path, work_crs=work_crs, datum_params=PARAMS)
    got = parcels.frame.to_crs(4490).geometry.iloc[0]
    assert got.equals_exact(Polygon(CORNERS), 1e-8)  # 1e-8° ≈ 1 mm
    assert any("7 parameters" in n and "-20" in n for n in parcels.notes)
    # what PROJ alone does with the same file: its ballpark (a zero shift) lands 23 m away here
    to_xian = Transformer.from_crs(4326, bind_datum_params(CRS.from_epsg(2384), PARAMS), always_xy=True)
    x, y = Transformer.from_crs(2384, 4548, always_xy=True).transform(*to_xian.transform(*CORNERS[0]))
    bx, by = parcels.frame.geometry.iloc[0].exterior.coords[0]
    assert 10 < ((x - bx) ** 2 + (y - by) ** 2) ** 0.5 < 100


def test_beijing54_shapefile_is_refused_and_converted_with_parameters(tmp_path, work_crs, catalogue):
    frame = gpd.GeoDataFrame({"BSM": [1]}, geometry=[box(117.80, 30.90, 117.81, 30.91)], crs=4326)
    path = tmp_path / "redline54.shp"
    frame.to_crs(bind_datum_params(CRS.from_epsg(2436), PARAMS)).set_crs(2436, allow_override=True) \
        .to_file(path)
    with pytest.raises(OldDatumError, match="Beijing 1954"):
        read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue)
    layer = read_layer(path, "ecological_redline", work_crs=work_crs, catalogue=catalogue,
                       datum_params=PARAMS)
    assert layer.frame.to_crs(4490).geometry.iloc[0].hausdorff_distance(frame.geometry.iloc[0]) < 1e-8


def test_datum_params_must_be_seven_numbers():
    assert parse_datum_params("1,2,3,0.1,0.2,0.3，4") == (1, 2, 3, 0.1, 0.2, 0.3, 4)
    with pytest.raises(CRSError, match="7 numbers"):
        parse_datum_params("1,2,3")


def test_cli_convert_refuses_then_converts_with_datum_params(tmp_path, monkeypatch):
    from cli.main import build_app

    monkeypatch.setenv("BLUEPRINT_DATA_DIR", str(tmp_path / "var"))
    path = xian80_bubiao(tmp_path / "xian80.txt")
    app, runner = build_app(), CliRunner()
    target = str(tmp_path / "out.geojson")
    refused = runner.invoke(app, ["parcels", "convert", str(path), target])
    assert refused.exit_code == 3
    assert json.loads(refused.stdout)["error"]["code"] == "crs_old_datum"
    done = runner.invoke(app, ["parcels", "convert", str(path), target,
                               "--datum-params", ",".join(str(v) for v in PARAMS)])
    assert done.exit_code == 0, done.output
    out = gpd.read_file(target)
    assert out.geometry.iloc[0].hausdorff_distance(Polygon(CORNERS)) < 1e-7
