"""bench.bench_area_accuracy: plane and ellipsoidal parcel areas vs PostGIS on the same parcels.

Usage:  .venv/bin/python -m bench.bench_area_accuracy [--parcels 2000]

Parcels: rotated rectangles, ragged polygons with holes and multipolygons, 50 m – 3 km across, spread
±75 km either side of the central meridian (the whole 3-degree zone) in EPSG:4548.
  * plane: checks.areas.plane_areas vs PostGIS ST_Area(geom) in EPSG:4548 (target < 1e-6 relative);
  * ellipsoidal: checks.areas.ellipsoidal_areas (pyproj.Geod on CGCS2000/GRS80 after reprojecting to
    EPSG:4490) vs ST_Area(ST_Transform(geom, 4490)::geography), which PostGIS computes on the spheroid of
    SRID 4490 (target < 1e-4 relative). The WGS 84 geography area is printed beside, for scale.
"""

from __future__ import annotations

import argparse

import numpy as np
import shapely
import shapely.affinity
from pyproj import CRS

from bench.bench_check import scratch_database
from checks.areas import ellipsoidal_areas, plane_areas

WORK = CRS.from_epsg(4548)


def parcels(n: int, seed: int = 3) -> np.ndarray:
    """A mix of awkward shapes across the zone (see module doc)."""
    rng = np.random.default_rng(seed)
    x = 500_000 + rng.uniform(-75_000, 75_000, n)
    y = rng.uniform(3_300_000, 3_550_000, n)
    size = np.exp(rng.uniform(np.log(50), np.log(3000), n))
    out = np.empty(n, dtype=object)
    for i in range(n):
        kind = i % 3
        angles = (np.arange(12) + rng.uniform(0, 0.8, 12)) * 2 * np.pi / 12  # star-shaped, simple
        radii = size[i] / 2 * rng.uniform(0.5, 1.0, 12)
        ring = np.column_stack([x[i] + radii * np.cos(angles), y[i] + radii * np.sin(angles)])
        shell = shapely.Polygon(ring)
        if kind == 0:
            a = rng.uniform(0, np.pi)
            corners = np.array([[-1, -0.6], [1, -0.6], [1, 0.6], [-1, 0.6]]) * size[i] / 2
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            out[i] = shapely.Polygon(corners @ rot.T + [x[i], y[i]])
        elif kind == 1:
            hole = shapely.buffer(shapely.Point(x[i], y[i]), size[i] / 8, quad_segs=4)
            out[i] = shapely.Polygon(shell.exterior.coords, [hole.exterior.coords[::-1]])
        else:
            other = shapely.affinity.translate(shell, size[i] * 1.5, 0)
            out[i] = shapely.MultiPolygon([shell, other])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parcels", type=int, default=2000)
    args = parser.parse_args(argv)
    geoms = parcels(args.parcels)
    assert shapely.is_valid(geoms).all()
    plane = plane_areas(geoms)
    ellipsoidal = ellipsoidal_areas(geoms, WORK)
    with scratch_database("bench_area") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE p (id int, geom geometry(Geometry, 4548))")
        cur.executemany("INSERT INTO p VALUES (%s, ST_GeomFromWKB(%s, 4548))",
                        [(i, shapely.to_wkb(g)) for i, g in enumerate(geoms)])
        cur.execute("SELECT ST_Area(geom), ST_Area(ST_Transform(geom, 4490)::geography), "
                    "ST_Area(ST_Transform(geom, 4326)::geography) FROM p ORDER BY id")
        rows = np.asarray(cur.fetchall(), dtype=float)
        cur.execute("SELECT postgis_full_version()")
        version = cur.fetchone()[0]
    pg_plane, pg_cgcs, pg_wgs = rows.T
    rel_plane = np.abs(plane - pg_plane) / pg_plane
    rel_ell = np.abs(ellipsoidal - pg_cgcs) / pg_cgcs
    rel_wgs = np.abs(ellipsoidal - pg_wgs) / pg_wgs
    gk_vs_ell = np.abs(plane - ellipsoidal) / ellipsoidal
    print(f"bench_area_accuracy: {len(geoms):,} parcels, {plane.min():,.0f} – {plane.max():,.0f} m², "
          f"±75 km around CM 117°E")
    print(f"  {version[:160]}")
    print(f"  plane        vs ST_Area(geom, EPSG:4548)            max rel diff {rel_plane.max():.2e}  "
          f"(target < 1e-6)  {'met' if rel_plane.max() < 1e-6 else 'NOT met'}")
    print(f"  ellipsoidal  vs ST_Area(geography, EPSG:4490)       max rel diff {rel_ell.max():.2e}  "
          f"(target < 1e-4)  {'met' if rel_ell.max() < 1e-4 else 'NOT met'}")
    print(f"  ellipsoidal  vs ST_Area(geography, EPSG:4326 WGS84) max rel diff {rel_wgs.max():.2e}  (info)")
    print(f"  for scale: plane GK vs ellipsoidal differ by up to {gk_vs_ell.max():.2e} (GK scale error)")


if __name__ == "__main__":
    main()
