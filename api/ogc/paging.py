"""api.ogc.paging: an OGC items page or one feature, read from the database: only its rows, counted in SQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import sqlalchemy as sa
from pygeofilter import ast

from api.errors import InvalidParameterError
from api.ogc import crs as ogc_crs
from api.ogc.collections import ID_COLUMN, Collection
from api.ogc.sql_filter import DEFERRED, Bbox, Prop, Source, to_sql
from approval.pool_tables import project_parcels, projects
from blueprint.store import CONFLICT_COLUMNS, CONFLICTS, FLOAT_COLUMNS, PIECE_COLUMNS, PIECES
from layers.store import FEATURES, bbox_filter, from_wkb, geom_as_wkb, read_snapshot
from runtime.geojson import _plain
from runtime.services import Services

Feature = dict[str, Any]
ToFeatures = Callable[[gpd.GeoDataFrame, ogc_crs.OfferedCrs], list[Feature]]
Conditions = list[sa.ColumnElement[Any]]


@dataclass(frozen=True)
class ItemsQuery:
    """What a request asks of a collection besides the page: a bbox, a CQL2 filter, one feature id."""

    bbox: Bbox | None = None
    tree: ast.Node | None = None
    filter_crs: ogc_crs.OfferedCrs | None = None
    feature_id: str | None = None


def pageable(collection: Collection) -> bool:
    """Every collection pages in SQL: LIMIT/OFFSET in the order of the whole-frame path, bbox and
    spatial predicates through the spatial index (SpatiaLite's R*Tree, PostGIS's GiST), CQL2 filters
    translated (api.ogc.sql_filter)."""
    return collection.id.startswith(("blueprint-", "layer-")) or collection.id == "project-parcels"


def sql_page(services: Services, collection: Collection, query: ItemsQuery, start: int, size: int,
             out_crs: ogc_crs.OfferedCrs, to_features: ToFeatures, *, count: bool = True
             ) -> tuple[list[Feature], int]:
    """The GeoJSON features of one page of a pageable collection and its numberMatched (``-1`` when
    ``count`` is off: one feature asked for by id)."""
    try:
        if collection.id.startswith("blueprint-"):
            return _blueprint_page(services, collection, query, start, size, out_crs, count)
        if collection.id.startswith("layer-"):
            return _layer_page(services, collection, query, start, size, out_crs, to_features, count)
        return _parcels_page(services, collection, query, start, size, out_crs, to_features, count)
    except (sa.exc.DataError, sa.exc.ProgrammingError) as exc:
        if query.tree is None:
            raise
        # a value the database cannot take as the property's type (the filter, not the service)
        raise InvalidParameterError("filter cannot be evaluated: a value does not fit its property") from exc


def _source(services: Services, table: str, geom: sa.ColumnElement[Any], properties: dict[str, Prop]
            ) -> Source:
    dialect, srid = services.engine.dialect.name, services.settings.work_crs_epsg
    return Source(geom=geom, properties=properties, srid=srid, dialect=dialect,
                  index=_index(dialect, table, geom, srid))


def _index(dialect: str, table: str, geom: sa.ColumnElement[Any], srid: int) -> Callable[[Bbox], Any]:
    """Rows whose box meets ``bbox`` through the spatial index, with bind parameters of their own (a
    filter may hold several boxes)."""
    def candidates(bbox: Bbox) -> sa.ColumnElement[Any]:
        minx, miny, maxx, maxy = (sa.literal(float(v)) for v in bbox)
        if dialect == "postgresql":
            return geom.op("&&")(sa.func.ST_MakeEnvelope(minx, miny, maxx, maxy, srid))
        # SpatiaLite does not consult its R*Tree by itself: ask it for candidate rowids
        rtree = sa.table(f"idx_{table}_geom",
                         *(sa.column(c) for c in ("pkid", "xmin", "xmax", "ymin", "ymax")))
        return sa.literal_column(f"{table}.rowid").in_(
            sa.select(rtree.c.pkid).where(rtree.c.xmin <= maxx, rtree.c.xmax >= minx,
                                          rtree.c.ymin <= maxy, rtree.c.ymax >= miny))
    return candidates


def _conditions(services: Services, source: Source, query: ItemsQuery, id_expr: sa.ColumnElement[Any]
                ) -> Conditions:
    where: Conditions = []
    if query.tree is not None:
        filter_crs = query.filter_crs or ogc_crs.resolve(None, services.settings.work_crs,
                                                         parameter="filter-crs")
        where.append(to_sql(query.tree, source, filter_crs, services.settings.work_crs))
    if query.feature_id is not None:
        where.append(id_expr == query.feature_id)
    return where


def _blueprint_page(services: Services, collection: Collection, query: ItemsQuery, start: int, size: int,
                    out_crs: ogc_crs.OfferedCrs, count: bool) -> tuple[list[Feature], int]:
    """Pieces or conflicts of a version as plain rows (a 10-row page through pandas and a GeoDataFrame
    cost more than the query): the same ids, properties and types as ``blueprint.store``'s frames."""
    pieces = collection.table == "pieces"
    table, columns = (PIECES, PIECE_COLUMNS) if pieces else (CONFLICTS, CONFLICT_COLUMNS)
    id_expr = table.c[collection.id_column]
    properties = {c: Prop(table.c[c], "number" if c in FLOAT_COLUMNS else "text", c) for c in columns}
    properties["id"] = Prop(id_expr, "text", "id")
    source = _source(services, str(table.name), table.c.geom, properties)
    where = [table.c.version == str(collection.param), *_conditions(services, source, query, id_expr)]
    with read_snapshot(services.engine) as conn:
        if query.bbox is not None:
            where.append(bbox_filter(conn, str(table.name), query.bbox))  # type: ignore[arg-type]
        matched = -1
        if count:
            counted = sa.select(sa.func.count()).select_from(table).where(*where)
            matched = int(conn.execute(counted).scalar_one())
        rows = conn.execute(sa.select(*(table.c[c] for c in columns), geom_as_wkb(table.c.geom))
                            .where(*where).order_by(id_expr)
                            .limit(size).offset(start)).all() if not count or start < matched else []
    # the stored CRS is the working CRS (blueprint.store refuses any other SRID)
    geoms = gpd.GeoSeries(from_wkb([r[-1] for r in rows]), crs=services.settings.work_crs)
    geometries = ogc_crs.reproject(geoms, out_crs)
    features = []
    for row, geometry in zip(rows, geometries, strict=True):
        # ellipsoidal_area_m2 is NULL in versions stored before migration 0010: null, not "None"
        properties = {c: (None if v is None else float(v)) if c in FLOAT_COLUMNS else str(v)
                      for c, v in zip(columns, row[:-1], strict=True)}
        features.append({"type": "Feature", "id": properties[collection.id_column], "geometry": geometry,
                         "properties": {k: _plain(v) for k, v in properties.items()}})
    return features, matched


def _layer_page(services: Services, collection: Collection, query: ItemsQuery, start: int, size: int,
                out_crs: ogc_crs.OfferedCrs, to_features: ToFeatures, count: bool
                ) -> tuple[list[Feature], int]:
    name = collection.id.removeprefix("layer-")
    layers = services.stores.layers
    id_expr = FEATURES.c.feature_id
    properties = {"feature_id": Prop(id_expr, "text", "feature_id"), "id": Prop(id_expr, "text", "id")}
    for column in layers.columns(name) if query.tree is not None else ():
        properties[column["name"]] = _attribute(column["name"], str(column["dtype"]))
    source = _source(services, "layer_features", FEATURES.c.geom, properties)
    where = _conditions(services, source, query, id_expr)
    matched = layers.count(name, bbox=query.bbox, where=where) if count else -1
    frame = layers.features(name, bbox=query.bbox, limit=size, offset=start, where=where)
    frame = frame.assign(**{ID_COLUMN: frame[collection.id_column].astype(str)})
    return to_features(frame, out_crs), matched


def _attribute(name: str, dtype: str) -> Prop:
    """A layer attribute (in the features' JSON) as SQL: numbers as numbers, text as text."""
    value = FEATURES.c.attributes[name]
    kind: str
    try:
        kind = np.dtype(dtype).kind
    except TypeError:  # pandas extension dtypes ("string", "Int64"...)
        kind = "O" if dtype == "string" else "?"
    if kind in "iuf":
        return Prop(value.as_float(), "number", name)
    if kind in "OUS":  # object, or pandas 3's "str"
        return Prop(value.as_string(), "text", name)
    return Prop(value, DEFERRED, name)  # dates, booleans: named in a filter, the frame path answers


def _parcels_page(services: Services, collection: Collection, query: ItemsQuery, start: int, size: int,
                  out_crs: ogc_crs.OfferedCrs, to_features: ToFeatures, count: bool
                  ) -> tuple[list[Feature], int]:
    """Parcels of every project, ``feature_key`` = ``code:parcel_id`` as in the frame path."""
    key = projects.c.code + ":" + project_parcels.c.parcel_id
    properties = {
        "project_code": Prop(projects.c.code, "text", "project_code"),
        "parcel_id": Prop(project_parcels.c.parcel_id, "text", "parcel_id"),
        "name": Prop(project_parcels.c.name, "text", "name"),
        "area_m2": Prop(project_parcels.c.area_m2, "number", "area_m2"),
        "feature_key": Prop(key, "text", "feature_key"),
        "id": Prop(key, "text", "id"),
    }
    geom: sa.ColumnElement[Any] = sa.literal_column("project_parcels.geom")
    source = _source(services, "project_parcels", geom, properties)
    where = _conditions(services, source, query, key)
    if query.bbox is not None:
        where.append(source.index(query.bbox))  # type: ignore[misc]
        where.append(_intersects_box(source, geom, query.bbox))
    pool = services.projects
    matched = pool.count_parcels(where) if count else -1
    frame = pool.parcels(where=where, limit=size, offset=start)
    frame = frame.assign(feature_key=frame["project_code"].astype(str) + ":" + frame["parcel_id"].astype(str))
    frame = frame.assign(**{ID_COLUMN: frame[collection.id_column].astype(str)})
    return to_features(frame, out_crs), matched


def _intersects_box(source: Source, geom: sa.ColumnElement[Any], bbox: Bbox) -> sa.ColumnElement[Any]:
    minx, miny, maxx, maxy = (sa.literal(float(v)) for v in bbox)
    if source.dialect == "postgresql":
        return sa.func.ST_Intersects(geom, sa.func.ST_MakeEnvelope(minx, miny, maxx, maxy, source.srid))
    return sa.func.ST_Intersects(geom, sa.func.BuildMbr(minx, miny, maxx, maxy, source.srid)) == 1
