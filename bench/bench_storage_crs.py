"""bench.bench_storage_crs: area error and topology of candidate storage CRSs for a province blueprint.

Prints, against the ellipsoidal area (pyproj Geod on CGCS2000): 1 km squares across Anhui in the storage
zone (GK CM 117°), in their own 3° zone and in an Albers equal-area projection; then a synthetic province
(bench.province, ``--patches``) merged in EPSG:4548, its pieces reprojected to EPSG:4490 and to Albers
(validity, coverage), and per-kind area sums. Usage: python bench/bench_storage_crs.py [--patches 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from pyproj import CRS, Transformer  # noqa: E402

from layers.areas import ellipsoidal_areas, plane_zones, reproject, zone_areas  # noqa: E402

STORAGE = CRS.from_epsg(4548)
ALBERS = CRS.from_proj4("+proj=aea +lat_1=30 +lat_2=34 +lat_0=0 +lon_0=117 +ellps=GRS80 +units=m +no_defs")


def squares() -> None:
    tr = Transformer.from_crs(4490, STORAGE, always_xy=True)
    print("  lon   lat | storage GK117 | own 3° zone | Albers    (1 km square vs ellipsoidal)")
    for lat in (29.4, 32.0, 34.7):
        for lon in (114.9, 115.45, 116.0, 117.0, 118.45, 119.0, 119.6):
            x, y = tr.transform(lon, lat)
            g = np.array([shapely.box(x, y, x + 1000, y + 1000)])
            e = ellipsoidal_areas(g, STORAGE)[0]
            own = zone_areas(g, STORAGE, plane_zones(g, STORAGE))[0]
            albers = shapely.area(reproject(g, STORAGE, ALBERS))[0]
            print(f"{lon:6.2f} {lat:5.1f} | {shapely.area(g)[0] / e - 1:+.5%}    | {own / e - 1:+.5%}  "
                  f"| {albers / e - 1:+.6%}")


def province(patches: int) -> None:
    from bench.province import generate_province, load_layers
    from blueprint.merge import build_blueprint
    from blueprint.precedence import load_precedence
    from layers.catalogue import load_catalogue

    with tempfile.TemporaryDirectory() as tmp:
        generate_province(tmp, patches, seed=1)
        layers, boundary = load_layers(tmp)
    catalogue = load_catalogue()
    bp = build_blueprint(layers, catalogue=catalogue, precedence=load_precedence(None, catalogue),
                         tolerance_m=0.5, version="crs", boundary=boundary)
    g = np.asarray(bp.pieces.geometry.values, dtype=object)
    print(f"province of {patches} patches: {len(g)} pieces")
    for name, crs in (("EPSG:4490", CRS.from_epsg(4490)), ("Albers", ALBERS)):
        moved = reproject(g, STORAGE, crs)
        print(f"  reprojected to {name}: {int((~shapely.is_valid(moved)).sum())} invalid pieces")
    e, plane, own = ellipsoidal_areas(g, STORAGE), shapely.area(g), bp.pieces["area_m2"].to_numpy()
    albers = shapely.area(reproject(g, STORAGE, ALBERS))
    for kind in sorted(bp.pieces["kind"].unique()):
        m = (bp.pieces["kind"] == kind).to_numpy()
        print(f"  {kind:22s} storage {plane[m].sum() / e[m].sum() - 1:+.4%}  own zone "
              f"{own[m].sum() / e[m].sum() - 1:+.4%}  Albers {albers[m].sum() / e[m].sum() - 1:+.5%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=20_000)
    args = parser.parse_args(argv)
    squares()
    province(args.patches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
