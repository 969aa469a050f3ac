"""cli.check_bounded: whether `check-batch` loads the whole version or each partition's pieces (bounded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cli.common import note


def bounded_regions(settings: Any, stores: Any, catalogue: Any, rules: Any, version: str | None,
                    choice: bool | None, out: Path, dask: bool) -> Any:
    """checks.batch_regions.Regions for a bounded run, or None for a whole-version run.

    ``choice``: --bounded (True) / --whole (False) / neither (None: bounded when the version has more
    pieces than ``settings.batch_bounded_pieces``, for an in-process run into a directory)."""
    from checks.errors import CheckError

    one_file = out.suffix.lower() == ".parquet"
    if choice and (one_file or dask):
        raise CheckError("--bounded screens partition by partition in process: give a directory as --out "
                         "and no --dask/--scheduler 分区加载仅支持目录输出、本机运行")
    if choice is False or one_file or dask:
        return None
    blueprints = stores.blueprints
    version = version or blueprints.latest_published_version()
    count = int(blueprints.summary(version).get("piece_count") or 0)
    if choice is None and count <= settings.batch_bounded_pieces:
        return None
    head = blueprints.head(version)
    from runtime.errors import require_published

    require_published(version, head.status)
    from checks.batch_regions import Regions
    from checks.conditions import load_compatibility

    note(f"bounded: each partition loads only the pieces near it ({count:,} pieces in {version}) 分区加载")
    return Regions(head, lambda box: blueprints.pieces(version, bbox=box), rules, catalogue,
                   tolerance_m2=settings.overlap_tolerance_m2,
                   tolerance_ratio=settings.overlap_tolerance_ratio,
                   compatibility=load_compatibility(settings.land_use_compat_file), piece_count=count)
