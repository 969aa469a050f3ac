"""blueprint.store: versioned blueprints (draft → published, immutable once published) in the database."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import sqlalchemy as sa
from pyproj import CRS
from sqlalchemy.engine import Connection, Engine

from blueprint.errors import (
    BlueprintError,
    BlueprintImmutableError,
    BlueprintNotFoundError,
    NoPublishedBlueprintError,
)
from blueprint.features import condition_features
from blueprint.model import Blueprint, LayerRef
from layers.store import (
    Bbox,
    LayerNotFoundError,
    LayerStore,
    as_utc,
    bbox_filter,
    bulk_insert,
    column_srid,
    from_wkb,
    geom_as_wkb,
    jsonable,
    mark_layers_used,
    read_snapshot,
    require_srid,
    utcnow,
    write_transaction,
)

Row = dict[str, Any]

PIECE_COLUMNS = ("piece_id", "kind", "kinds", "covered_by", "sources", "area_m2", "ellipsoidal_area_m2")
CONFLICT_COLUMNS = ("conflict_id", "kind_a", "kind_b", "layer_a", "layer_b", "feature_ids", "rule",
                    "resolution", "winner", "area_m2")
FLOAT_COLUMNS = frozenset({"area_m2", "ellipsoidal_area_m2"})
TEXT_COLUMNS = frozenset(PIECE_COLUMNS + CONFLICT_COLUMNS) - FLOAT_COLUMNS

BLUEPRINTS = sa.table(
    "blueprints",
    sa.column("version", sa.String), sa.column("seq", sa.Integer), sa.column("status", sa.String),
    sa.column("crs", sa.Text), sa.column("precedence", sa.JSON), sa.column("tolerance_m", sa.Float),
    sa.column("layers", sa.JSON), sa.column("absorbed", sa.JSON), sa.column("summary", sa.JSON),
    sa.column("meta", sa.JSON), sa.column("created_by", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)), sa.column("published_by", sa.String),
    sa.column("published_at", sa.DateTime(timezone=True)),
)
PIECES = sa.table("pieces", sa.column("version", sa.String),
                  *(sa.column(c, sa.Float if c in FLOAT_COLUMNS else sa.Text) for c in PIECE_COLUMNS),
                  sa.column("geom"))
CONFLICTS = sa.table("conflicts", sa.column("version", sa.String),
                     *(sa.column(c, sa.Float if c in FLOAT_COLUMNS else sa.Text) for c in CONFLICT_COLUMNS),
                     sa.column("geom"))
VERSION_PATTERN = re.compile(r"^v(\d+)$")


class BlueprintVersionExistsError(BlueprintError):
    """A draft of that version is stored already (two builds raced, or a rebuild without replace)."""

    code = "blueprint_version_exists"


class BlueprintStore:
    """Blueprint versions "v1", "v2"...: drafts can be replaced or deleted, published ones never."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def next_version(self) -> str:
        """The version name the next build should take."""
        with self.engine.connect() as conn:
            return f"v{_max_seq(conn) + 1}"

    def save_draft(self, blueprint: Blueprint, *, replace: bool = False,
                   piece_parts: Sequence[Path] = (), also: Callable[[Connection], None] | None = None) -> Row:
        """Store ``blueprint`` as a draft in one transaction; returns its summary.

        ``piece_parts``: GeoParquet files holding the pieces of an out-of-core build (its
        ``blueprint.pieces`` is empty); they are loaded one at a time (PostgreSQL COPY, SpatiaLite one
        executemany per part), in the same transaction. ``also`` runs last inside that transaction (a
        build job records its draft and the audit entry there, so neither commits without the other)."""
        pieces = _contract_columns(blueprint.pieces, PIECE_COLUMNS, blueprint.version)
        conflicts = _contract_columns(blueprint.conflicts, CONFLICT_COLUMNS, blueprint.version)
        with write_transaction(self.engine) as conn:
            srid = column_srid(conn, "pieces")
            require_srid(blueprint.crs, srid, f"blueprint {blueprint.version}")
            seq = self._claim_version(conn, blueprint.version, replace)
            conn.execute(sa.insert(BLUEPRINTS).values(**_blueprint_row(blueprint, seq)))
            bulk_insert(conn, "pieces", pieces, blueprint.pieces.geometry, srid)
            for path in piece_parts:
                part = gpd.read_parquet(path)
                bulk_insert(conn, "pieces", _contract_columns(part, PIECE_COLUMNS, blueprint.version),
                            part.geometry, srid)
                del part  # one part in memory at a time
            bulk_insert(conn, "conflicts", conflicts, blueprint.conflicts.geometry, srid)
            if also is not None:
                also(conn)
        return self.summary(blueprint.version)

    def publish(self, version: str, by: str, *, also: Callable[[Connection], None] | None = None) -> Row:
        """Publish a draft: all or nothing, in one transaction; returns the published summary.

        ``also`` runs inside that transaction (the edge records its event and queues the re-screening
        there, so a publish never commits without them)."""
        with write_transaction(self.engine) as conn:
            row = self._row(conn, version, lock=True)
            if row["status"] == "published":
                raise BlueprintImmutableError(f"blueprint {version} is published already")
            if not conn.execute(sa.select(sa.func.count()).select_from(PIECES)
                                .where(PIECES.c.version == version)).scalar_one():
                raise BlueprintError(f"blueprint {version} has no pieces and cannot be published")
            published_at = utcnow()
            lifecycle = {"status": "published", "published_by": by, "published_at": published_at}
            # one UPDATE: from here on the row is frozen (by the store and by database triggers)
            conn.execute(sa.update(BLUEPRINTS).where(BLUEPRINTS.c.version == version,
                                                     BLUEPRINTS.c.status == "draft")
                         .values(**lifecycle, summary=_summary({**row, **lifecycle})))
            self._mark_layers_used(conn, row["layers"])
            if also is not None:
                also(conn)
        return self.summary(version)

    def delete_draft(self, version: str) -> None:
        """Remove a draft; published versions are immutable."""
        with write_transaction(self.engine) as conn:
            row = self._row(conn, version, lock=True)
            if row["status"] == "published":
                raise BlueprintImmutableError(f"blueprint {version} is published and cannot be deleted")
            _delete(conn, version)

    def get(self, version: str) -> Blueprint:
        """The whole blueprint (pieces and conflicts as GeoDataFrames in the stored CRS)."""
        with read_snapshot(self.engine) as conn:
            row = self._row(conn, version)
            crs = CRS.from_user_input(row["crs"])
            pieces = _frame(conn, PIECES, version, crs)
            conflicts = _frame(conn, CONFLICTS, version, crs)
        blueprint = _blueprint(row, crs, pieces, conflicts)
        blueprint.features = self._features(blueprint)
        return blueprint

    def head(self, version: str) -> Blueprint:
        """``version`` without its pieces, conflicts or features: what a bounded batch run holds whole
        (its pieces come partition by partition from :meth:`pieces` with a bbox)."""
        with self.engine.connect() as conn:
            row = self._row(conn, version)
        crs = CRS.from_user_input(row["crs"])
        empty = {table: gpd.GeoDataFrame({c: pd.Series([], dtype=float if c in FLOAT_COLUMNS else object)
                                          for c in columns}, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
                 for table, columns in (("pieces", PIECE_COLUMNS), ("conflicts", CONFLICT_COLUMNS))}
        return _blueprint(row, crs, empty["pieces"], empty["conflicts"])

    def _features(self, blueprint: Blueprint) -> gpd.GeoDataFrame | None:
        """The version's 控规地块 / 区域评估 features, read from the layer store by its layer refs."""
        names = blueprint.meta.get("feature_layers") or []
        if not names:
            return None
        refs = {ref.name: ref for ref in blueprint.layers}
        store = LayerStore(self.engine)
        layers = []
        for name in names:
            try:
                layer = store.get(name)
            except LayerNotFoundError:
                raise BlueprintError(f"blueprint {blueprint.version}: its layer {name!r} is no longer "
                                     "stored; "
                                     "build a new version") from None
            if name not in refs or layer.checksum != refs[name].checksum:
                raise BlueprintError(f"blueprint {blueprint.version}: layer {name!r} was replaced after the "
                                     "version was built; build a new version")
            layers.append(layer)
        return condition_features(layers, blueprint.crs)

    def latest_published(self) -> Blueprint:
        """The version published last (NoPublishedBlueprintError if there is none), whatever its number."""
        return self.get(self.latest_published_version())

    def latest_published_version(self) -> str:
        with self.engine.connect() as conn:
            version = conn.execute(sa.select(BLUEPRINTS.c.version).where(BLUEPRINTS.c.status == "published")
                                   .order_by(BLUEPRINTS.c.published_at.desc(), BLUEPRINTS.c.seq.desc())
                                   .limit(1)).scalar()
        if version is None:
            raise NoPublishedBlueprintError("no blueprint has been published yet")
        return str(version)

    def versions(self) -> list[Row]:
        """Summaries of every version, oldest first (no geometry is read)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(BLUEPRINTS).order_by(BLUEPRINTS.c.seq)).mappings().all()
        return [_summary(dict(r)) for r in rows]

    def summary(self, version: str) -> Row:
        with self.engine.connect() as conn:
            return _summary(self._row(conn, version))

    def conflicts(self, version: str, *, bbox: Bbox | None = None, limit: int | None = None,
                  offset: int = 0) -> gpd.GeoDataFrame:
        """The conflict list (差异图斑) of one version, or a page of it / those intersecting ``bbox``."""
        return self._page(CONFLICTS, version, bbox, limit, offset)

    def pieces(self, version: str, *, bbox: Bbox | None = None, limit: int | None = None,
               offset: int = 0) -> gpd.GeoDataFrame:
        """A page of a version's pieces, optionally those intersecting ``bbox`` (working CRS)."""
        return self._page(PIECES, version, bbox, limit, offset)

    def count(self, version: str, what: str = "pieces", *, bbox: Bbox | None = None) -> int:
        """How many pieces (or conflicts) :meth:`pieces` (:meth:`conflicts`) would page through."""
        table = {"pieces": PIECES, "conflicts": CONFLICTS}[what]
        with self.engine.connect() as conn:
            self._row(conn, version)
            stmt = sa.select(sa.func.count()).select_from(table).where(table.c.version == version)
            if bbox is not None:
                stmt = stmt.where(bbox_filter(conn, str(table.name), bbox))
            return int(conn.execute(stmt).scalar_one())

    # internals

    def _page(self, table: sa.TableClause, version: str, bbox: Bbox | None, limit: int | None,
              offset: int) -> gpd.GeoDataFrame:
        with read_snapshot(self.engine) as conn:
            row = self._row(conn, version)
            where = [bbox_filter(conn, str(table.name), bbox)] if bbox is not None else []
            return _frame(conn, table, version, CRS.from_user_input(row["crs"]), where=where, limit=limit,
                          offset=offset)

    @staticmethod
    def _row(conn: Connection, version: str, *, lock: bool = False) -> Row:
        stmt = sa.select(BLUEPRINTS).where(BLUEPRINTS.c.version == version)
        if lock and conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).mappings().first()
        if row is None:
            raise BlueprintNotFoundError(f"no blueprint version {version!r}")
        return dict(row)

    def _claim_version(self, conn: Connection, version: str, replace: bool) -> int:
        """The sequence number for ``version``; clears a draft being replaced."""
        existing = conn.execute(sa.select(BLUEPRINTS.c.status, BLUEPRINTS.c.seq)
                                .where(BLUEPRINTS.c.version == version)).first()
        if existing is None:
            match = VERSION_PATTERN.match(version)
            return int(match.group(1)) if match else _max_seq(conn) + 1
        if existing.status == "published":
            raise BlueprintImmutableError(f"blueprint {version} is published and cannot be overwritten")
        if not replace:
            raise BlueprintVersionExistsError(f"a draft {version} is stored already; build again")
        _delete(conn, version)
        return int(existing.seq)

    @staticmethod
    def _mark_layers_used(conn: Connection, layers: Sequence[Row]) -> None:
        mark_layers_used(conn, [(ref["name"], ref["checksum"]) for ref in layers])

def _max_seq(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(BLUEPRINTS.c.seq), 0))).scalar_one())


def _delete(conn: Connection, version: str) -> None:
    for table in (PIECES, CONFLICTS):
        conn.execute(sa.delete(table).where(table.c.version == version))
    conn.execute(sa.delete(BLUEPRINTS).where(BLUEPRINTS.c.version == version))


def _blueprint_row(blueprint: Blueprint, seq: int) -> Row:
    created_at = blueprint.created_at or utcnow()
    summary = blueprint.summary()
    summary.update(status="draft", created_at=created_at.isoformat(), published_by=None, published_at=None)
    return {
        "version": blueprint.version, "seq": seq, "status": "draft", "crs": blueprint.crs.to_string(),
        "precedence": list(blueprint.precedence), "tolerance_m": float(blueprint.tolerance_m),
        "layers": [ref.as_dict() for ref in blueprint.layers], "absorbed": jsonable(list(blueprint.absorbed)),
        "summary": jsonable(summary), "meta": jsonable(blueprint.meta),
        "created_by": blueprint.created_by, "created_at": created_at,
        "published_by": None, "published_at": None,
    }


def _contract_columns(frame: gpd.GeoDataFrame, columns: Sequence[str], version: str) -> pd.DataFrame:
    """The contract columns of pieces or conflicts (see blueprint.model), typed for storage."""
    # a frame from before the ellipsoidal column (or from elsewhere) stores NaN there
    data = pd.DataFrame({c: (frame[c] if c in frame else pd.Series(float("nan"), index=frame.index))
                         .astype(float if c in FLOAT_COLUMNS else str).to_numpy() for c in columns},
                        columns=list(columns))
    data.insert(0, "version", version)
    return data


def _frame(conn: Connection, table: sa.TableClause, version: str, crs: CRS, *,
           where: Sequence[sa.ColumnElement[bool] | sa.TextClause] = (), limit: int | None = None,
           offset: int = 0) -> gpd.GeoDataFrame:
    """Pieces or conflicts of ``version`` in id order, with the contract's columns and types."""
    columns, order = (PIECE_COLUMNS, "piece_id") if table is PIECES else (CONFLICT_COLUMNS, "conflict_id")
    stmt = (sa.select(*(table.c[c] for c in columns), geom_as_wkb(table.c.geom))
            .where(table.c.version == version, *where).order_by(table.c[order]).limit(limit).offset(offset))
    rows = conn.execute(stmt).all()
    data = pd.DataFrame.from_records([r[:-1] for r in rows], columns=list(columns))
    for column in FLOAT_COLUMNS.intersection(columns):
        data[column] = data[column].astype(float)  # NULL (versions stored before 0010) → NaN
    for column in TEXT_COLUMNS.intersection(columns):
        data[column] = data[column].astype(str)
    return gpd.GeoDataFrame(data, geometry=from_wkb([r[-1] for r in rows]), crs=crs)


def _summary(row: Row) -> Row:
    """The stored summary with the lifecycle fields taken from their columns (the source of truth)."""
    summary = dict(row["summary"])
    created_at, published_at = as_utc(row["created_at"]), as_utc(row["published_at"])
    summary.update(version=row["version"], status=row["status"], created_by=row["created_by"],
                   created_at=created_at.isoformat() if created_at else None,
                   published_by=row["published_by"],
                   published_at=published_at.isoformat() if published_at else None)
    return summary


def _blueprint(row: Row, crs: CRS, pieces: gpd.GeoDataFrame, conflicts: gpd.GeoDataFrame) -> Blueprint:
    return Blueprint(
        version=row["version"], crs=crs, pieces=pieces, conflicts=conflicts,
        layers=tuple(LayerRef(**ref) for ref in row["layers"]), precedence=tuple(row["precedence"]),
        tolerance_m=float(row["tolerance_m"]), status=row["status"], created_by=row["created_by"],
        created_at=as_utc(row["created_at"]), published_by=row["published_by"],
        published_at=as_utc(row["published_at"]), absorbed=tuple(row["absorbed"]), meta=dict(row["meta"]),
    )
