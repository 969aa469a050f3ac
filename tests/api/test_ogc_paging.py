"""OGC items pages read only the page's rows in SQL: same features as the whole-frame path, numberMatched
and next links right, on SpatiaLite and PostGIS; the statements that read pieces carry the page's LIMIT."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

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
from layers.crs import OUTPUT_CRS
from tests.api.conftest import Api, make_keys, rect, settings_for

# a red line crossing a row of farmland patches inside an urban boundary: a few dozen pieces, conflicts
FARMLAND = [rect(100 + 150 * i, 100 + 300 * j, 200 + 150 * i, 250 + 300 * j)
            for i in range(6) for j in range(3)]
REDLINE = [rect(50, 150, 1000, 200), rect(300, 650, 420, 900)]
URBAN = [rect(600, 0, 1000, 1000)]
BOUNDARY = [rect(0, 0, 1000, 1000)]
PAGED = ("blueprint-v1-pieces", "blueprint-v1-conflicts", "layer-farmland")


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
        yield api
    app.state.services.close()


def _frame_page(api: Api, collection_id: str, start: int, size: int,
                bbox: str | None, crs: str | None = None) -> tuple[list[Any], int]:
    """The page as the whole-frame path computes it (the reference: the path CQL2 filters still take)."""
    services = api.services
    work = services.settings.work_crs
    frame = frame_of(services, find(services, collection_id))
    if bbox:
        area = ogc_crs.parse_bbox(bbox, ogc_crs.resolve(None, work, parameter="bbox-crs"), work)
        frame = frame.iloc[np.sort(frame.sindex.query(area, predicate="intersects"))]
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


def test_a_filter_still_takes_the_frame_path(grid: Api) -> None:
    path = "/ogc/collections/blueprint-v1-pieces/items"
    everything = grid.get("planner", path, params={"limit": 1000}).json()["features"]
    wanted = sorted(f["id"] for f in everything if f["properties"]["kind"] == "ecological_redline")
    got = grid.get("planner", path, params={"filter": "kind = 'ecological_redline'", "limit": 1000}).json()
    assert wanted and sorted(f["id"] for f in got["features"]) == wanted
    assert got["numberMatched"] == len(wanted)
