"""layers.model: the values the layers package hands on (PlanLayer, Repair)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd


@dataclass(frozen=True)
class Repair:
    """One thing that was wrong with one input feature and what was done about it."""

    feature_id: str
    problem: str  # stable short code, e.g. "self_intersection", "empty", "z_dropped", "multipart_exploded"
    action: str  # what was done, e.g. "make_valid", "dropped", "exploded into 3 parts"
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"feature_id": self.feature_id, "problem": self.problem, "action": self.action,
                "detail": self.detail}


@dataclass
class PlanLayer:
    """A normalised plan layer: polygons in the working CRS, one row per source feature.

    ``frame`` columns: ``feature_id`` (str, stable id from the source or the 1-based row number),
    ``geometry`` (Polygon or MultiPolygon, valid, non-empty, 2-D), plus the source attributes.
    ``frame.crs`` is the working CRS (projected, metres).
    """

    kind: str
    name: str
    source: str  # file name as handed over
    checksum: str  # sha256 of the source bytes
    crs_in: str  # CRS of the source, e.g. "EPSG:4527"
    frame: gpd.GeoDataFrame
    repairs: tuple[Repair, ...] = ()
    notes: tuple[str, ...] = ()  # human notes: encoding detected, CRS detected and why...
    encoding: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def crs_out(self) -> str:
        crs = self.frame.crs
        return crs.to_string() if crs is not None else ""

    def summary(self) -> dict[str, Any]:
        """Machine-readable summary printed by the CLI and returned by the API."""
        return {
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
            "checksum": self.checksum,
            "feature_count": len(self.frame),
            "crs_in": self.crs_in,
            "crs_out": self.crs_out,
            "encoding": self.encoding,
            "area_m2": round(float(self.frame.geometry.area.sum()), 2),
            "repairs": [r.as_dict() for r in self.repairs],
            "notes": list(self.notes),
        }


@dataclass
class ParcelSet:
    """Submitted project parcels, repaired, in the working CRS.

    ``frame`` columns: ``parcel_id`` (str, unique), optional ``name``, attributes, ``geometry``.
    """

    frame: gpd.GeoDataFrame
    source: str = "parcels"
    crs_in: str = ""
    checksum: str = ""
    repairs: tuple[Repair, ...] = ()
    notes: tuple[str, ...] = ()
    # the 3-degree GK zone a 部标 file declares (its plane areas are meant in it); None otherwise
    declared_zone: int | None = None
    # the web-map datum ("GCJ02", "BD09") the reader moved the coordinates from, as declared; None otherwise
    offset_undone: str | None = None



def parcel_set_meta(parcels: ParcelSet) -> dict[str, Any]:
    """Everything of a ParcelSet but its frame, as JSON (a queued check stores it beside its parquet)."""
    return {"source": parcels.source, "crs_in": parcels.crs_in, "checksum": parcels.checksum,
            "repairs": [r.as_dict() for r in parcels.repairs], "notes": list(parcels.notes),
            "declared_zone": parcels.declared_zone, "offset_undone": parcels.offset_undone}


def parcel_set_from(frame: gpd.GeoDataFrame, meta: Mapping[str, Any]) -> ParcelSet:
    """The ParcelSet :func:`parcel_set_meta` described (missing keys, from older jobs: the defaults)."""
    zone = meta.get("declared_zone")
    return ParcelSet(frame=frame, source=str(meta.get("source", "parcels")),
                     crs_in=str(meta.get("crs_in", "")), checksum=str(meta.get("checksum", "")),
                     repairs=tuple(Repair(**r) for r in meta.get("repairs", [])),
                     notes=tuple(meta.get("notes", [])),
                     declared_zone=None if zone is None else int(zone),
                     offset_undone=meta.get("offset_undone"))

# what each limit counts, for the messages
LIMIT_UNITS = {"max_bytes": "bytes", "max_unzipped_bytes": "bytes unpacked", "max_members": "archive members",
               "max_features": "features", "max_vertices": "vertices"}


@dataclass(frozen=True)
class Limits:
    """Limits applied while reading any file (bytes, archive members, features, vertices).

    ``scope`` names the set in messages ("plan-layer", "submission"); ``raise_with`` maps a limit's
    field name to the words that tell the reader how to raise it. The edge writes those words (an
    environment variable in the CLI, the service's setting in the API); the core only repeats them.
    """

    max_bytes: int = 50 * 1024 * 1024
    max_unzipped_bytes: int = 500 * 1024 * 1024
    max_members: int = 200
    max_features: int = 2_000_000
    max_vertices: int = 50_000_000
    scope: str = "upload"
    raise_with: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def exceeded(self, limit: str, found: str) -> str:
        """``found`` (e.g. "60,000 features"), then which limit it passes and how to raise that limit."""
        text = f"{found}, more than the {self.scope} limit of {getattr(self, limit):,} {LIMIT_UNITS[limit]}"
        hint = self.raise_with.get(limit)
        return f"{text}; {hint}" if hint else f"{text} ({limit})"
