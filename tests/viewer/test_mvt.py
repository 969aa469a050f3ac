"""MVT tiles: the encoder against an independent decoder, the per-version archive, the route's caching."""

from __future__ import annotations

import gzip
import sqlite3
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from shapely.geometry import Polygon, box, shape

from tests.viewer.conftest import PARCEL, WORK, MemorySource, make_app, signed_in, to_4326
from viewer.archive import TileArchive, archive_path, build_version_tiles, city_tiles
from viewer.mvt import EXTENT, encode_tile, varints
from viewer.tilegrid import tile_bounds, tile_of
from viewer.tiles import TileService

mvt = pytest.importorskip("mapbox_vector_tile")  # the independent decoder (dev dependency)

BOUNDS = (0.0, 0.0, 4096.0, 4096.0)  # tile units = source units, y up (flipped on decode below)
GROUPS = {"ecological_redline": "line", "permanent_farmland": "line", "urban_boundary": "line",
          "ecological_space": "zone", "agricultural_space": "zone", "urban_space": "zone",
          "geohazard_zone": "overlay", "city_boundary": "boundary"}


def decode(body: bytes) -> dict[str, Any]:
    return mvt.decode(body, default_options={"y_coord_down": True})


def test_varints_match_the_protobuf_encoding() -> None:
    import numpy as np

    values = np.array([0, 1, 127, 128, 300, 16_383, 16_384, 2**32 - 1], dtype=np.int64)
    data, starts = varints(values)
    expected = [b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\xff\x7f", b"\x80\x80\x01",
                b"\xff\xff\xff\xff\x0f"]
    assert [data[starts[i]:starts[i + 1]].tobytes() for i in range(len(values))] == expected


def test_a_polygon_with_a_hole_and_a_multipolygon_decode_back_exactly() -> None:
    ring = Polygon([(100, 100), (1000, 100), (1000, 1000), (100, 1000)],
                   [[(300, 300), (300, 600), (600, 600), (600, 300)]])
    multi = shapely.MultiPolygon([box(2000, 2000, 2500, 2500), box(3000, 3000, 3100, 3200)])
    props = {"conflict_id": "C1", "n": -3, "ok": True, "名称": "生态保护红线"}
    zone = {"kind": "urban_space", "area_m2": 12.5}
    body = encode_tile([("zones", [(ring, zone), (multi, props)])], BOUNDS)
    layer = decode(body)["zones"]
    assert layer["extent"] == EXTENT
    first, second = layer["features"]
    assert first["properties"] == zone
    assert second["properties"] == props
    # y is flipped (tile y grows down): compare with the mirrored geometry
    flip = lambda g: shapely.transform(g, lambda xy: xy * [1, -1] + [0, 4096])  # noqa: E731
    assert shape(first["geometry"]).symmetric_difference(flip(ring)).area == 0
    assert shape(second["geometry"]).symmetric_difference(flip(multi)).area == 0
    assert shape(first["geometry"]).area == ring.area  # the hole stayed a hole


def test_winding_follows_the_specification() -> None:
    """Exterior rings have positive area in tile coordinates (y down), holes negative (MVT 2.1 §4.3.4.4)."""
    import numpy as np

    from viewer.mvt import geometry_commands

    square, hole = [(0, 0), (100, 0), (100, 100), (0, 100)], [(10, 10), (10, 50), (50, 50), (50, 10)]
    for poly in (Polygon(square, [hole]), Polygon(square[::-1], [hole[::-1]])):  # both windings in
        ints, _ = geometry_commands(np.array([poly], dtype=object), BOUNDS)
        rings, x, y, i, ints_l = [], 0, 0, 0, ints.tolist()
        while i < len(ints_l):
            cmd, count = ints_l[i] & 7, ints_l[i] >> 3
            i += 1
            if cmd == 1:
                rings.append([])
            for _ in range(count if cmd != 7 else 0):
                dx, dy = ints_l[i], ints_l[i + 1]
                x += (dx >> 1) ^ -(dx & 1)
                y += (dy >> 1) ^ -(dy & 1)
                rings[-1].append((x, y))
                i += 2
        areas = [sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(r, r[1:] + r[:1], strict=True)) for r in rings]
        assert areas[0] > 0 and areas[1] < 0


def test_rings_that_collapse_at_the_tile_grid_are_dropped() -> None:
    tiny = box(10.0, 10.0, 10.2, 10.2)  # a fifth of a tile unit: nothing left after quantising
    kept = box(100, 100, 200, 200)
    assert encode_tile([("a", [(tiny, {"k": 1})])], BOUNDS) == b""
    layer = decode(encode_tile([("a", [(tiny, {"k": 1}), (kept, {"k": 2})])], BOUNDS))["a"]
    assert [f["properties"]["k"] for f in layer["features"]] == [2]


def test_one_tile_carries_every_layer_with_the_panel_attributes() -> None:
    service = TileService(MemorySource(), GROUPS)
    bounds = MemorySource().city_bounds_4326()
    lon, lat = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
    x, y = tile_of(lon, lat, 14)
    layers = decode(gzip.decompress(service.mvt("v1", 14, x, y)))
    assert set(layers) == {*GROUPS, "conflicts"}  # everything but 'unplanned', which v1 has none of
    conflict = layers["conflicts"]["features"][0]["properties"]
    assert conflict["conflict_id"] == "C000001" and conflict["kind_a"] == "permanent_farmland"
    assert conflict["area_m2"] == pytest.approx(10_000.0) and "永久基本农田优先" in conflict["resolution"]
    zone = layers["urban_space"]["features"][0]["properties"]
    assert zone["kind"] == "urban_space" and zone["area_m2"] > 0
    # the same areas as the per-layer GeoJSON tiles, to the tile grid's precision
    minx, _, maxx, _ = tile_bounds(14, x, y)
    unit = ((maxx - minx) / EXTENT) ** 2
    for key in ("ecological_redline", "permanent_farmland"):
        mvt_area = sum(shape(f["geometry"]).area for f in layers[key]["features"]) * unit
        geo_area = sum(g.area for g, _ in service.index("v1", key).tile(14, x, y))
        assert mvt_area == pytest.approx(geo_area, rel=2e-3), key


def test_the_archive_holds_the_same_tiles_as_on_demand(tmp_path: Path) -> None:
    source = MemorySource()
    service = TileService(source, GROUPS)
    path = build_version_tiles(source, "v1", tmp_path, zooms=[12, 14], groups=GROUPS)
    assert path == archive_path(tmp_path, "v1") and path.exists()
    assert not list(tmp_path.glob("*.tmp")), "written through a temporary file, renamed into place"
    archive = TileArchive(path)
    assert (archive.minzoom, archive.maxzoom) == (12, 14)
    bounds = source.city_bounds_4326()
    for z, x, y in city_tiles(bounds, [12, 14]):
        assert archive.get(z, x, y) == service.mvt("v1", z, x, y)
    assert archive.get(12, 0, 0) == b""  # a zoom it holds, outside the city: an empty tile
    assert archive.get(13, 0, 0) is None and archive.get(15, 0, 0) is None  # not built: tiled on demand
    with sqlite3.connect(path) as db:  # MBTiles: TMS rows (y flipped), format pbf
        meta = dict(db.execute("SELECT name, value FROM metadata"))
        rows = db.execute("SELECT zoom_level, tile_column, tile_row FROM tiles").fetchall()
    assert meta["format"] == "pbf" and meta["minzoom"] == "12"
    x, y = tile_of((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, 14)
    assert (14, x, (1 << 14) - 1 - y) in rows


def test_the_tile_route_caches_published_tiles_for_good(tmp_path: Path) -> None:
    client = signed_in(make_app(MemorySource(), tiles_dir=tmp_path))
    bounds = MemorySource().city_bounds_4326()
    x, y = tile_of((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, 14)
    url = f"/viewer/tiles/v1/14/{x}/{y}.mvt"
    first = client.get(url)
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert first.headers["content-encoding"] == "gzip"
    assert "immutable" in first.headers["cache-control"]
    assert "conflicts" in decode(first.content)  # httpx undid the gzip
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert decode(plain.content).keys() == decode(first.content).keys()
    # the first request started the archive's build in the background; then tiles come from it, the same
    deadline = time.monotonic() + 60
    while not archive_path(tmp_path, "v1").exists():
        assert time.monotonic() < deadline, "the archive was not built"
        time.sleep(0.1)
    assert client.get(url).headers["etag"] == first.headers["etag"]
    for bad in ("/viewer/tiles/v9/14/1/1.mvt", f"/viewer/tiles/v1/14/{1 << 14}/{y}.mvt",
                "/viewer/tiles/v1/23/0/0.mvt", "/viewer/tiles/v1/14/x/1.mvt"):
        assert client.get(bad).status_code in (404, 422), bad


class DraftSource(MemorySource):
    def versions(self) -> list[dict[str, Any]]:
        return [{"version": v, "status": "draft"} for v in self.versions_]


def test_draft_tiles_are_revalidated_and_never_archived(tmp_path: Path) -> None:
    client = signed_in(make_app(DraftSource(), tiles_dir=tmp_path))
    first = client.get("/viewer/tiles/v1/14/13516/6712.mvt")
    assert first.status_code == 200 and first.headers["cache-control"] == "private, no-cache"
    assert client.get("/viewer/tiles/v1/14/13516/6712.mvt",
                      headers={"If-None-Match": first.headers["etag"]}).status_code == 304
    assert list(tmp_path.iterdir()) == []


class PoolSource(MemorySource):
    """The demo source with a project pool: one project's parcel, replaceable."""

    parcel = PARCEL

    def project_parcels(self) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"project_code": ["TL-2026-001"], "parcel_id": ["1"], "name": ["一期"],
                                 "area_m2": [self.parcel.area]}, geometry=[self.parcel], crs=WORK)


def test_the_project_pool_rides_in_the_same_tile_and_a_new_revision_changes_the_url(tmp_path: Path) -> None:
    source = PoolSource()
    app = make_app(source)
    client = signed_in(app)
    page = client.get("/viewer").text
    revision = page.split("?parcels=")[1].split('"')[0]
    assert "项目地块（项目库）" in page
    lon, lat = to_4326(PARCEL.centroid)["coordinates"]
    x, y = tile_of(lon, lat, 15)
    url = f"/viewer/tiles/v1/15/{x}/{y}.mvt"
    without = decode(client.get(url).content)
    assert "parcels" not in without
    tile = client.get(f"{url}?parcels={revision}")
    layers = decode(tile.content)
    assert set(without) < set(layers) and "immutable" in tile.headers["cache-control"]
    (feature,) = layers["parcels"]["features"]
    assert feature["properties"] == {"project_code": "TL-2026-001", "parcel_id": "1",
                                     "area_m2": pytest.approx(PARCEL.area)}
    # the pool changes (a new app: the first trusts its parcels for PARCELS_TTL): a new revision; a tile
    # asked with the old one is not kept for good
    source.parcel = box(*PARCEL.bounds).buffer(50)
    app2 = make_app(source)
    client2 = signed_in(app2)
    new_revision = client2.get("/viewer").text.split("?parcels=")[1].split('"')[0]
    assert new_revision != revision
    old = client2.get(f"{url}?parcels={revision}")
    assert old.headers["cache-control"] == "private, no-cache"
    grown = shape(decode(old.content)["parcels"]["features"][0]["geometry"])
    assert grown.area > shape(feature["geometry"]).area


def test_an_unreadable_archive_or_pool_never_breaks_the_map(tmp_path: Path) -> None:
    """A corrupt archive file: tiles come on demand; a pool that cannot be read: the page opens without it."""
    archive_path(tmp_path, "v1").write_bytes(b"not an mbtiles file")

    class BrokenPool(MemorySource):
        def project_parcels(self) -> gpd.GeoDataFrame:
            raise OSError("database gone")

    client = signed_in(make_app(BrokenPool(), tiles_dir=tmp_path))
    page = client.get("/viewer")
    assert page.status_code == 200 and "?parcels=" not in page.text
    tile = client.get("/viewer/tiles/v1/14/13516/6712.mvt")
    assert tile.status_code == 200
