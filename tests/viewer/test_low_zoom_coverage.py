"""Low zooms drawn from one merged coverage: sub-pixel parts merged into what surrounds them, and the layers
still meet edge to edge (no gap, no overlap) after simplification — issue #12."""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from bench.bench_check import direct_blueprint
from bench.bench_tiles import BenchSource
from layers.catalogue import load_catalogue
from layers.crs import reproject_array
from tests.viewer.conftest import b
from tests.viewer.test_mvt import decode
from viewer.archive import city_tiles
from viewer.coverage import merge_small
from viewer.tilegrid import LONLAT, WEB_MERCATOR, tile_bounds
from viewer.tiles import TileService

ZONES = ("urban_space", "agricultural_space", "ecological_space")


@pytest.fixture(scope="module")
def city() -> tuple[Any, TileService]:
    blueprint = direct_blueprint(20_000)  # ≈ 20 000 pieces; most farmland patches are far below a z8 pixel
    groups = {k.key: k.group for k in load_catalogue().values()}
    return blueprint, TileService(BenchSource(blueprint.pieces, blueprint.conflicts), groups)


def drawn(service: TileService, bounds_4326: tuple[float, float, float, float],
          z: int) -> tuple[dict[str, list[shapely.Geometry]], int]:
    """Every layer's decoded features at zoom ``z`` (EPSG:3857, each cut to its own tile: what the page
    shows), and the largest raw tile in bytes."""
    out: dict[str, list[shapely.Geometry]] = {}
    largest = 0
    for _, x, y in city_tiles(bounds_4326, [z]):
        body = service.mvt("v1", z, x, y)
        if not body:
            continue
        raw = gzip.decompress(body)
        largest = max(largest, len(raw))
        minx, miny, maxx, maxy = tile_bounds(z, x, y)
        for name, layer in decode(raw).items():
            k = (maxx - minx) / layer["extent"]
            for feature in layer["features"]:
                geom = shapely.transform(shape(feature["geometry"]),
                                         lambda c, k=k, minx=minx, maxy=maxy: np.column_stack(
                                             [minx + c[:, 0] * k, maxy - c[:, 1] * k]))
                out.setdefault(name, []).append(shapely.clip_by_rect(shapely.make_valid(geom), minx, miny,
                                                                     maxx, maxy))
    return out, largest


def city_in_3857(blueprint: Any) -> tuple[shapely.Geometry, tuple[float, float, float, float]]:
    pieces = blueprint.pieces
    outline = shapely.coverage_union_all(pieces.geometry.to_numpy())
    (city,) = reproject_array(np.array([outline], dtype=object), pieces.crs, WEB_MERCATOR)
    (ll,) = reproject_array(np.array([outline], dtype=object), pieces.crs, LONLAT)
    return city, ll.bounds


@pytest.mark.parametrize("z", [7, 8, 10])
def test_zone_layers_at_low_zoom_meet_edge_to_edge(city: tuple[Any, TileService], z: int) -> None:
    """The three zones partition the city: drawn at z, their union is the city (no gap) and their areas add
    up to it (no overlap), to the tile grid's rounding along the outline — simplified each on its own, the
    zones' shared edges moved apart by up to half a pixel (hundreds of metres at these zooms)."""
    blueprint, service = city
    outline, bounds = city_in_3857(blueprint)
    layers, _ = drawn(service, bounds, z)
    zones = [shapely.union_all(layers.get(name, [])) for name in ZONES]
    union = shapely.union_all(zones)
    unit = 2 * 20037508.342789244 / (1 << z) / 4096  # one tile-grid step (metres, EPSG:3857)
    rounding = outline.length * unit  # every outline vertex may move by up to a grid step
    assert shapely.difference(outline, union).area < rounding, "a gap inside the city"
    overlap = sum(zone.area for zone in zones) - union.area
    assert overlap < 0.02 * rounding, "zones overlap"
    assert abs(union.area - outline.area) < rounding


def test_sub_pixel_farmland_is_merged_at_city_zoom_and_drawn_at_street_zoom(
        city: tuple[Any, TileService]) -> None:
    blueprint, service = city
    _, bounds = city_in_3857(blueprint)
    farmland = int((blueprint.pieces["kind"] == "permanent_farmland").sum())
    at_8, largest_8 = drawn(service, bounds, 8)
    assert len(at_8.get("permanent_farmland", [])) < farmland / 20
    # what the patches were merged into is still drawn: the zones under them leave no hole
    assert shapely.union_all(at_8["agricultural_space"]).area > 0
    index = service.index("v1", "permanent_farmland")
    assert len(index.geoms) == farmland  # the full layer is unchanged: street zooms draw every patch
    assert largest_8 < 100_000


def test_merge_small_fills_holes_and_drops_what_was_in_them() -> None:
    """A field with a 2 m × 2 m patch in a hole, and a 50 m × 50 m patch in another: below 10 m² the first
    hole is filled and its patch dropped; the coverage keeps its area and gains no overlap."""
    field = b(0, 0, 100, 100)
    small, big = b(10, 10, 12, 12), b(40, 40, 90, 90)
    holed = shapely.Polygon(field.exterior, [small.exterior, big.exterior])
    geoms = np.array([holed, small, big], dtype=object)
    codes = np.array([1, 2, 2], dtype=np.int64)
    merged, merged_codes = merge_small(geoms, codes, 10.0)
    assert list(merged_codes) == [1, 2]
    assert shapely.get_num_interior_rings(merged[0]) == 1 and merged[1].equals(big)
    assert shapely.coverage_is_valid(merged)
    assert sum(g.area for g in merged) == pytest.approx(field.area)
