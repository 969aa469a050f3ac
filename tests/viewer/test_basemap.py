"""The basemap setting (BLUEPRINT_BASEMAP) and the local basemap tiles at /viewer/basemap/{z}/{x}/{y}."""

from __future__ import annotations

import gzip
import io
import sqlite3
from pathlib import Path

import mapbox_vector_tile
import pytest
from PIL import Image

from runtime.settings import Settings
from tests.viewer.conftest import MemorySource, make_app, signed_in
from tests.viewer.test_page import config_of
from viewer.archive import city_tiles
from viewer.basemap import BasemapError, open_basemap

DATA = Path(__file__).resolve().parents[1] / "data" / "basemap"
RASTER, VECTOR, RASTER_PM = DATA / "raster.mbtiles", DATA / "vector.mbtiles", DATA / "raster.pmtiles"


def stored_tiles(path: Path) -> list[tuple[int, int, int]]:
    """(z, x, XYZ y) of every tile in an MBTiles file, read straight from SQLite (TMS rows flipped here)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row FROM tiles").fetchall()
    return [(z, x, (1 << z) - 1 - row) for z, x, row in rows]


def test_unset_or_blank_means_no_basemap() -> None:
    assert open_basemap(None) is None and open_basemap("  ") is None


def test_missing_file_is_a_start_up_error_naming_the_setting_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "tianditu-intranet.mbtiles"
    with pytest.raises(BasemapError) as err:
        open_basemap(str(missing))
    assert "BLUEPRINT_BASEMAP" in err.value.user_message and str(missing) in err.value.user_message
    assert err.value.code == "invalid_basemap"


def test_unknown_extension_and_bad_templates_are_refused(tmp_path: Path) -> None:
    tif = tmp_path / "basemap.tif"
    tif.write_bytes(b"II*\x00")
    with pytest.raises(BasemapError, match=r"\.mbtiles or \.pmtiles.*'\.tif'"):
        open_basemap(str(tif))
    with pytest.raises(BasemapError, match=r"missing \{y\}"):
        open_basemap("http://intranet.local/tiles/{z}/{x}.png")
    with pytest.raises(BasemapError, match="http"):
        open_basemap("ftp://intranet.local/{z}/{x}/{y}.png")


def test_a_file_that_is_not_mbtiles_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "basemap.mbtiles"
    fake.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BasemapError, match="cannot be read as MBTILES"):
        open_basemap(str(fake))


def test_the_setting_is_read_from_the_environment_and_the_old_name_still_works(monkeypatch) -> None:
    monkeypatch.setenv("BLUEPRINT_BASEMAP", str(RASTER))
    assert Settings().basemap == str(RASTER)
    monkeypatch.delenv("BLUEPRINT_BASEMAP")
    monkeypatch.setenv("BLUEPRINT_TILE_URL", "https://t{s}.tianditu.gov.cn/vec_w/{z}/{x}/{y}")
    assert Settings().basemap == "https://t{s}.tianditu.gov.cn/vec_w/{z}/{x}/{y}"


def test_files_are_described_from_their_own_metadata() -> None:
    raster, vector, pm = open_basemap(str(RASTER)), open_basemap(str(VECTOR)), open_basemap(str(RASTER_PM))
    assert (raster.kind, raster.tile_format, raster.vector, raster.minzoom, raster.maxzoom) == \
        ("mbtiles", "png", False, 12, 16)
    assert (vector.tile_format, vector.vector) == ("pbf", True)
    assert (pm.kind, pm.tile_format, pm.minzoom, pm.maxzoom) == ("pmtiles", "png", 12, 16)


def test_tianditu_template_uses_its_subdomains() -> None:
    config = open_basemap("https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=KEY") \
        .page_config("/unused")
    assert config["subdomains"] == "01234567" and config["vector"] is False
    assert open_basemap("http://intranet/{z}/{x}/{y}.png").page_config("/unused")["subdomains"] == "abc"


@pytest.mark.parametrize("path", [RASTER, RASTER_PM], ids=["mbtiles", "pmtiles"])
def test_raster_tiles_are_served_with_the_rows_flipped(path: Path) -> None:
    client = signed_in(make_app(MemorySource(), basemap=open_basemap(str(path))))
    tiles = stored_tiles(RASTER)
    assert len(tiles) > 20
    for z, x, y in tiles[::7]:
        r = client.get(f"/viewer/basemap/{z}/{x}/{y}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert "immutable" in r.headers["cache-control"] and r.headers["etag"]
        # each fixture tile is one colour that encodes its XYZ address (tests/data/basemap/make_basemaps.py)
        pixel = Image.open(io.BytesIO(r.content)).convert("RGB").getpixel((128, 128))
        assert pixel == (x % 256, y % 256, 10 * z), (z, x, y)
        again = client.get(f"/viewer/basemap/{z}/{x}/{y}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304


def test_vector_tiles_are_served_gzipped_and_decode() -> None:
    client = signed_in(make_app(MemorySource(), basemap=open_basemap(str(VECTOR))))
    z, x, y = max(stored_tiles(VECTOR))
    r = client.get(f"/viewer/basemap/{z}/{x}/{y}", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    assert r.headers["content-encoding"] == "gzip"
    layers = mapbox_vector_tile.decode(r.content)  # httpx has already gunzipped the body
    assert set(layers) <= {"water", "road"} and layers
    plain = client.get(f"/viewer/basemap/{z}/{x}/{y}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and mapbox_vector_tile.decode(plain.content) == layers


def test_outside_the_file_and_without_a_basemap_is_404() -> None:
    client = signed_in(make_app(MemorySource(), basemap=open_basemap(str(RASTER))))
    z, x, y = stored_tiles(RASTER)[0]
    assert client.get(f"/viewer/basemap/{z}/{x + 50}/{y}").status_code == 404
    assert client.get("/viewer/basemap/9/0/0").status_code == 404  # a zoom the file does not hold
    assert client.get("/viewer/basemap/3/8/0").status_code == 404  # not a tile at all
    assert signed_in(make_app(MemorySource())).get(f"/viewer/basemap/{z}/{x}/{y}").status_code == 404


def test_page_names_the_local_basemap_and_nothing_external() -> None:
    html = signed_in(make_app(MemorySource(), basemap=open_basemap(str(VECTOR)))).get("/viewer").text
    basemap = config_of(html)["basemap"]
    assert basemap["url"].startswith("/viewer/basemap/{z}/{x}/{y}?v=") and basemap["vector"] is True
    assert (basemap["minZoom"], basemap["maxNativeZoom"]) == (12, 16)
    assert "http" not in basemap["url"]


def test_the_fixture_covers_the_test_city() -> None:
    # the browser test draws these tiles under the city: the files must hold the tiles it will ask for
    bounds = MemorySource().city_bounds_4326()
    assert set(city_tiles(bounds, [14])) <= set(stored_tiles(RASTER))
    assert gzip.decompress(sqlite3.connect(VECTOR).execute("SELECT tile_data FROM tiles").fetchone()[0])
