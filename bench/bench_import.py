"""bench.bench_import: `blueprint layers import` of a large farmland layer vs ogr2ogr -f PostgreSQL."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python bench/bench_import.py
    sys.path.insert(0, str(ROOT))

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
X0, Y0 = 552_000.0, 3_394_000.0  # EPSG:4548, the south-west corner of bench.synthetic's city box
BOW_TIE_EVERY = 1_000  # one self-intersecting patch in this many: the import repairs them


def farmland(n: int, seed: int = 1):  # type: ignore[no-untyped-def]
    """``n`` jittered quadrilateral patches (≈40 m) on a grid, with 永久基本农田 attributes, EPSG:4548.

    Every ``BOW_TIE_EVERY``-th patch has two corners swapped (a bow tie) so repair has work to do.
    """
    import geopandas as gpd
    import numpy as np
    import shapely

    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    cx, cy = X0 + (i % cols) * 50.0 + 25, Y0 + (i // cols) * 50.0 + 25
    dx = rng.uniform(15, 22, (n, 4)) * np.array([-1, 1, 1, -1])
    dy = rng.uniform(15, 22, (n, 4)) * np.array([-1, -1, 1, 1])
    x, y = cx[:, None] + dx, cy[:, None] + dy
    bow = i % BOW_TIE_EVERY == 7
    x[bow, 2], x[bow, 3] = x[bow, 3].copy(), x[bow, 2].copy()
    rings = np.stack([np.c_[x, x[:, :1]], np.c_[y, y[:, :1]]], axis=-1)  # (n, 5, 2), closed
    geoms = shapely.polygons(rings)
    return gpd.GeoDataFrame({
        "BSM": [f"340700JBNT{k:08d}" for k in i],
        "DLBM": np.where(i % 3 == 0, "0101", "0103"),
        "DLMC": np.where(i % 3 == 0, "水田", "旱地"),
        "ZLDWMC": [f"铜陵市{('铜官区', '义安区', '郊区', '枞阳县')[k % 4]}" for k in i],
        "TBMJ": np.round(shapely.area(geoms), 2),
    }, geometry=geoms, crs=4548)


def write_files(n: int, directory: Path, formats: list[str]) -> dict[str, Path]:
    """The GeoPackage (EPSG:4548) and the zipped GBK Shapefile without .cpg (EPSG:4527)."""
    frame = farmland(n)
    out: dict[str, Path] = {}
    if "gpkg" in formats:
        out["gpkg"] = directory / f"farm_{n}.gpkg"
        frame.to_file(out["gpkg"], layer="永久基本农田", driver="GPKG", engine="pyogrio")
    if "shp-zip" in formats:
        parts = directory / f"shp_{n}"
        parts.mkdir()
        frame.to_crs(4527).to_file(parts / "永久基本农田.shp", encoding="GBK", engine="pyogrio")
        (parts / "永久基本农田.cpg").unlink(missing_ok=True)  # as departments hand them over
        out["shp-zip"] = directory / f"farm_{n}.zip"
        with zipfile.ZipFile(out["shp-zip"], "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for part in sorted(parts.iterdir()):
                archive.write(part, part.name)
        shutil.rmtree(parts)
    return out


def write_in_child(n: int, directory: Path, formats: list[str]) -> dict[str, Path]:
    """:func:`write_files` in a child process: this one stays small, so a child's peak RSS (which on
    Linux counts what it had before exec, i.e. a fork of this process) is its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--write", str(n), "--dir", str(directory),
           "--formats", ",".join(formats)]
    subprocess.run(cmd, check=True)
    names = {"gpkg": f"farm_{n}.gpkg", "shp-zip": f"farm_{n}.zip"}
    return {fmt: directory / names[fmt] for fmt in formats}


def measured(cmd: list[str], env: dict[str, str]) -> dict[str, float | str]:
    """Run ``cmd``; its wall and CPU seconds, peak RSS (from wait4: this child alone) and the load."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if child.returncode != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            return {"error": lines[-1] if lines else f"exit {child.returncode}"}
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
            "load": f"{load:.2f}→{os.getloadavg()[0]:.2f}"}


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def scratch_postgis() -> Iterator[str]:
    """A fresh PostGIS database (dropped afterwards); yields its name."""
    import psycopg2

    name = f"bench_import_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        with psycopg2.connect(dbname=name, **PG) as conn:
            conn.cursor().execute("CREATE EXTENSION IF NOT EXISTS postgis")
        yield name
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def ours(path: Path, backend: str, work: Path, database: str | None) -> dict[str, float | str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLUEPRINT_DATA_DIR": str(work / uuid.uuid4().hex)}
    env.pop("BLUEPRINT_DATABASE_URL", None)
    if backend == "postgis":
        env["BLUEPRINT_DATABASE_URL"] = f"postgresql+psycopg2://{PG['user']}@{PG['host']}/{database}"
    cmd = [sys.executable, "-m", "cli.main", "layers", "import", str(path), "--kind", "permanent_farmland",
           "--name", f"farm_{uuid.uuid4().hex[:6]}"]
    return measured(cmd, env)


def ogr2ogr(path: Path, database: str) -> dict[str, float | str]:
    """GDAL's own loader on the same file: reprojected to EPSG:4548, made valid, COPY, GiST index."""
    source = f"/vsizip/{path}" if path.suffix == ".zip" else str(path)
    cmd = ["ogr2ogr", "-f", "PostgreSQL", f"PG:host={PG['host']} user={PG['user']} dbname={database}",
           source, "-nln", f"ogr_{uuid.uuid4().hex[:6]}", "-t_srs", "EPSG:4548", "-makevalid",
           "-nlt", "PROMOTE_TO_MULTI", "-lco", "GEOMETRY_NAME=geom", "-lco", "SPATIAL_INDEX=GIST",
           "--config", "PG_USE_COPY", "YES"]
    if path.suffix == ".zip":
        cmd += ["--config", "SHAPE_ENCODING", "CP936"]
    return measured(cmd, dict(os.environ))


def row(label: str, n: int, res: dict[str, float | str], base: dict[str, float | str] | None) -> str:
    if "error" in res:
        return f"{label:<34} failed: {res['error']}"
    ratio = ""
    if base is not None and "error" not in base:
        ratio = f"{float(res['wall']) / float(base['wall']):>6.2f}×"
    return (f"{label:<34} {res['wall']:>8.1f} {res['cpu']:>8.1f} {res['peak_mb']:>8.0f} "
            f"{n / float(res['wall']):>9,.0f} {ratio:>7}  {res['load']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000", help="farmland patch counts, comma-separated")
    parser.add_argument("--formats", default="gpkg,shp-zip", help="gpkg and/or shp-zip")
    parser.add_argument("--backends", default="spatialite,postgis", help="spatialite and/or postgis")
    parser.add_argument("--no-ogr2ogr", action="store_true", help="skip the ogr2ogr baseline")
    parser.add_argument("--write", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    if args.write:
        write_files(args.write, args.dir, formats)
        return 0
    backends = [b for b in args.backends.split(",") if b]
    baseline = not args.no_ogr2ogr and shutil.which("ogr2ogr") is not None
    if not args.no_ogr2ogr and not baseline:
        print("ogr2ogr not found (apt-get install gdal-bin): baseline skipped", file=sys.stderr)
    print(f"baseline RSS of this process {_rss_mb():.0f} MB; cores {os.cpu_count()}")
    print(f"{'run':<34} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'rows/s':>9} {'/ogr':>7}  load avg")
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",") if s):
            t0 = time.perf_counter()
            files = write_in_child(n, work, formats)
            sizes = ", ".join(f"{k} {p.stat().st_size / 1e6:,.0f} MB" for k, p in files.items())
            print(f"-- {n:,} patches ({sizes}; written in {time.perf_counter() - t0:.0f} s)", flush=True)
            for fmt, path in files.items():
                with scratch_postgis() as database:
                    base = ogr2ogr(path, database) if baseline else None
                    if base is not None:
                        print(row(f"{fmt} ogr2ogr -f PostgreSQL", n, base, None), flush=True)
                    for backend in backends:
                        res = ours(path, backend, work, database)
                        print(row(f"{fmt} blueprint → {backend}", n, res, base), flush=True)
                path.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
