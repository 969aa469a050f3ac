"""Make the small basemap fixtures of tests/data/basemap (run from the repository root):

    .venv/bin/python -m tests.data.basemap.make_basemaps

Origin: synthetic, made here from nothing but this script (no public map data). They cover the test
city of ``tests/viewer/conftest.py`` (EPSG:4548 around X0, Y0, near Tongling) at zooms 12–16:

- ``raster.mbtiles``: 256-px PNG tiles (Pillow), each one flat colour that *encodes its own XYZ address*:
  red = x mod 256, green = y mod 256 (XYZ y, counted from the north), blue = 10·z — so a test can tell
  whether the server flipped MBTiles' TMS rows correctly. A 1-pixel dark frame marks the tile edges.
- ``raster.pmtiles``: the same tiles through ``pmtiles.convert.mbtiles_to_pmtiles``.
- ``vector.mbtiles``: gzipped MVT tiles (encoded by ``mapbox_vector_tile``, an independent encoder) with a
  ``water`` layer (one polygon: a 600 m wide river band across the city) and a ``road`` layer (one line).
"""

from __future__ import annotations

import gzip
import io
import sqlite3
from pathlib import Path

import mapbox_vector_tile
import shapely
from PIL import Image, ImageDraw
from pmtiles.convert import mbtiles_to_pmtiles
from pyproj import Transformer

from tests.geoms import X0, Y0
from viewer.archive import city_tiles
from viewer.tilegrid import tile_bounds

HERE = Path(__file__).resolve().parent
ZOOMS = range(12, 17)
TO_LONLAT = Transformer.from_crs(4548, 4326, always_xy=True)
TO_MERC = Transformer.from_crs(4548, 3857, always_xy=True)


def city_box() -> tuple[float, float, float, float]:
    """The test city's 2 km square plus 500 m, in lon/lat."""
    w, s = TO_LONLAT.transform(X0 - 1500, Y0 - 1500)
    e, n = TO_LONLAT.transform(X0 + 1500, Y0 + 1500)
    return w, s, e, n


def raster_tile(z: int, x: int, y: int) -> bytes:
    image = Image.new("RGB", (256, 256), (x % 256, y % 256, 10 * z))
    ImageDraw.Draw(image).rectangle((0, 0, 255, 255), outline=(40, 40, 40))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def vector_tile(z: int, x: int, y: int) -> bytes:
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    to_merc = lambda g: shapely.transform(g, lambda xy: list(zip(*TO_MERC.transform(*xy.T), strict=True)))  # noqa: E731
    water = to_merc(shapely.box(X0 - 1500, Y0 + 200, X0 + 1500, Y0 + 800))
    road = to_merc(shapely.LineString([(X0 - 1500, Y0 - 600), (X0 + 1500, Y0 - 300)]))
    frame = shapely.box(minx, miny, maxx, maxy)
    layers = []
    for name, geom in (("water", water), ("road", road)):
        part = geom.intersection(frame)
        if part.is_empty:
            continue
        # to tile pixels (extent 4096, y down as MVT wants; quantize_bounds handles it)
        layers.append({"name": name, "features": [{"geometry": part.wkt, "properties": {"kind": name}}]})
    if not layers:
        return b""
    raw = mapbox_vector_tile.encode(layers, default_options={"quantize_bounds": (minx, miny, maxx, maxy),
                                                             "extents": 4096})
    return gzip.compress(raw, mtime=0)


def write_mbtiles(path: Path, fmt: str, make) -> int:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE metadata (name TEXT, value TEXT);
        CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
        CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);""")
    w, s, e, n = city_box()
    stored = 0
    for z, x, y in city_tiles((w, s, e, n), ZOOMS):
        body = make(z, x, y)
        if body:
            db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, body))
            stored += 1
    meta = {"name": f"test basemap ({fmt})", "format": fmt, "minzoom": str(ZOOMS[0]),
            "maxzoom": str(ZOOMS[-1]), "bounds": f"{w:.6f},{s:.6f},{e:.6f},{n:.6f}",
            "attribution": "测试底图 test basemap (synthetic)"}
    if fmt == "pbf":
        meta["json"] = '{"vector_layers": [{"id": "water", "fields": {}}, {"id": "road", "fields": {}}]}'
    db.executemany("INSERT INTO metadata VALUES (?, ?)", meta.items())
    db.commit()
    db.execute("VACUUM")
    db.close()
    return stored


def main() -> None:
    print("raster.mbtiles:", write_mbtiles(HERE / "raster.mbtiles", "png", raster_tile), "tiles")
    (HERE / "raster.pmtiles").unlink(missing_ok=True)
    mbtiles_to_pmtiles(str(HERE / "raster.mbtiles"), str(HERE / "raster.pmtiles"), ZOOMS[-1])
    print("vector.mbtiles:", write_mbtiles(HERE / "vector.mbtiles", "pbf", vector_tile), "tiles")


if __name__ == "__main__":
    main()
