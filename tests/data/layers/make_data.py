"""Rebuild the hand-made ingestion fixtures here: .venv/bin/python tests/data/layers/make_data.py"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import geopandas as gpd
from shapely.geometry import Polygon, box

HERE = Path(__file__).resolve().parent
X0, Y0 = 500_000.0, 3_420_000.0  # EPSG:4548 near Tongling, as tests/geoms.py


def red_line_frame() -> gpd.GeoDataFrame:
    """Two red-line patches in EPSG:4548 with known areas: 7 500 m² (square with hole) and 40 000 m²."""
    with_hole = Polygon(box(X0, Y0, X0 + 100, Y0 + 100).exterior.coords,
                        [box(X0 + 25, Y0 + 25, X0 + 75, Y0 + 75).exterior.coords])
    plain = box(X0 + 300, Y0, X0 + 500, Y0 + 200)
    return gpd.GeoDataFrame({"BSM": [101, 102], "名称": ["水源涵养生态保护红线", "水土保持生态保护红线"],
                             "类型": ["水源涵养", "水土保持"]},
                            geometry=[with_hole, plain], crs=4548)


STEM = "生态保护红线"
PLACEHOLDER = b"RedLine_GBK_"  # as many bytes as the GBK stem, patched in afterwards


def gbk_zip_without_cpg(out: Path) -> None:
    """GBK Shapefile in EPSG:4527 (zone-prefixed eastings), zipped without its .cpg, as departments send.

    Chinese Windows zip tools store GBK member names without the UTF-8 flag; Python's zipfile cannot
    write that, so the zip is written with an ASCII placeholder stem whose bytes are then replaced.
    """
    gbk_stem = STEM.encode("gbk")
    assert len(gbk_stem) == len(PLACEHOLDER)
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / (PLACEHOLDER.decode() + ".shp")
        red_line_frame().to_crs(4527).to_file(shp, encoding="GBK")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(Path(tmp).iterdir()):
                if part.suffix.lower() != ".cpg":
                    archive.write(part, part.name)
    data = out.read_bytes()
    assert data.count(PLACEHOLDER) == 8  # 4 members, each in a local header and the central directory
    out.write_bytes(data.replace(PLACEHOLDER, gbk_stem))


LDID_CP936 = 0x4D  # the DBF language driver id Chinese ArcGIS writes for GBK


def gbk_copy_with_ldid(source: Path, out: Path) -> None:
    """The real UTF-8 Shapefile ``source`` with its attributes re-encoded to GBK and the DBF language
    byte set to CP936, without a .cpg: geometry and attribute values unchanged."""
    frame = gpd.read_file(source, encoding="UTF-8")
    frame.to_file(out, encoding="GBK")
    out.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = out.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = LDID_CP936
    dbf.write_bytes(bytes(data))


def main() -> None:
    gbk_zip_without_cpg(HERE / "redline_gbk_nocpg.zip")
    gbk_copy_with_ldid(HERE / "china_country_name.shp", HERE / "china_country_gbk.shp")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
