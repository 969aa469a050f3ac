"""layers.store: persist plan layers (metadata, attributes, geometry as WKB) through an SQLAlchemy Engine."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from pyproj import CRS
from sqlalchemy.engine import Connection, Engine

from layers.crs import crs_label
from layers.errors import CRSMismatchError, LayerError
from layers.geometry import repair_rank
from layers.model import PlanLayer, Repair

if TYPE_CHECKING:
    from layers.stream import LayerStream

# Execution option read by api.db: on SQLite a write transaction starts with BEGIN IMMEDIATE.
WRITE_OPTION = "blueprint_write"

Row = dict[str, Any]
Bbox = tuple[float, float, float, float]  # minx, miny, maxx, maxy in the working CRS
Rows = list[dict[str, Any]]
Layers = list[PlanLayer]
Progress = Callable[[int, int], None]  # (source features read, total)

LAYERS = sa.table(
    "layers",
    sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("kind", sa.String),
    sa.column("source", sa.Text), sa.column("checksum", sa.String), sa.column("crs_in", sa.Text),
    sa.column("crs_out", sa.Text), sa.column("encoding", sa.String),
    sa.column("feature_count", sa.Integer), sa.column("area_m2", sa.Float),
    sa.column("repairs", sa.JSON), sa.column("notes", sa.JSON), sa.column("meta", sa.JSON),
    sa.column("status", sa.String), sa.column("created_by", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
FEATURES = sa.table(
    "layer_features",
    sa.column("layer_id", sa.Integer), sa.column("seq", sa.Integer), sa.column("feature_id", sa.Text),
    sa.column("attributes", sa.JSON), sa.column("geom"),
)
SUMMARY_COLUMNS = ("id", "name", "kind", "source", "checksum", "crs_in", "crs_out", "encoding",
                   "feature_count", "area_m2", "notes", "status", "created_by", "created_at")


class LayerNotFoundError(LayerError, LookupError):
    code = "layer_not_found"


class LayerExistsError(LayerError, ValueError):
    """A layer of that name is stored already and replacing was not asked for."""

    code = "layer_exists"


class LayerInUseError(LayerError):
    """The layer went into a published blueprint: it stays as it is for provenance."""

    code = "layer_in_use"


# --- helpers shared by the three stores -------------------------------------------------------

@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction (on SQLite it takes the write lock up front, see api.db)."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """Several SELECTs that must see one state (a row and its geometries while a draft is replaced).

    SQLite transactions are snapshots already; PostgreSQL's default READ COMMITTED is not.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were written in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def column_srid(conn: Connection, table: str) -> int:
    """The SRID the ``geom`` column of ``table`` was created with (same query on both backends)."""
    srid = conn.execute(
        sa.text("SELECT srid FROM geometry_columns WHERE lower(f_table_name) = :t "
                "AND lower(f_geometry_column) = 'geom'"), {"t": table}).scalar()
    if srid is None:
        raise RuntimeError(f"table {table} has no registered geometry column; run api.db.migrate")
    return int(srid)


def require_srid(crs: Any, srid: int, what: str) -> None:
    """Geometries are stored in the database's working CRS, never silently relabelled."""
    if crs is None or not CRS.from_user_input(crs).equals(CRS.from_epsg(srid), ignore_axis_order=True):
        raise CRSMismatchError(
            f"{what} is in {crs_label(CRS.from_user_input(crs) if crs is not None else None)}, "
            f"the database stores EPSG:{srid}")


def geom_as_wkb(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.ST_AsBinary(column, type_=sa.LargeBinary).label("wkb")


def bulk_insert(conn: Connection, table: str, data: pd.DataFrame, geometries: gpd.GeoSeries,
                srid: int) -> None:
    """Insert ``data`` (column name → value, JSON already as text) plus ``geom``, many rows at once.

    PostgreSQL gets COPY (several times faster than batched INSERTs for 10⁵ rows), SQLite an
    executemany of INSERT … ST_GeomFromWKB (qmark style: SpatiaLite only); in the caller's transaction.
    """
    if not len(data):
        return
    geoms = np.asarray(geometries.values)
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, table, data, geoms, srid)
        return
    columns = [*data.columns, "geom"]
    # positional rows straight to the driver: building 10⁵ dicts would cost more than the inserts
    values = [data[c].tolist() for c in data.columns]
    values.append(list(shapely.to_wkb(geoms, output_dimension=2)))
    marks = ", ".join(["?"] * len(data.columns))
    conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}, "
                         f"ST_GeomFromWKB(?, {int(srid)}))", list(zip(*values, strict=True)))


COPY_ROWS = 20_000  # rows per COPY: the CSV text of a batch is held in memory (4 bytes a character)


def _copy_rows(conn: Connection, table: str, data: pd.DataFrame, geoms: np.ndarray, srid: int) -> None:
    columns = ", ".join([*data.columns, "geom"])
    # QUOTE_NONNUMERIC writes a float NaN as a quoted "", which a number column refuses: read it as NULL
    floats = [c for c in data.columns if pd.api.types.is_float_dtype(data[c])]
    options = f", FORCE_NULL ({', '.join(floats)})" if floats else ""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(data), COPY_ROWS):
            part = slice(start, start + COPY_ROWS)
            # hex EWKB carries the SRID, so the geometry input function needs no wrapper
            ewkb = shapely.to_wkb(shapely.set_srid(geoms[part], srid), hex=True, include_srid=True,
                                  output_dimension=2)
            buffer = io.StringIO()
            # every string quoted: in CSV COPY an unquoted empty field means NULL, a quoted one ""
            data.iloc[part].assign(geom=ewkb).to_csv(buffer, index=False, header=False,
                                                     quoting=csv.QUOTE_NONNUMERIC)
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv{options})", buffer)
    finally:
        cursor.close()


def from_wkb(values: Sequence[Any]) -> np.ndarray:
    # psycopg2 returns memoryview for bytea
    return shapely.from_wkb([bytes(v) for v in values])


def jsonable(value: Any) -> Any:
    """Plain JSON values for numpy/pandas scalars and anything else (as text)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime, pd.Timestamp)):
        return value.isoformat()
    return str(value)


def bbox_filter(conn: Connection, table: str, bbox: Bbox) -> sa.TextClause:
    """Rows of ``table`` whose geometry intersects ``bbox``, found through the spatial index."""
    minx, miny, maxx, maxy = (float(v) for v in bbox)
    params = {"minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy, "srid": column_srid(conn, table)}
    if conn.dialect.name == "postgresql":
        clause = ("geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, :srid) "
                  "AND ST_Intersects(geom, ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, :srid))")
    else:
        # SpatiaLite does not consult its R*Tree by itself: ask it for candidate rowids
        clause = (f"{table}.rowid IN (SELECT pkid FROM idx_{table}_geom WHERE xmin <= :maxx "
                  "AND xmax >= :minx AND ymin <= :maxy AND ymax >= :miny) "
                  "AND ST_Intersects(geom, BuildMbr(:minx, :miny, :maxx, :maxy, :srid))")
    return sa.text(clause).bindparams(**params)


def mark_layers_used(conn: Connection, refs: Sequence[tuple[str, str]]) -> None:
    """Flag the (name, checksum) layers that went into a published blueprint (publish transaction)."""
    for name, checksum in refs:
        conn.execute(sa.update(LAYERS).where(LAYERS.c.name == name, LAYERS.c.checksum == checksum)
                     .values(status="used"))


# --- attribute (de)serialisation ---------------------------------------------------------------

def _attribute_records(frame: gpd.GeoDataFrame) -> tuple[Rows, Rows]:
    """Per-row attribute dicts (JSON-ready) and the column list with dtypes, in order."""
    attrs = pd.DataFrame(frame.drop(columns=[frame.geometry.name, "feature_id"]))
    columns = [{"name": str(c), "dtype": str(t)} for c, t in attrs.dtypes.items()]
    if attrs.shape[1] == 0:
        return [{} for _ in range(len(attrs))], columns
    attrs.columns = [str(c) for c in attrs.columns]
    # pandas does the vectorised conversion (NaN -> null, numpy scalars, timestamps as ISO text)
    text = attrs.to_json(orient="records", force_ascii=False, date_format="iso", default_handler=str)
    return json.loads(text), columns


def _merge_columns(seen: Rows | None, chunk: Rows) -> Rows:
    """The columns of several chunks, in order, with a dtype that holds every chunk's values."""
    if seen is None:
        return chunk
    return [{"name": a["name"], "dtype": _wider(a["dtype"], b["dtype"])}
            for a, b in zip(seen, chunk, strict=True)]


def _wider(a: str, b: str) -> str:
    """An integer column with gaps in one chunk only is float64 there: float64 then; else object."""
    if a == b:
        return a
    try:
        numeric = np.dtype(a).kind in "biuf" and np.dtype(b).kind in "biuf"
    except TypeError:  # pandas extension dtypes (string, Int64...)
        numeric = False
    return "float64" if numeric else "object"


def _attribute_frame(records: Rows, columns: Rows) -> pd.DataFrame:
    names = [c["name"] for c in columns]
    frame = pd.DataFrame.from_records(records, columns=names) if names else pd.DataFrame(
        index=range(len(records)))
    for column in columns:
        frame[column["name"]] = _restore_dtype(frame[column["name"]], column["dtype"])
    return frame


def _restore_dtype(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "object" or series.dtype == dtype:
        return series
    try:
        if dtype.startswith("datetime64"):
            return pd.to_datetime(series).astype(dtype)
        return series.astype(dtype)
    except (TypeError, ValueError):
        return series  # a value the dtype cannot hold: keep what JSON gave back


# --- the store ---------------------------------------------------------------------------------

class LayerStore:
    """Plan layers by unique name.

    Saving a name that exists raises :class:`LayerExistsError` unless ``replace=True``; a layer that
    went into a published blueprint (status ``used``) can be neither replaced nor deleted.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, layer: PlanLayer, by: str = "system", *, replace: bool = False) -> Row:
        """Store ``layer`` (all features in one transaction); returns its summary."""
        from layers.stream import whole

        return self.save_stream(whole(layer), by, replace=replace)

    def save_stream(self, stream: LayerStream, by: str = "system", *, replace: bool = False,
                    progress: Progress | None = None) -> Row:
        """Store a layer chunk by chunk as it is read, in one transaction; returns its summary.

        Each chunk is written in bulk (COPY on PostGIS, executemany on SpatiaLite); the layer's row
        gets its counts, area and repairs at the end. An error while reading (a limit passed in a later
        chunk) rolls everything back. ``progress(read, total)`` follows the source features.
        """
        with write_transaction(self.engine) as conn:
            srid = column_srid(conn, "layer_features")
            require_srid(stream.crs_out or None, srid, f"layer {stream.name!r}")
            self._clear_existing(conn, stream.name, replace)
            layer_id = self._insert_layer(conn, stream, by)
            count, area, columns = 0, 0.0, None
            repairs: Rows = []
            for chunk in stream.chunks():
                require_srid(chunk.frame.crs, srid, f"layer {stream.name!r}")
                columns = _merge_columns(columns, self._write_chunk(conn, layer_id, chunk.frame, count, srid))
                count += len(chunk.frame)
                area += float(chunk.frame.geometry.area.sum())
                repairs.extend(r.as_dict() for r in chunk.repairs)
                if progress is not None:
                    progress(chunk.read, stream.total)
            repairs.sort(key=lambda r: repair_rank(r["problem"]))  # as the whole layer's repair lists them
            conn.execute(sa.update(LAYERS).where(LAYERS.c.id == layer_id).values(
                feature_count=count, area_m2=round(area, 2), repairs=repairs, notes=list(stream.notes),
                meta={"layer": jsonable(stream.meta), "columns": columns or []}))
        return self.summary(stream.name)

    def summary(self, name: str) -> Row:
        """Stored metadata of one layer, including its repairs."""
        with self.engine.connect() as conn:
            row = self._row(conn, name)
        return _summary(row, with_repairs=True)

    def list(self) -> Rows:
        """Summaries of every stored layer (repairs counted, not listed), by kind then name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(LAYERS).order_by(LAYERS.c.kind, LAYERS.c.name)).mappings().all()
        return [_summary(dict(r), with_repairs=False) for r in rows]

    def get(self, name: str) -> PlanLayer:
        """The stored layer as it was saved (features in their original order)."""
        with read_snapshot(self.engine) as conn:
            row = self._row(conn, name)
            features = conn.execute(
                sa.select(FEATURES.c.feature_id, FEATURES.c.attributes, geom_as_wkb(FEATURES.c.geom))
                .where(FEATURES.c.layer_id == row["id"]).order_by(FEATURES.c.seq)).all()
        return _plan_layer(row, features)

    def features(self, name: str, *, bbox: Bbox | None = None, limit: int | None = None,
                 offset: int = 0, where: Sequence[sa.ColumnElement[Any]] = ()) -> gpd.GeoDataFrame:
        """A page of a layer's features (as in :meth:`get`), optionally those intersecting ``bbox`` and
        meeting the conditions ``where`` (on ``FEATURES``' columns, e.g. a translated filter)."""
        with read_snapshot(self.engine) as conn:
            row = self._row(conn, name)
            stmt = (sa.select(FEATURES.c.feature_id, FEATURES.c.attributes, geom_as_wkb(FEATURES.c.geom))
                    .where(FEATURES.c.layer_id == row["id"], *where).order_by(FEATURES.c.seq)
                    .limit(limit).offset(offset))
            if bbox is not None:
                stmt = stmt.where(bbox_filter(conn, "layer_features", bbox))
            return _plan_layer(row, conn.execute(stmt).all()).frame

    def count(self, name: str, *, bbox: Bbox | None = None,
              where: Sequence[sa.ColumnElement[Any]] = ()) -> int:
        """How many features :meth:`features` would page through."""
        with self.engine.connect() as conn:
            row = self._row(conn, name)
            stmt = (sa.select(sa.func.count()).select_from(FEATURES)
                    .where(FEATURES.c.layer_id == row["id"], *where))
            if bbox is not None:
                stmt = stmt.where(bbox_filter(conn, "layer_features", bbox))
            return int(conn.execute(stmt).scalar_one())

    def columns(self, name: str) -> Rows:
        """The attribute columns of a stored layer, in order, each with its pandas dtype."""
        with self.engine.connect() as conn:
            return list(self._row(conn, name)["meta"].get("columns", []))

    def load_all(self) -> Layers:
        """Every stored layer (the input of a blueprint build)."""
        return [self.get(summary["name"]) for summary in self.list()]

    def delete(self, name: str) -> None:
        """Remove a layer that no published blueprint used."""
        with write_transaction(self.engine) as conn:
            row = self._row(conn, name)
            if row["status"] == "used":
                raise LayerInUseError(
                    f"layer {name!r} is used by a published blueprint and cannot be deleted")
            self._delete(conn, row["id"])

    # internals

    def _row(self, conn: Connection, name: str) -> Row:
        row = conn.execute(sa.select(LAYERS).where(LAYERS.c.name == name)).mappings().first()
        if row is None:
            raise LayerNotFoundError(f"no stored layer named {name!r}")
        return dict(row)

    def _clear_existing(self, conn: Connection, name: str, replace: bool) -> None:
        existing = conn.execute(sa.select(LAYERS.c.id, LAYERS.c.status).where(LAYERS.c.name == name)).first()
        if existing is None:
            return
        if not replace:
            raise LayerExistsError(f"a layer named {name!r} is stored already (delete it or replace it)")
        if existing.status == "used":
            raise LayerInUseError(f"layer {name!r} is used by a published blueprint and cannot be replaced")
        self._delete(conn, existing.id)

    @staticmethod
    def _delete(conn: Connection, layer_id: int) -> None:
        conn.execute(sa.delete(FEATURES).where(FEATURES.c.layer_id == layer_id))
        conn.execute(sa.delete(LAYERS).where(LAYERS.c.id == layer_id))

    @staticmethod
    def _insert_layer(conn: Connection, stream: LayerStream, by: str) -> int:
        """The layer's row, before its features (counts, area, repairs filled in at the end)."""
        new_id = conn.execute(sa.insert(LAYERS).returning(LAYERS.c.id).values(
            name=stream.name, kind=stream.kind, source=stream.source, checksum=stream.checksum,
            crs_in=stream.crs_in, crs_out=stream.crs_out, encoding=stream.encoding,
            feature_count=0, area_m2=0.0, repairs=[], notes=list(stream.notes),
            meta={"layer": jsonable(stream.meta), "columns": []},
            status="draft", created_by=by, created_at=utcnow())).scalar_one()
        return int(new_id)

    @staticmethod
    def _write_chunk(conn: Connection, layer_id: int, frame: gpd.GeoDataFrame, seq0: int, srid: int) -> Rows:
        """Bulk-insert one chunk's features (``seq`` from ``seq0``); returns its attribute columns."""
        records, columns = _attribute_records(frame)
        features = pd.DataFrame({
            "seq": np.arange(seq0, seq0 + len(frame)),
            "feature_id": frame["feature_id"].astype(str).to_numpy(),
            "attributes": [json.dumps(r, ensure_ascii=False) for r in records],
        })
        bulk_insert(conn, "layer_features", features.assign(layer_id=layer_id), frame.geometry, srid)
        return columns


def _summary(row: Row, *, with_repairs: bool) -> Row:
    out = {key: row[key] for key in SUMMARY_COLUMNS}
    created = as_utc(row["created_at"])
    out["created_at"] = created.isoformat() if created else None
    out["repair_count"] = len(row["repairs"])
    if with_repairs:
        out["repairs"] = row["repairs"]
    return out


def _plan_layer(row: Row, features: Sequence[Any]) -> PlanLayer:
    columns = row["meta"].get("columns", [])
    attrs = _attribute_frame([f.attributes for f in features], columns)
    attrs.insert(0, "feature_id", [f.feature_id for f in features])
    crs = CRS.from_user_input(row["crs_out"])
    frame = gpd.GeoDataFrame(attrs, geometry=from_wkb([f.wkb for f in features]), crs=crs)
    return PlanLayer(
        kind=row["kind"], name=row["name"], source=row["source"], checksum=row["checksum"],
        crs_in=row["crs_in"], frame=frame,
        repairs=tuple(Repair(**r) for r in row["repairs"]), notes=tuple(row["notes"]),
        encoding=row["encoding"], meta=dict(row["meta"].get("layer", {})),
    )
