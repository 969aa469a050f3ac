"""Vector tiles: tile maths, which tiles a known polygon lands in, clipping, simplification, caching."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, shape

from tests.geoms import X0, Y0
from tests.viewer.conftest import WORK, MemorySource, b, pieces_frame
from viewer.layer_index import MARGIN_PX, build_index
from viewer.tilegrid import pixel_size, tile_bounds, tile_of, valid_tile
from viewer.tiles import TileService, tile_geojson

GROUPS = {"ecological_redline": "line", "permanent_farmland": "line", "urban_boundary": "line",
          "urban_space": "zone", "agricultural_space": "zone", "ecological_space": "zone",
          "geohazard_zone": "overlay", "city_boundary": "boundary"}
TO_3857 = Transformer.from_crs(WORK, "EPSG:3857", always_xy=True)
TO_4326 = Transformer.from_crs(WORK, "EPSG:4326", always_xy=True)


def in_3857(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda xy: np.column_stack(TO_3857.transform(xy[:, 0], xy[:, 1])))


def test_tile_bounds_of_the_world_and_a_known_tile() -> None:
    assert tile_bounds(0, 0, 0) == pytest.approx((-20037508.34, -20037508.34, 20037508.34, 20037508.34))
    minx, miny, maxx, _ = tile_bounds(1, 1, 0)  # north-east quarter
    assert (minx, miny) == pytest.approx((0, 0)) and maxx == pytest.approx(20037508.34)
    assert pixel_size(0) == pytest.approx(156543.03, rel=1e-6)


@pytest.mark.parametrize("z", [8, 12, 15, 18])
def test_tile_of_a_point_contains_it(z: int) -> None:
    lon, lat = TO_4326.transform(X0 + 123.0, Y0 - 456.0)
    x, y = tile_of(lon, lat, z)
    px, py = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    assert minx <= px < maxx and miny < py <= maxy


def test_valid_tile_rejects_outside_the_pyramid() -> None:
    assert valid_tile(0, 0, 0) and valid_tile(14, 16383, 16383)
    assert not valid_tile(14, 16384, 0) and not valid_tile(-1, 0, 0) and not valid_tile(23, 0, 0)


def test_a_known_polygon_lands_in_exactly_the_tiles_it_intersects() -> None:
    """The red line strip (600 m × 2 km) at z=15: every tile it meets has it, no other tile does."""
    pieces = pieces_frame([(b(-1000, -1000, -400, 1000), ["ecological_redline", "ecological_space"]),
                           (b(-400, -1000, 1000, 1000), ["urban_boundary", "urban_space"])])
    index = build_index(pieces, "ecological_redline", "line")
    strip = in_3857(b(-1000, -1000, -400, 1000))
    z = 15
    west, south = TO_4326.transform(X0 - 1400, Y0 - 1400)
    east, north = TO_4326.transform(X0 + 1400, Y0 + 1400)
    (x0, y0), (x1, y1) = tile_of(west, north, z), tile_of(east, south, z)
    hit, expected = set(), set()
    for x in range(x0, x1 + 1):
        for y in range(y0, y1 + 1):
            if index.tile(z, x, y):
                hit.add((x, y))
            # tiles are clipped with a few pixels of margin, so "intersects" is judged on the padded tile
            pad = pixel_size(z) * MARGIN_PX
            minx, miny, maxx, maxy = tile_bounds(z, x, y)
            if shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad).intersection(strip).area > 0:
                expected.add((x, y))
    assert hit == expected
    assert 4 <= len(hit) < (x1 - x0 + 1) * (y1 - y0 + 1)  # some tiles, not all of them


def test_tile_features_are_clipped_to_the_tile() -> None:
    pieces = pieces_frame([(b(-1000, -1000, 1000, 1000), ["urban_boundary", "urban_space"])])
    index = build_index(pieces, "urban_space", "zone")
    lon, lat = TO_4326.transform(X0, Y0)
    z = 16
    x, y = tile_of(lon, lat, z)
    (geom, props), = index.tile(z, x, y)
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    pad = pixel_size(z) * MARGIN_PX
    gx0, gy0, gx1, gy1 = geom.bounds
    assert gx0 >= minx - pad - 1e-6 and gx1 <= maxx + pad + 1e-6
    assert gy0 >= miny - pad - 1e-6 and gy1 <= maxy + pad + 1e-6
    # the dissolved part's area is in the working CRS (m²), not web-mercator's inflated one
    assert props == {"layer": "urban_space", "kind": "urban_space", "area_m2": pytest.approx(4_000_000.0)}


def _comb(teeth: int = 200) -> Polygon:
    """A comb: many 2 m teeth 1 m apart — simplification at low zoom is tempted to merge them."""
    coords = [(X0, Y0)]
    for i in range(teeth):
        x = X0 + 3 * i
        coords += [(x, Y0 + 300), (x + 2, Y0 + 300), (x + 2, Y0 + 5)]
    coords += [(X0 + 3 * teeth, Y0 + 5), (X0 + 3 * teeth, Y0), (X0, Y0)]
    return Polygon(coords)


def _saw(teeth: int = 300) -> Polygon:
    """A 600 m × 300 m block whose top edge zigzags by 1 m every 2 m (a digitised field edge)."""
    top = [(X0 + 2 * i, Y0 + 300 + (i % 2)) for i in range(teeth + 1)]
    return Polygon([(X0, Y0), *top, (X0 + 2 * teeth, Y0), (X0, Y0)])


@pytest.mark.parametrize("z", [10, 13, 16, 19])
@pytest.mark.parametrize("make", [_comb, _saw])
def test_simplification_keeps_validity(z: int, make: object) -> None:
    polygon = make()  # type: ignore[operator]
    assert polygon.is_valid
    pieces = pieces_frame([(polygon, ["urban_boundary", "urban_space"])])
    index = build_index(pieces, "urban_space", "zone")
    simplified = index.at_zoom(z)
    assert shapely.is_valid(simplified).all()
    assert not shapely.is_empty(simplified).any()
    assert shapely.get_num_coordinates(simplified).sum() <= shapely.get_num_coordinates(in_3857(polygon))
    lon, lat = TO_4326.transform(X0 + 300, Y0 + 150)
    x, y = tile_of(lon, lat, z)
    body = json.loads(tile_geojson(index.tile(z, x, y)))
    assert body["features"], "the shape is in the tile under its middle"
    for feature in body["features"]:
        assert shape(feature["geometry"]).is_valid


@pytest.mark.parametrize(("z", "at_most"), [(10, 10), (14, 10), (19, 400)])
def test_simplification_drops_detail_below_a_pixel(z: int, at_most: int) -> None:
    """1 m zigzags vanish at city zoom (a pixel ≈ 100 m) and survive at street zoom (≈ 0.2 m)."""
    index = build_index(pieces_frame([(_saw(), ["urban_boundary", "urban_space"])]), "urban_space", "zone")
    count = int(shapely.get_num_coordinates(index.at_zoom(z)).sum())
    assert count <= at_most
    if z >= 19:
        assert count > 200


def test_kind_layers_are_dissolved_and_follow_effective_kinds() -> None:
    source = MemorySource()
    service = TileService(source, GROUPS)
    urban = service.index("v1", "urban_space")
    assert len(urban.geoms) == 1, "three adjacent urban pieces draw as one shape (no inner seams)"
    expected = in_3857(b(-400, 0, 1000, 1000).union(b(200, -1000, 1000, 0)))
    # vertices differ where the pieces met (a straight GK edge is not straight in web mercator)
    assert urban.geoms[0].symmetric_difference(expected).area < 1e-5 * expected.area
    # the overlay counts what covers the piece; the boundary is on every piece
    assert len(service.index("v1", "geohazard_zone").geoms) == 1
    boundary = service.index("v1", "city_boundary").geoms[0]
    assert boundary.area == pytest.approx(in_3857(b(-1000, -1000, 1000, 1000)).area, rel=1e-6)


def test_conflicts_layer_keeps_its_properties() -> None:
    service = TileService(MemorySource(), GROUPS)
    (props,) = service.index("v1", "conflicts").props
    assert props["conflict_id"] == "C000001" and props["winner"] == "permanent_farmland"
    assert props["area_m2"] == pytest.approx(10_000.0)


def test_published_tiles_are_cached_and_identical() -> None:
    source = MemorySource()
    service = TileService(source, GROUPS)
    lon, lat = TO_4326.transform(X0, Y0)
    x, y = tile_of(lon, lat, 14)
    first = service.tile("v1", "urban_space", 14, x, y)
    reads = source.calls["pieces"]
    again = service.tile("v1", "urban_space", 14, x, y)
    other = service.tile("v1", "urban_space", 13, x // 2, y // 2)
    assert first == again and json.loads(other)["features"]
    assert source.calls["pieces"] == reads, "a published version is read once, then served from cache"


def test_a_burst_of_tiles_reads_the_version_list_once() -> None:
    source = MemorySource()
    service = TileService(source, GROUPS)
    for x in range(20):
        service.tile("v1", "urban_space", 10, 840 + x, 418)
    assert source.calls["versions"] == 1
    with pytest.raises(KeyError):
        service.tile("v9", "urban_space", 10, 0, 0)  # unknown: the list is read again, once
    assert source.calls["versions"] == 2


def test_drafts_are_not_cached_for_ever() -> None:
    class DraftSource(MemorySource):
        def versions(self) -> list[dict[str, str]]:
            return [{"version": "v1", "status": "draft"}]

    source = DraftSource()
    service = TileService(source, GROUPS, draft_ttl=0.0)
    service.tile("v1", "urban_space", 10, 0, 0)
    service.tile("v1", "urban_space", 10, 0, 0)
    assert source.calls["pieces"] == 2


def test_unknown_layer_and_tile_are_key_errors() -> None:
    service = TileService(MemorySource(), GROUPS)
    with pytest.raises(KeyError):
        service.tile("v1", "no_such_kind", 10, 0, 0)
    with pytest.raises(KeyError):
        service.tile("v1", "urban_space", 10, 5000, 0)


def test_geojson_is_rfc7946_lon_lat() -> None:
    pieces = pieces_frame([(b(-100, -100, 100, 100), ["urban_boundary", "urban_space"])])
    index = build_index(pieces, "urban_space", "zone")
    lon, lat = TO_4326.transform(X0, Y0)
    x, y = tile_of(lon, lat, 17)
    body = json.loads(tile_geojson(index.tile(17, x, y)))
    ring = body["features"][0]["geometry"]["coordinates"][0]
    assert all(math.isclose(c[0], lon, abs_tol=0.01) and math.isclose(c[1], lat, abs_tol=0.01) for c in ring)


def test_empty_frame_gives_an_empty_tile() -> None:
    frame = gpd.GeoDataFrame({"kind": [], "kinds": [], "covered_by": []}, geometry=[], crs=WORK)
    index = build_index(frame, "urban_space", "zone")
    assert json.loads(tile_geojson(index.tile(10, 0, 0))) == {"type": "FeatureCollection", "features": []}


def test_sub_pixel_parts_are_dropped_at_low_zoom_only() -> None:
    """A 10 m × 10 m patch is invisible at city zoom (pixel ≈ 130 m) and drawn at street zoom."""
    patch = b(0, 0, 10, 10)
    index = build_index(pieces_frame([(patch, ["permanent_farmland", "agricultural_space"])]),
                        "permanent_farmland", "line")
    lon, lat = TO_4326.transform(X0 + 5, Y0 + 5)
    assert index.tile(10, *tile_of(lon, lat, 10)) == []
    assert len(index.tile(18, *tile_of(lon, lat, 18))) == 1


def test_dissolve_splits_parts_that_meet_at_a_corner() -> None:
    """Two farmland squares touching at one vertex: two valid parts, total area kept."""
    from viewer.layer_index import dissolve

    parts = dissolve(np.array([b(0, 0, 10, 10), b(10, 10, 20, 20)], dtype=object))
    assert shapely.is_valid(parts).all()
    assert sum(p.area for p in parts) == pytest.approx(200.0)


def test_concurrent_first_requests_build_an_index_once() -> None:
    import threading

    source = MemorySource()
    service = TileService(source, GROUPS)
    threads = [threading.Thread(target=service.index, args=("v1", "urban_space")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert source.calls["pieces"] == 1


def test_identify_does_not_rebuild_the_transformer_per_click(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a lon/lat → GK transformer costs ~0.1 s; a click on the map must not pay it every time."""
    built: list[tuple[object, object]] = []
    real = Transformer.from_crs

    def counting(src: object, dst: object, **kw: object) -> Transformer:
        built.append((src, dst))
        return real(src, dst, **kw)

    monkeypatch.setattr(Transformer, "from_crs", staticmethod(counting))  # pyproj's own class
    service = TileService(MemorySource(), GROUPS)
    lon, lat = TO_4326.transform(X0 + 10, Y0 + 10)
    answers = [service.identify("v1", lon, lat) for _ in range(5)]
    assert answers[0] and all(a == answers[0] for a in answers)
    assert len(built) <= 1, f"{len(built)} transformers built for 5 identical clicks"


def test_failed_tile_requests_leave_no_build_lock_behind() -> None:
    """A tile of an unknown layer is a KeyError; it must not leave a per-key lock in the cache for ever
    (each new z/x/y of a bogus layer would otherwise grow the service's memory)."""
    service = TileService(MemorySource(), GROUPS)
    for x in range(50):
        with pytest.raises(KeyError):
            service.tile("v1", "no_such_layer", 10, x, 0)
    assert service._tiles._building == {}
    assert service.tile("v1", "urban_space", 10, 0, 0)  # the cache still works
