"""checks.batch_regions: a batch run holding only the pieces near the partition it screens (bounded memory).

``blueprint check-batch`` on the whole version holds every piece in one Screener (≈ 6 KB a piece: 6.6 GB
peak at 10⁶ pieces, ≈ 64 GB at 10⁷). Here the partitions of checks.batch_runner (contiguous runs of the
parcels along a Hilbert curve, so each one covers a compact box) are screened one at a time, each by a
Screener over only the pieces whose geometry meets the partition's box grown by ``MARGIN_M``, read from
the store through its spatial index by a loader the caller hands in (checks imports no database
session; the CLI passes ``BlueprintStore.pieces(version, bbox=...)``). Memory follows the partition.

Why the subset gives the same rows: the batch path (checks.batch.screen_rows → checks.batch_fast) only
looks at pieces that intersect a parcel — overlap areas, the covered area, the feature ids of those pieces;
it has no buffer or "nearby" distance, and its tolerances are areas and ratios, not lengths. Every piece
that intersects a parcel of the partition meets the partition's box, so it is loaded. The loader returns
pieces in piece-id order, as ``BlueprintStore.get`` does, so sums run in the same order. What the
Screener reads from the version as a whole (version, CRS, layer kinds: whether 城镇开发边界外 is
derived) comes from the version's head, not from the pieces. The feature sets (checks.batch_sources) are
parsed per partition from its own pieces: ≈ 2.9 CPU-s per 20 000-parcel partition of the 10⁶-piece
province, most of what bounded costs over whole (bench/README.md); reading the version's saved feature
sets for the partition's pieces instead is the next step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from blueprint.model import Blueprint
from checks.engine import Screener
from checks.rules import Rules

Bbox = tuple[float, float, float, float]
# metres the partition's box is grown by: the batch screens nothing beyond the parcels themselves (see
# above), so this only absorbs the rounding of the database's box test (SpatiaLite's R*Tree keeps float32
# bounds) and vertices a geometry repair moves
MARGIN_M = 1.0
PieceLoader = Callable[[Bbox], gpd.GeoDataFrame]  # the version's pieces meeting a box, in piece-id order


@dataclass
class Regions:
    """What a bounded run needs to make each partition's Screener: the version's head and a loader."""

    head: Blueprint  # the version without pieces (BlueprintStore.head)
    load: PieceLoader
    rules: Rules
    catalogue: Any
    tolerance_m2: float
    tolerance_ratio: float
    compatibility: Any = None
    piece_count: int = 0  # pieces of the whole version (for messages)
    loaded: list[int] = dataclasses.field(default_factory=list)  # pieces loaded per screened partition
    load_seconds: float = 0.0
    margin: float = MARGIN_M

    def screener_of(self, blueprint: Blueprint) -> Screener:
        return Screener(blueprint, self.rules, self.catalogue, tolerance_m2=self.tolerance_m2,
                        tolerance_ratio=self.tolerance_ratio, compatibility=self.compatibility)

    def head_screener(self) -> Screener:
        """A Screener of one placeholder piece: validates parcels and names the run (version, rules
        digest); it screens nothing (the Screener refuses zero pieces: it takes their extent)."""
        return self.screener_of(dataclasses.replace(self.head, pieces=placeholder(self.head.pieces, None)))

    def screener(self, part: gpd.GeoDataFrame) -> Screener:
        """A Screener over the pieces meeting ``part``'s box (validated parcels, working CRS)."""
        started = time.perf_counter()
        box = region_box(part, self.margin)
        pieces = self.head.pieces if box is None else self.load(box)
        self.loaded.append(len(pieces))
        if not len(pieces):
            pieces = placeholder(self.head.pieces, box)
        screener = self.screener_of(dataclasses.replace(self.head, pieces=pieces))
        self.load_seconds += time.perf_counter() - started
        return screener


def region_box(part: gpd.GeoDataFrame, margin: float = MARGIN_M) -> Bbox | None:
    """The box of the partition's parcels grown by ``margin``; None when no parcel has a geometry."""
    values = np.asarray(part.geometry.values, dtype=object)
    present = values[~(shapely.is_missing(values) | shapely.is_empty(values))]
    if not len(present):
        return None
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(present))
    if not np.isfinite([minx, miny, maxx, maxy]).all():
        return None
    return minx - margin, miny - margin, maxx + margin, maxy + margin


def placeholder(empty: gpd.GeoDataFrame, box: Bbox | None) -> gpd.GeoDataFrame:
    """One piece of no kind, 1 m², a kilometre outside ``box``: for a partition that meets no piece (its
    parcels are all outside the city, as with the whole version). The Screener and checks.batch_fast
    cannot work on zero pieces, and this piece meets no parcel of the partition, so it changes no row."""
    x, y = (box[0], box[1]) if box is not None else (0.0, 0.0)
    row: dict[str, list[Any]] = {column: ["[]"] if column in ("kinds", "covered_by", "sources") else [""]
           for column in empty.columns if column != empty.geometry.name}
    row |= {c: [0.0] for c in ("area_m2", "ellipsoidal_area_m2") if c in row}
    return gpd.GeoDataFrame(row, geometry=[shapely.box(x - 1001.0, y - 1001.0, x - 1000.0, y - 1000.0)],
                            crs=empty.crs)
