"""The layer parts saved beside an archive: a restarted server tiles street zooms without dissolving again."""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.viewer.conftest import MemorySource, to_4326
from tests.viewer.test_labels import GROUPS, TinyConflict
from tests.viewer.test_mvt import decode
from viewer.archive import archive_path, build_version_tiles, load_parts, parts_path
from viewer.tilegrid import tile_of
from viewer.tiles import FULL_ATTRIBUTES_ZOOM, TileService


def test_saved_parts_give_the_same_street_tiles_without_reading_the_pieces(tmp_path: Path) -> None:
    source = TinyConflict()
    build_version_tiles(source, "v1", tmp_path, zooms=[12], groups=GROUPS)
    assert parts_path(tmp_path, "v1").exists() and archive_path(tmp_path, "v1").exists()
    built = TileService(source, GROUPS)
    restarted_source = TinyConflict()
    restarted = TileService(restarted_source, GROUPS)
    restarted.preload("v1", load_parts(parts_path(tmp_path, "v1")))
    lon, lat = to_4326(source.versions_["v1"].geometry.iloc[2].centroid)["coordinates"]
    for z in (3, 5, 15, 17):  # below the archive's zooms too: the merged low-zoom layers are saved as well
        x, y = tile_of(lon, lat, z)
        assert restarted.mvt("v1", z, x, y) == built.mvt("v1", z, x, y)
    assert restarted_source.calls.get("pieces", 0) == 0, "no layer was dissolved again"


def test_an_empty_layer_stays_known_as_empty(tmp_path: Path) -> None:
    build_version_tiles(MemorySource(), "v1", tmp_path, zooms=[12], groups=GROUPS)
    parts = load_parts(parts_path(tmp_path, "v1"))
    assert {key for key in parts if "@" not in key} == {*GROUPS, "unplanned", "conflicts"}
    assert {key.partition("@")[0] for key in parts if "@" in key} == {*GROUPS, "unplanned"}  # low zooms
    assert len(parts["unplanned"].geoms) == 0 and len(parts["urban_boundary"].geoms) > 0


def test_below_the_attribute_zoom_kind_features_carry_only_their_kind() -> None:
    service = TileService(TinyConflict(), GROUPS)
    lon, lat = to_4326(TinyConflict().versions_["v1"].geometry.iloc[2].centroid)["coordinates"]
    for z, want in ((FULL_ATTRIBUTES_ZOOM - 2, {"kind"}), (FULL_ATTRIBUTES_ZOOM, {"kind", "area_m2"})):
        layers = decode(gzip.decompress(service.mvt("v1", z, *tile_of(lon, lat, z))))
        assert {k for f in layers["urban_boundary"]["features"] for k in f["properties"]} == want
        assert "area_m2" in layers["conflicts"]["features"][0]["properties"]  # conflicts keep theirs
