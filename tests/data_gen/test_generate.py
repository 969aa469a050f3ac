"""Tests for data/generate.py: files readable as stated, conflicts really present, parcels as labelled."""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from shapely.geometry.base import BaseGeometry

from checks.rules import load_rules
from data.generate import generate
from layers.bubiao import read_bubiao
from layers.catalogue import load_catalogue

SEED = 20261123
FARMLAND = 600  # small: the whole module runs in a few seconds


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    manifest = generate(out, seed=SEED, farmland=FARMLAND)
    return out, manifest


def read(out: Path, entry: dict[str, Any], **kw: Any) -> gpd.GeoDataFrame:
    path = out / entry["path"]
    source = f"zip://{path}" if path.suffix == ".zip" else str(path)
    return gpd.read_file(source, layer=entry["layer"], engine="pyogrio", **kw)


def layer(out: Path, manifest: dict[str, Any], kind: str, **kw: Any) -> gpd.GeoDataFrame:
    entry = next(e for e in manifest["layers"] if e["kind"] == kind)
    return read(out, entry, **kw).to_crs(4548)


def union(frame: gpd.GeoDataFrame) -> BaseGeometry:
    return shapely.union_all(frame.geometry.to_numpy())


def geometry_digest(frame: gpd.GeoDataFrame) -> str:
    wkb = shapely.to_wkb(frame.geometry.to_numpy(), output_dimension=2)
    return hashlib.sha256(b"".join(wkb.tolist())).hexdigest()


def test_manifest_lists_existing_files(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    assert m["seed"] == SEED and m["work_crs"] == "EPSG:4548"
    assert json.loads((out / "manifest.json").read_text("utf-8")) == m
    for entry in [*m["layers"], *m["parcels"], *m["rasters"]]:
        assert (out / entry["path"]).is_file(), entry["path"]
    kinds = {e["kind"] for e in m["layers"]}
    assert kinds == {"ecological_redline", "permanent_farmland", "urban_boundary", "urban_space",
                     "agricultural_space", "ecological_space", "geohazard_zone", "detailed_plan",
                     "regional_assessment"}
    for name in (m["boundary"], m["districts"], m["projects"]):
        assert (out / name).is_file()


def test_boundaries_are_cgcs2000_and_gcj_offset_removed(demo: tuple[Path, dict[str, Any]]) -> None:
    from cnmaps import get_adm_maps

    out, _ = demo
    city = gpd.read_file(out / "city_boundary.geojson")
    assert city.crs.to_epsg() == 4490
    area_km2 = float(city.to_crs(4548).area.iloc[0]) / 1e6
    assert 2800 < area_km2 < 3200  # Tongling is about 3,008 km²
    districts = gpd.read_file(out / "districts.geojson")
    assert set(districts["区县"]) == {"铜官区", "义安区", "郊区", "枞阳县"}
    # the stored boundary is the 高德 (GCJ-02) one moved back by the GCJ offset: a few hundred metres
    raw = gpd.GeoSeries([get_adm_maps(city="铜陵市", level="市", record="first", only_polygon=True,
                                      wgs84=False).geom], crs=4490).to_crs(4548).iloc[0]
    ours = city.to_crs(4548).geometry.iloc[0]
    shift = raw.centroid.distance(ours.centroid)
    assert 100 < shift < 1000


def test_redline_is_gbk_shapefile_zip_without_cpg(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    entry = next(e for e in m["layers"] if e["kind"] == "ecological_redline")
    with zipfile.ZipFile(out / entry["path"]) as zf:
        names = zf.namelist()
        dbf = zf.read(next(n for n in names if n.endswith(".dbf")))
    assert {Path(n).suffix for n in names} == {".shp", ".shx", ".dbf", ".prj"}  # no .cpg
    assert dbf[29] == 0  # no language-driver hint either
    info = pyogrio.read_info(f"zip://{out / entry['path']}")
    assert info["crs"] == "EPSG:4527"
    gbk = read(out, entry, encoding="GBK")
    assert "长江铜陵段水生生物保护区" in set(gbk["名称"])
    assert set(gbk["类型"]) <= {"水源涵养", "生物多样性维护", "水土保持"}
    assert gbk.total_bounds[0] > 39_000_000  # zone-prefixed eastings
    naive = read(out, entry)  # without the encoding the text is mojibake, as departments' files are
    assert "名称" not in naive.columns


def test_farmland_gpkg(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    entry = next(e for e in m["layers"] if e["kind"] == "permanent_farmland")
    assert pyogrio.read_info(out / entry["path"], layer="永久基本农田")["crs"] == "EPSG:4548"
    fl = read(out, entry)
    assert len(fl) == FARMLAND
    assert fl["图斑编号"].is_unique
    assert set(fl["地类名称"]) == {"水田", "旱地"}
    assert np.allclose(fl["面积"], fl.area, atol=0.01)
    assert fl.is_valid.all()
    # patches do not overlap each other
    tree = shapely.STRtree(fl.geometry.to_numpy())
    pairs = tree.query(fl.geometry.to_numpy(), predicate="overlaps")
    assert pairs.shape[1] == 0


def test_other_vector_layers_have_stated_crs(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    expected = {"urban_boundary": 4490, "geohazard_zone": 4326, "urban_space": 4548}
    for kind, epsg in expected.items():
        entry = next(e for e in m["layers"] if e["kind"] == kind)
        assert read(out, entry).crs.to_epsg() == epsg, kind
    hz = layer(out, m, "geohazard_zone")
    assert hz["名称"].str.contains("高易发区").all()


def test_three_zones_tile_the_city(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    names = [n for n, _ in pyogrio.list_layers(out / "layers" / "three_zones.gpkg")]
    assert names == ["城镇空间", "农业空间", "生态空间"]
    city = gpd.read_file(out / m["boundary"]).to_crs(4548).geometry.iloc[0]
    zones = {k: union(layer(out, m, k)) for k in ("urban_space", "agricultural_space", "ecological_space")}
    total = sum(z.area for z in zones.values())
    assert total == pytest.approx(city.area, rel=1e-4)
    keys = list(zones)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert zones[a].intersection(zones[b]).area < 1.0, (a, b)


def test_raster_class3_is_the_hazard_zones(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    hz = union(layer(out, m, "geohazard_zone"))
    with rasterio.open(out / m["rasters"][0]["path"]) as src:
        assert src.crs.to_epsg() == 4548
        data = src.read(1)
        rows, cols = np.nonzero(data == 3)
        xs, ys = rasterio.transform.xy(src.transform, rows, cols)
    assert set(np.unique(data)) <= {0, 1, 2, 3, 255}
    inside = shapely.contains_xy(hz, np.asarray(xs), np.asarray(ys))
    assert len(inside) > 100 and inside.mean() > 0.97  # KML is lon/lat to 1e-?°: allow edge pixels


def test_listed_conflicts_exist_and_no_others(demo: tuple[Path, dict[str, Any]]) -> None:
    out, m = demo
    fl = layer(out, m, "permanent_farmland").set_index("图斑编号")
    red = union(layer(out, m, "ecological_redline", encoding="GBK"))
    urban = union(layer(out, m, "urban_boundary"))
    urban_space = union(layer(out, m, "urban_space"))
    by_type = {c["type"]: c for c in m["conflicts"]}
    assert set(by_type) == {"farmland_in_urban_boundary", "redline_over_farmland", "sliver_overlap",
                            "sliver_gap", "zone_contradicts_line", "plan_use_outside_urban_boundary"}
    for c in m["conflicts"]:
        if c["type"] == "plan_use_outside_urban_boundary":
            continue  # tested with the detailed plan below
        assert 116.8 < c["lon"] < 118.3 and 30.3 < c["lat"] < 31.2 and c["district"]
    c1 = by_type["farmland_in_urban_boundary"]
    got = union(fl.loc[c1["feature_ids"]]).intersection(urban).area
    assert got > 0 and got == pytest.approx(c1["area_m2"], rel=1e-4)
    c2 = by_type["redline_over_farmland"]
    assert union(fl.loc[c2["feature_ids"]]).intersection(red).area == pytest.approx(c2["area_m2"], rel=1e-4)
    c3 = by_type["sliver_overlap"]
    sliver = union(fl.loc[c3["feature_ids"]]).intersection(red)
    assert sliver.area > 0 and sliver.buffer(-0.11).is_empty  # thinner than 0.22 m everywhere
    c4 = by_type["sliver_gap"]
    gap_patch = union(fl.loc[c4["feature_ids"]])
    assert not gap_patch.intersects(red) and 0.15 < gap_patch.distance(red) < 0.25
    c5 = by_type["zone_contradicts_line"]
    assert urban_space.intersection(red).area == pytest.approx(c5["area_m2"], rel=1e-4) and c5["area_m2"] > 0
    # beyond what is listed, the lines are clean: no red line in the urban boundary, other farmland free
    assert red.intersection(urban).area < 1e-6
    listed = {fid for c in m["conflicts"] for fid in c.get("feature_ids", [])
              if "permanent_farmland" in c["layers"]}
    rest = union(fl.drop(index=list(listed)))
    assert rest.intersection(red).area < 1e-6 and rest.intersection(urban).area < 1e-6


@pytest.fixture(scope="module")
def parcels(demo: tuple[Path, dict[str, Any]]) -> gpd.GeoDataFrame:
    out, _ = demo
    return gpd.read_file(out / "parcels" / "all_parcels_expected.geojson").to_crs(4548)


def test_parcel_files_in_every_format(demo: tuple[Path, dict[str, Any]], parcels: gpd.GeoDataFrame) -> None:
    out, m = demo
    assert 45 <= len(parcels) <= 60 and parcels["parcel_id"].is_unique
    formats = {e["format"]: e for e in m["parcels"]}
    gj = gpd.read_file(out / formats["GeoJSON"]["path"])
    assert gj.crs.to_epsg() == 4326
    assert {"parcel_id", "name", "project_code", "expect"} <= set(gj.columns)
    batch = next(e for e in m["parcels"] if e["path"].endswith("bubiao_batch.txt"))
    bf = read_bubiao(out / batch["path"])
    assert bf.crs.to_epsg() == 4527 and list(bf.frame["parcel_id"]) == batch["parcel_ids"]
    assert len(bf.frame) >= 4
    (out / batch["path"]).read_bytes().decode("gbk")  # GBK as submission systems write it
    plain = read_bubiao(out / next(e for e in m["parcels"] if e["path"].endswith("no_prefix.txt"))["path"])
    assert plain.crs.to_epsg() == 4548
    expected = parcels.set_index("parcel_id")
    for frame in (bf.frame, plain.frame):
        for pid, geom in zip(frame["parcel_id"], frame.to_crs(4548).geometry, strict=True):
            assert geom.symmetric_difference(expected.loc[pid, "geometry"]).area < 0.01, pid
    dxf = gpd.read_file(out / formats["DXF"]["path"])
    assert formats["DXF"]["crs"] == "EPSG:4548" and dxf.crs is None
    assert set(dxf["Layer"]) == set(formats["DXF"]["parcel_ids"])
    all_ids = [pid for e in m["parcels"] for pid in e["parcel_ids"]]
    assert sorted(all_ids) == sorted(parcels["parcel_id"])


def overlaps(geom: BaseGeometry, target: BaseGeometry) -> float:
    return float(geom.intersection(target).area)


def test_parcels_are_what_their_label_says(demo: tuple[Path, dict[str, Any]],
                                           parcels: gpd.GeoDataFrame) -> None:
    out, m = demo
    city = gpd.read_file(out / m["boundary"]).to_crs(4548).geometry.iloc[0]
    lines = {
        "ecological_redline": union(layer(out, m, "ecological_redline", encoding="GBK")),
        "permanent_farmland": union(layer(out, m, "permanent_farmland")),
        "urban_boundary": union(layer(out, m, "urban_boundary")),
        "geohazard_zone": union(layer(out, m, "geohazard_zone")),
    }
    labels = set(parcels["expect"])
    assert {"clean", "redline", "farmland", "geohazard", "touch_farmland", "touch_redline", "tiny_overlap",
            "three_kinds", "partly_outside_city", "hole_excludes_farmland"} <= labels
    for row in parcels.itertuples():
        g = row.geometry
        area = {k: overlaps(g, v) for k, v in lines.items()}
        hits = {k for k, a in area.items() if a > 1.0}
        assert hits == set(filter(None, row.hits.split(","))), row.parcel_id  # recorded truth holds
        controls = hits - {"urban_boundary"}
        if row.expect == "clean":
            assert not controls and lines["urban_boundary"].contains(g), row.parcel_id
        elif row.expect in ("outside_urban", "near_miss"):
            assert not hits and city.contains(g), row.parcel_id
        elif row.expect == "redline":
            assert "ecological_redline" in hits, row.parcel_id
        elif row.expect == "farmland":
            assert "permanent_farmland" in hits and "ecological_redline" not in hits, row.parcel_id
        elif row.expect == "geohazard":
            assert controls == {"geohazard_zone"}, row.parcel_id
        elif row.expect.startswith("touch_"):
            kind = {"touch_farmland": "permanent_farmland", "touch_redline": "ecological_redline"}[row.expect]
            assert g.distance(lines[kind]) < 1e-3 and area[kind] < 1e-3, row.parcel_id
        elif row.expect == "tiny_overlap":
            assert 0.01 < area["permanent_farmland"] < 1.0, row.parcel_id
        elif row.expect == "three_kinds":
            assert {"ecological_redline", "permanent_farmland", "urban_boundary"} <= hits
        elif row.expect == "partly_outside_city":
            assert 0 < overlaps(g, city) < g.area and not controls
        elif row.expect == "partly_outside_urban":
            assert 0 < area["urban_boundary"] < g.area and not controls
        elif row.expect == "hole_excludes_farmland":
            hole = shapely.Polygon(g.interiors[0])
            assert hole.intersection(lines["permanent_farmland"]).area > 100 and not hits
        else:
            pytest.fail(f"unknown expect label {row.expect}")
        if row.expect == "near_miss":
            assert 0.5 < g.distance(lines["permanent_farmland"]) < 2.0
    kinds = {p.geom_type for p in parcels.geometry}
    assert "MultiPolygon" in kinds
    assert any(len(p.interiors) for p in parcels.geometry if p.geom_type == "Polygon")


def test_projects(demo: tuple[Path, dict[str, Any]], parcels: gpd.GeoDataFrame) -> None:
    out, m = demo
    projects = json.loads((out / m["projects"]).read_text("utf-8"))
    assert 18 <= len(projects) <= 25
    ids = set(parcels["parcel_id"])
    project_types = load_rules(None, load_catalogue(None)).project_types
    for p in projects:
        assert re.fullmatch(r"2026-3407\d\d-\d\d-0[123]-\d{6}", p["code"]), p["code"]
        assert p["project_type"] in project_types  # a group or a finer type of the built-in rules
        assert p["district"] in {"铜官区", "义安区", "郊区", "枞阳县"}
        assert p["parcel_ids"] and set(p["parcel_ids"]) <= ids
    assert len({p["code"] for p in projects}) == len(projects)
    coded = parcels.set_index("parcel_id")["project_code"]
    for p in projects:
        assert set(coded.loc[p["parcel_ids"]]) == {p["code"]}


def test_reproducible_and_seed_sensitive(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, m = demo
    again = generate(tmp_path / "again", seed=SEED, farmland=FARMLAND)
    assert again["checksums"] == m["checksums"]
    assert again["conflicts"] == m["conflicts"]
    for entry in m["layers"]:
        kw = {"encoding": "GBK"} if entry["path"].endswith(".zip") else {}
        first, second = read(out, entry, **kw), read(tmp_path / "again", entry, **kw)
        assert geometry_digest(first) == geometry_digest(second), entry["path"]
    assert (out / "projects.json").read_bytes() == (tmp_path / "again" / "projects.json").read_bytes()
    other = generate(tmp_path / "other", seed=SEED + 1, farmland=FARMLAND)
    assert other["checksums"]["farmland"] != m["checksums"]["farmland"]


# ---------------------------------------------------------------- detailed plan, regional assessments


def test_detailed_plan_codes_limits_and_deliberate_outside_parcels(demo: tuple[Path, dict[str, Any]]) -> None:
    from layers.land_use import load_land_use_codes

    out, m = demo
    plan = layer(out, m, "detailed_plan")
    codes = load_land_use_codes()
    assert 300 <= len(plan) <= 900 and plan["DKBH"].is_unique
    assert all(codes.get(c) is not None for c in plan["YDDM"]), set(plan["YDDM"])
    assert {"0701", "0901", "1001", "0801", "1401"} <= set(plan["YDDM"])
    homes = plan[plan["YDDM"] == "0701"]
    assert homes["RJL"].between(1.8, 3.0).all() and (homes["LDL"] >= 30).all() and homes["JZXG"].notna().all()
    industry = plan[plan["YDDM"] == "1001"]
    assert (industry["RJLXX"] == 1.0).all() and (industry["RJL"] >= industry["RJLXX"]).all()
    # no plan parcel on the red line or on permanent farmland
    red = union(layer(out, m, "ecological_redline", encoding="GBK"))
    farm = union(layer(out, m, "permanent_farmland"))
    assert union(plan).intersection(red).area < 1e-6 and union(plan).intersection(farm).area < 1e-6
    # the deliberate 差异图斑: urban construction uses outside the urban boundary, each listed
    urban = union(layer(out, m, "urban_boundary"))
    outside = plan[plan.geometry.difference(urban).area > 1.0].set_index("DKBH")
    listed = {fid for c in m["conflicts"] if c["type"] == "plan_use_outside_urban_boundary"
              for fid in c["feature_ids"]}
    expected = {fid for fid, use in outside["YDDM"].items() if codes.in_group(use, "urban_construction")}
    assert len(listed) >= 4 and listed == expected
    assert len(outside) > len(listed)  # rural homesteads and highways may lie outside: not listed
    for c in m["conflicts"]:
        if c["type"] == "plan_use_outside_urban_boundary":
            piece = outside.loc[c["feature_ids"][0]].geometry.difference(urban)
            assert piece.area == pytest.approx(c["area_m2"], rel=1e-4)


def test_regional_assessments_types_dates_and_one_expired(demo: tuple[Path, dict[str, Any]]) -> None:
    import datetime as dt

    out, m = demo
    areas = layer(out, m, "regional_assessment")
    types = load_catalogue(None).assessment_types
    names = {t.name_zh: key for key, t in types.items()}
    kinds = {names.get(v, v) for v in areas["PGLX"]}
    assert kinds <= set(types) and len(kinds) >= 6
    # GDAL's GeoJSON driver reads the YYYY-MM-DD strings as dates
    approved = [dt.date.fromisoformat(str(d)[:10]) for d in areas["PZRQ"]]
    until = [dt.date.fromisoformat(str(d)[:10]) for d in areas["YXQZ"]]
    assert all(a < u for a, u in zip(approved, until, strict=True))
    fixed_day = dt.date(2026, 11, 23)  # the generator's production date: the demo's "today"
    assert sum(u < fixed_day for u in until) >= 1 and sum(u >= fixed_day for u in until) >= 5
    assert areas["WH"].str.contains("〔20").all()


def test_demo_projects_declare_plans_one_beyond_each_limit(demo: tuple[Path, dict[str, Any]],
                                                           parcels: gpd.GeoDataFrame) -> None:
    out, m = demo
    projects = json.loads((out / "projects.json").read_text("utf-8"))
    plan = layer(out, m, "detailed_plan")
    declared = [p for p in projects if p.get("declared")]
    assert len(declared) >= 3
    geoms = parcels.set_index("parcel_id").geometry
    beyond = {}
    for p in declared:
        under = plan[plan.intersects(union(geoms.loc[p["parcel_ids"]].to_frame()))]
        d = p["declared"]
        beyond[p["code"]] = {k for k, over in (("far", d["far"] > under["RJL"].min()),
                                                ("height_m", d["height_m"] > under["JZXG"].min())) if over}
        assert d["building_density"] <= under["JZMD"].min() and d["green_ratio"] >= under["LDL"].max()
    assert sorted(tuple(sorted(v)) for v in beyond.values() if v) == [("far",), ("height_m",)]
