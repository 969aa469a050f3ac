"""OGC items pages read only the page's rows in SQL: same features as the whole-frame path, numberMatched
and next links right, on SpatiaLite and PostGIS; the statements that read pieces carry the page's LIMIT."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import geopandas as gpd
import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pyproj import Transformer

from api.app import create_app
from api.ogc import _features
from api.ogc import crs as ogc_crs
from api.ogc.collections import find, frame_of
from api.ogc.filter import apply_filter, parse_filter
from layers.crs import OUTPUT_CRS
from tests.api.conftest import Api, collection, make_keys, rect, settings_for

# a red line crossing a row of farmland patches inside an urban boundary: a few dozen pieces, conflicts
FARMLAND = [rect(100 + 150 * i, 100 + 300 * j, 200 + 150 * i, 250 + 300 * j)
            for i in range(6) for j in range(3)]
REDLINE = [rect(50, 150, 1000, 200), rect(300, 650, 420, 900)]
URBAN = [rect(600, 0, 1000, 1000)]
BOUNDARY = [rect(0, 0, 1000, 1000)]
PAGED = ("blueprint-v1-pieces", "blueprint-v1-conflicts", "layer-farmland")
# three projects' parcels; some parcels have no name (NULL: `name <> 'x'` holds for them, as in pandas)
PROJECTS = [("东区项目", [rect(110 + 60 * i, 420, 150 + 60 * i, 470 + 20 * i) for i in range(5)]),
            ("西区项目", [rect(620, 620 + 70 * i, 700, 660 + 70 * i) for i in range(4)]),
            ("北区项目", [rect(300, 850, 380, 940)])]
PARCEL_NAMES = ["甲", "乙", None, "丁", None]


def _upload(api: Api, tmp: Path, kind: str, name: str, geoms: list[Any]) -> None:
    path = tmp / f"{name}.geojson"
    gpd.GeoDataFrame({"fid_src": [f"{name[:3].upper()}{i}" for i in range(len(geoms))],
                      "rank": np.arange(len(geoms), dtype=np.int64)},
                     geometry=geoms, crs="EPSG:4548").to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
    with path.open("rb") as fh:
        r = api.post("admin", "/api/v1/layers", files={"file": (path.name, fh, "application/geo+json")},
                     data={"kind": kind, "name": name})
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def grid(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("grid")
    app = create_app(settings_for(module_db_url, tmp))
    with TestClient(app) as client:
        api = Api(app, client, make_keys(app.state.services))
        for kind, name, geoms in (("permanent_farmland", "farmland", FARMLAND),
                                  ("ecological_redline", "redline", REDLINE),
                                  ("urban_boundary", "urban", URBAN),
                                  ("city_boundary", "boundary", BOUNDARY)):
            _upload(api, tmp, kind, name, geoms)
        version = api.post("admin", "/api/v1/blueprints", json={}).json()["version"]
        assert api.post("admin", f"/api/v1/blueprints/{version}/publish").status_code == 200
        for n, (name, parcels) in enumerate(PROJECTS):
            body = {"code": f"2026-340700-0{n}-01-00000{n}", "name": name, "project_type": "industrial",
                    "applicant": "某公司", "district": "铜官区",
                    "parcels": collection(*parcels, names=PARCEL_NAMES[: len(parcels)])}
            r = api.post("planner", "/api/v1/projects", json=body)
            assert r.status_code == 201, r.text
        yield api
    app.state.services.close()


def _frame_page(api: Api, collection_id: str, start: int, size: int,
                bbox: str | None, crs: str | None = None, cql: str | None = None) -> tuple[list[Any], int]:
    """The page as the whole-frame path computes it (the reference: the path every request took before)."""
    services = api.services
    work = services.settings.work_crs
    frame = frame_of(services, find(services, collection_id))
    if bbox:
        area = ogc_crs.parse_bbox(bbox, ogc_crs.resolve(None, work, parameter="bbox-crs"), work)
        frame = frame.iloc[np.sort(frame.sindex.query(area, predicate="intersects"))]
    if cql:
        at = ogc_crs.resolve(None, work, parameter="filter-crs")
        frame = apply_filter(frame, parse_filter(cql, None), at, work)
    out = ogc_crs.resolve(crs, work, parameter="crs")
    # through JSON, as the response is (tuples become lists)
    return json.loads(json.dumps(_features(frame.iloc[start:start + size], out))), len(frame)


def _bbox() -> str:
    to84 = Transformer.from_crs(4548, 4326, always_xy=True)
    w, s, e, n = to84.transform_bounds(*rect(250, 120, 700, 520).bounds)
    return f"{w},{s},{e},{n}"


@pytest.mark.parametrize("collection_id", PAGED)
@pytest.mark.parametrize("boxed", [False, True])
def test_sql_pages_equal_the_frame_pages(grid: Api, collection_id: str, boxed: bool) -> None:
    bbox = _bbox() if boxed else None
    params: dict[str, Any] = {"limit": 4, **({"bbox": bbox} if bbox else {})}
    path = f"/ogc/collections/{collection_id}/items"
    page = grid.get("planner", path, params=params).json()
    _, total = _frame_page(grid, collection_id, 0, 4, bbox)
    assert total >= 5 and page["numberMatched"] == total  # several pages, counted in SQL
    if boxed:
        assert total < grid.get("planner", path, params={"limit": 1}).json()["numberMatched"]
    start, seen = 0, []
    while True:
        expected, _ = _frame_page(grid, collection_id, start, 4, bbox)
        features = [{k: f[k] for k in ("type", "id", "geometry", "properties")} for f in page["features"]]
        assert features == expected  # same ids, properties (types too) and geometry, in the same order
        assert page["numberReturned"] == len(expected) and page["numberMatched"] == total
        seen += [f["id"] for f in page["features"]]
        nxt = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
        if nxt is None:
            break
        query = parse_qs(urlparse(nxt).query)
        start += 4
        assert query["offset"] == [str(start)] and query["limit"] == ["4"]
        assert (query.get("bbox") == [bbox]) if bbox else "bbox" not in query
        page = grid.get("planner", urlparse(nxt).path + "?" + urlparse(nxt).query).json()
    assert len(seen) == total == len(set(seen))
    past = grid.get("planner", path, params={**params, "offset": total + 3}).json()
    assert past["features"] == [] and past["numberMatched"] == total
    assert not any(link["rel"] == "next" for link in past["links"])


@pytest.mark.parametrize("crs", ["http://www.opengis.net/def/crs/EPSG/0/4490",
                                 "http://www.opengis.net/def/crs/EPSG/0/4548"])
def test_sql_pages_in_another_crs(grid: Api, crs: str) -> None:
    for collection_id in PAGED:
        page = grid.get("planner", f"/ogc/collections/{collection_id}/items",
                        params={"limit": 3, "offset": 1, "crs": crs})
        assert page.status_code == 200 and page.headers["Content-Crs"] == f"<{crs}>"
        expected, _ = _frame_page(grid, collection_id, 1, 3, None, crs)
        assert [{k: f[k] for k in ("id", "geometry", "properties")} for f in page.json()["features"]] == [
            {k: f[k] for k in ("id", "geometry", "properties")} for f in expected]


@pytest.mark.parametrize("collection_id", ["blueprint-v1-pieces", "layer-farmland"])
def test_an_items_page_reads_only_its_rows(grid: Api, collection_id: str) -> None:
    engine = grid.services.engine
    table = "pieces" if collection_id.startswith("blueprint") else "layer_features"
    reads: list[tuple[str, Any, int]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(rf"\bFROM {table}\b", statement):
            reads.append((statement, parameters, cursor.rowcount))

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        page = grid.get("planner", f"/ogc/collections/{collection_id}/items",
                        params={"limit": 3, "offset": 2}).json()
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)
    assert page["numberReturned"] == 3 and page["numberMatched"] > 6
    rows = [r for r in reads if "count(" not in r[0].lower()]
    assert rows, "the page was not read from the table"
    for statement, parameters, rowcount in rows:
        assert re.search(r"\bLIMIT\b", statement, re.IGNORECASE), statement
        values = list(parameters.values()) if isinstance(parameters, dict) else list(parameters)
        assert 3 in values and 2 in values, (statement, parameters)  # LIMIT 3 OFFSET 2, bound
        if engine.dialect.name == "postgresql":
            assert rowcount == 3  # psycopg2 reports the rows the server sent
    counts = [r for r in reads if "count(" in r[0].lower()]
    assert len(counts) == 1  # numberMatched from the database, not from a loaded frame


def _ll(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    """A rectangle in metres (EPSG:4548) as CRS84 bounds."""
    return Transformer.from_crs(4548, 4326, always_xy=True).transform_bounds(*rect(x0, y0, x1, y1).bounds)


def _polygon(x0: float, y0: float, x1: float, y1: float) -> str:
    w, s, e, n = _ll(x0, y0, x1, y1)
    return f"POLYGON(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))"


BOX = "BBOX({},{},{},{})".format(*_ll(250, 120, 700, 520))
# (collection, filter, whether it must select some but not all features)
FILTERS = [
    ("blueprint-v1-pieces", "kind = 'ecological_redline'", True),
    ("blueprint-v1-pieces", "kind <> 'ecological_redline' AND area_m2 > 1000", True),
    ("blueprint-v1-pieces", "NOT (kind IN ('permanent_farmland', 'urban_boundary'))", True),
    ("blueprint-v1-pieces", "area_m2 BETWEEN 500 AND 20000 OR kind LIKE 'eco%'", True),
    ("blueprint-v1-pieces", "kind LIKE '%_redline' OR kind LIKE 'URBAN%'", True),  # case counts
    ("blueprint-v1-pieces", "covered_by IS NULL", False),
    ("blueprint-v1-pieces", "kind > 'f' AND kind < 'q'", True),
    ("blueprint-v1-pieces", f"S_INTERSECTS(geometry, {BOX})", True),
    ("blueprint-v1-pieces", f"NOT S_INTERSECTS(geometry, {BOX}) AND kind = 'permanent_farmland'", True),
    ("blueprint-v1-pieces", f"S_WITHIN(geometry, {_polygon(0, 0, 520, 520)})", True),
    ("blueprint-v1-pieces", f"S_CONTAINS(geometry, {_polygon(120, 120, 130, 130)})", True),
    ("blueprint-v1-pieces", f"S_DISJOINT(geometry, {BOX})", True),
    ("blueprint-v1-pieces", "1 = 1", False),
    ("blueprint-v1-conflicts", "kind_a = 'ecological_redline' OR winner = 'permanent_farmland'", False),
    ("blueprint-v1-conflicts", "area_m2 < 3000", False),
    ("blueprint-v1-conflicts", f"S_INTERSECTS(geometry, {BOX}) AND resolution IS NOT NULL", True),
    ("layer-farmland", "rank >= 5 AND rank < 12", True),
    ("layer-farmland", "fid_src LIKE 'FAR1%' OR rank IN (2, 3, 'x')", True),
    ("layer-farmland", "NOT (rank = 2) AND id <> 'nothing'", True),
    ("layer-farmland", f"S_INTERSECTS(geometry, {BOX}) AND rank > 3", True),
    ("project-parcels", "name IS NULL", True),
    ("project-parcels", "name <> '甲'", True),
    ("project-parcels", "area_m2 > 3000 AND project_code = '2026-340700-01-01-000001'", True),
    ("project-parcels", "feature_key LIKE '%:2' OR parcel_id IN ('5')", True),
    ("project-parcels", f"S_INTERSECTS(geometry, {BOX})", True),
]


@pytest.mark.parametrize(("collection_id", "cql", "selective"), FILTERS)
def test_filtered_sql_pages_equal_the_frame_pages(grid: Api, collection_id: str, cql: str,
                                                  selective: bool) -> None:
    """A CQL2 filter translated to SQL selects what the frame path selected, page by page."""
    path = f"/ogc/collections/{collection_id}/items"
    everything = grid.get("planner", path, params={"limit": 1}).json()["numberMatched"]
    _, total = _frame_page(grid, collection_id, 0, 4, None, cql=cql)
    if selective:
        assert 0 < total < everything, (cql, total, everything)
    start = 0
    while True:
        page = grid.get("planner", path, params={"limit": 4, "offset": start, "filter": cql})
        assert page.status_code == 200, page.text
        body = page.json()
        expected, _ = _frame_page(grid, collection_id, start, 4, None, cql=cql)
        got = [{k: f[k] for k in ("type", "id", "geometry", "properties")} for f in body["features"]]
        assert got == expected, (cql, start)
        assert body["numberMatched"] == total
        start += 4
        if start >= total:
            break


def test_a_filter_with_a_bbox_equals_the_frame_page(grid: Api) -> None:
    cql = "kind <> 'urban_boundary'"
    for collection_id in ("blueprint-v1-pieces", "project-parcels"):
        page = grid.get("planner", f"/ogc/collections/{collection_id}/items",
                        params={"limit": 100, "filter": cql, "bbox": _bbox()} if "pieces" in collection_id
                        else {"limit": 100, "bbox": _bbox()}).json()
        expected, total = _frame_page(grid, collection_id, 0, 100, _bbox(),
                                      cql=cql if "pieces" in collection_id else None)
        assert [{k: f[k] for k in ("id", "geometry", "properties")} for f in page["features"]] == [
            {k: f[k] for k in ("id", "geometry", "properties")} for f in expected]
        assert page["numberMatched"] == total > 0


Reads = list[tuple[str, Any, int]]


def _reads(grid: Api, table: str, path: str, params: dict[str, Any]) -> tuple[Any, Reads]:
    """The response and every SELECT that read ``table`` while answering it."""
    engine = grid.services.engine
    reads: Reads = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and re.search(rf"\bFROM {table}\b", statement):
            reads.append((statement, parameters, cursor.rowcount))

    sa.event.listen(engine, "after_cursor_execute", record)
    try:
        response = grid.get("planner", path, params=params)
    finally:
        sa.event.remove(engine, "after_cursor_execute", record)
    assert response.status_code == 200, response.text
    return response.json(), reads


def _only_limited(grid: Api, reads: Reads, limit: int, returned: int, counts: int) -> None:
    rows = [r for r in reads if "count(" not in r[0].lower()]
    assert rows, "nothing was read from the table"
    for statement, parameters, rowcount in rows:
        assert re.search(r"\bLIMIT\b", statement, re.IGNORECASE), statement
        values = list(parameters.values()) if isinstance(parameters, dict) else list(parameters)
        assert limit in values, (statement, parameters)
        if grid.services.engine.dialect.name == "postgresql":
            assert rowcount == returned  # psycopg2 reports the rows the server sent
    assert len([r for r in reads if "count(" in r[0].lower()]) == counts


@pytest.mark.parametrize(("collection_id", "table", "cql"), [
    ("blueprint-v1-pieces", "pieces", f"kind = 'permanent_farmland' AND S_INTERSECTS(geometry, {BOX})"),
    ("layer-farmland", "layer_features", "rank >= 2"),
    ("project-parcels", "project_parcels", "area_m2 > 100"),
])
def test_a_filtered_page_reads_only_its_rows(grid: Api, collection_id: str, table: str, cql: str) -> None:
    body, reads = _reads(grid, table, f"/ogc/collections/{collection_id}/items",
                         {"limit": 2, "offset": 1, "filter": cql})
    assert body["numberReturned"] == 2 and body["numberMatched"] > 3
    _only_limited(grid, reads, 2, 2, counts=1)


def test_project_parcels_page_in_sql(grid: Api) -> None:
    body, reads = _reads(grid, "project_parcels", "/ogc/collections/project-parcels/items",
                         {"limit": 3, "offset": 2})
    expected, total = _frame_page(grid, "project-parcels", 2, 3, None)
    assert [{k: f[k] for k in ("id", "geometry", "properties")} for f in body["features"]] == [
        {k: f[k] for k in ("id", "geometry", "properties")} for f in expected]
    assert body["numberMatched"] == total == 10
    _only_limited(grid, reads, 3, 3, counts=1)


@pytest.mark.parametrize(("collection_id", "table"), [
    ("blueprint-v1-pieces", "pieces"), ("blueprint-v1-conflicts", "conflicts"),
    ("layer-farmland", "layer_features"), ("project-parcels", "project_parcels"),
])
def test_one_item_reads_one_row(grid: Api, collection_id: str, table: str) -> None:
    """/items/{id} equals the frame path's feature and reads that row only (no count either)."""
    expected, _ = _frame_page(grid, collection_id, 0, 10_000, None)
    for wanted in (expected[0], expected[len(expected) // 2], expected[-1]):
        path = f"/ogc/collections/{collection_id}/items/{quote(str(wanted['id']), safe='')}"
        body, reads = _reads(grid, table, path, {})
        assert {k: body[k] for k in ("type", "id", "geometry", "properties")} == wanted
        _only_limited(grid, reads, 1, 1, counts=0)
    missing = grid.get("planner", f"/ogc/collections/{collection_id}/items/no-such-id")
    assert missing.status_code == 404 and missing.json()["code"] == "feature_not_found"


def test_a_filter_on_a_layers_boolean_takes_the_frame_path(grid: Api, tmp_path: Path) -> None:
    """SQL would read a JSON boolean otherwise (1/0, 'true'): naming one, the request is answered from
    the frame as before; the other columns of the same layer still translate."""
    path = tmp_path / "flags.geojson"
    gpd.GeoDataFrame({"kept": [True, False, True], "rank": [1, 2, 3]},
                     geometry=[rect(100, 100, 150, 150), rect(300, 300, 350, 350), rect(500, 500, 550, 550)],
                     crs="EPSG:4548").to_crs(OUTPUT_CRS).to_file(path, driver="GeoJSON")
    with path.open("rb") as fh:
        r = grid.post("admin", "/api/v1/layers", files={"file": (path.name, fh, "application/geo+json")},
                      data={"kind": "permanent_farmland", "name": "flags"})
    assert r.status_code == 201, r.text
    for cql in ("kept = true", "rank > 1"):
        page = grid.get("planner", "/ogc/collections/layer-flags/items", params={"filter": cql}).json()
        expected, total = _frame_page(grid, "layer-flags", 0, 1000, None, cql=cql)
        assert [{k: f[k] for k in ("id", "geometry", "properties")} for f in page["features"]] == [
            {k: f[k] for k in ("id", "geometry", "properties")} for f in expected]
        assert page["numberMatched"] == total == 2


@pytest.mark.parametrize(("cql", "status"), [
    ("area_m2 = TRUE OR area_m2 IN (FALSE, 5)", 200),  # booleans as 0/1, as pandas compares them
    ("area_m2 > 100000000000000000000000000000", 200),  # past 64 bits: a float
    ("kind IN (1, 2.5, 'ecological_redline')", 200),  # values of the other kind never match
    ("kind = TRUE", 400),
    ("area_m2 BETWEEN 1 AND 'b'", 400),
    ("kind = POINT(1 2)", 400),
    ("kind = TIMESTAMP('2020-01-01T00:00:00Z')", 400),
])
def test_odd_filters_are_answered_or_refused_never_a_500(grid: Api, cql: str, status: int) -> None:
    names = {"blueprint-v1-pieces": ("kind", "area_m2"), "layer-farmland": ("fid_src", "rank"),
             "project-parcels": ("name", "area_m2")}  # a text and a number property of each
    for collection_id, (text, number) in names.items():
        cql_here = cql.replace("kind", text).replace("area_m2", number)
        r = grid.get("planner", f"/ogc/collections/{collection_id}/items", params={"filter": cql_here})
        assert r.status_code == status, (collection_id, cql_here, r.text)
        if status == 400:
            assert r.json()["code"] == "invalid_parameter"
