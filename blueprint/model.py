"""blueprint.model: the Blueprint value, its pieces, conflicts and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import geopandas as gpd
from pyproj import CRS

Status = Literal["draft", "published"]

# Column contracts (every producer and consumer of a Blueprint relies on these):
#
# pieces: a planar partition of the city area (no gaps, no overlaps, valid polygons), one row per piece
#   piece_id   str   stable within a version, "P000001"...
#   kind       str   controlling kind after precedence (the line if any line covers it, else the zone,
#                    else the first overlay, else "unplanned")
#   kinds      str   JSON list of the *effective* kinds after precedence: at most one per exclusive group
#                    (line, zone) plus every overlay, e.g. '["ecological_redline","ecological_space"]'
#   covered_by str   JSON list of every kind whose layer covers the piece before precedence
#   sources    str   JSON list of {"kind","layer","feature_id","source","checksum"} for every covering feature
#   area_m2    float plane area in the piece's own 3° Gauss-Krüger zone (the working CRS's for its zone)
#   ellipsoidal_area_m2 float area on the CGCS2000 ellipsoid (layers.areas.zone_and_ellipsoidal_areas):
#                    per-kind sums equal the ellipsoidal sums across zones; NaN in versions stored before
#   geometry         Polygon / MultiPolygon in the working CRS
#
# conflicts: inter-plan disagreements (差异图斑), one row per connected disputed area and kind pair
#   conflict_id str  "C000001"...
#   kind_a, kind_b str   the two kinds that disagree (kind_a wins under the precedence)
#   layer_a, layer_b str layer names
#   feature_ids str  JSON {"<kind_a>": [...], "<kind_b>": [...]}
#   rule        str  e.g. "three_lines_exclusive", "zones_exclusive", "line_contradicts_zone"
#   resolution  str  human text, Chinese then English: "生态保护红线优先 ecological_redline prevails"
#   winner      str  the kind that prevails
#   area_m2     float
#   geometry         in the working CRS
#   rule plan_use_on_line / plan_use_outside_line: a detailed-plan construction parcel on a protected line
#   or outside the urban development boundary (kind_b is the plan kind; see blueprint.features)
#
# features: attributed features (控规地块, 区域评估) carried one by one, see blueprint.features


@dataclass(frozen=True)
class LayerRef:
    """Which source layer went into a blueprint, with its checksum."""

    kind: str
    name: str
    source: str
    checksum: str
    feature_count: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "source": self.source,
                "checksum": self.checksum, "feature_count": self.feature_count}


@dataclass
class Blueprint:
    """One blueprint version. Immutable once ``status == "published"``."""

    version: str
    crs: CRS
    pieces: gpd.GeoDataFrame
    conflicts: gpd.GeoDataFrame
    layers: tuple[LayerRef, ...]
    precedence: tuple[str, ...]
    tolerance_m: float
    status: Status = "draft"
    created_by: str = "system"
    created_at: datetime | None = None
    published_by: str | None = None
    published_at: datetime | None = None
    absorbed: tuple[dict[str, Any], ...] = ()  # slivers/gaps absorbed under the tolerance, reported
    meta: dict[str, Any] = field(default_factory=dict)
    # an out-of-core build leaves ``pieces`` empty (they are in GeoParquet parts): their count and area
    # per kind, for the summary
    piece_totals: tuple[int, dict[str, float]] | None = None
    ellipsoidal_totals: dict[str, float] = field(default_factory=dict)
    # 控规地块 and 区域评估 features with their attributes (blueprint.features); None: the version has none
    features: gpd.GeoDataFrame | None = None

    def summary(self) -> dict[str, Any]:
        """Metadata and per-kind totals, as printed by the CLI and returned by the API."""
        by_kind = self.pieces.groupby("kind")["area_m2"].sum().round(2).to_dict() if len(self.pieces) else {}
        ellipsoidal = (self.pieces.groupby("kind")["ellipsoidal_area_m2"].sum(min_count=1).round(2).to_dict()
                       if len(self.pieces) and "ellipsoidal_area_m2" in self.pieces else {})
        count = len(self.pieces)
        if self.piece_totals is not None and not count:
            count, by_kind = self.piece_totals[0], {k: round(v, 2) for k, v in self.piece_totals[1].items()}
            ellipsoidal = {k: round(v, 2) for k, v in self.ellipsoidal_totals.items()}
        return {
            "version": self.version,
            "status": self.status,
            "crs": self.crs.to_string(),
            "piece_count": count,
            "conflict_count": len(self.conflicts),
            "conflict_area_m2": round(float(self.conflicts["area_m2"].sum()), 2)
            if len(self.conflicts) else 0.0,
            "area_by_kind_m2": {str(k): float(v) for k, v in sorted(by_kind.items())},
            # None where a stored version predates the column (its pieces' ellipsoidal areas are NaN)
            "ellipsoidal_area_by_kind_m2": {str(k): None if v != v else float(v)
                                            for k, v in sorted(ellipsoidal.items())},
            "precedence": list(self.precedence),
            "tolerance_m": self.tolerance_m,
            "layers": [ref.as_dict() for ref in self.layers],
            "absorbed_count": len(self.absorbed),
            "feature_count": len(self.features) if self.features is not None else 0,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "published_by": self.published_by,
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }
