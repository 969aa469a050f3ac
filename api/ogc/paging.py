"""api.ogc.paging: an OGC items page read from the database — only the page's rows, counted in SQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import sqlalchemy as sa

from api.ogc import crs as ogc_crs
from api.ogc.collections import ID_COLUMN, Collection
from blueprint.store import CONFLICT_COLUMNS, CONFLICTS, FLOAT_COLUMNS, PIECE_COLUMNS, PIECES
from layers.store import Bbox, bbox_filter, from_wkb, geom_as_wkb, read_snapshot
from runtime.geojson import _plain
from runtime.services import Services

Feature = dict[str, Any]
ToFeatures = Callable[[gpd.GeoDataFrame, ogc_crs.OfferedCrs], list[Feature]]


def pageable(collection: Collection) -> bool:
    """Blueprint pieces and conflicts and stored layers page in SQL (LIMIT/OFFSET in the order of the
    whole-frame path, bbox through the spatial index: SpatiaLite's R*Tree, PostGIS's GiST); project
    parcels (a small table joined with projects) and CQL2 filters still go through the frame."""
    return collection.id.startswith(("blueprint-", "layer-"))


def sql_page(services: Services, collection: Collection, bbox: Bbox | None, start: int, size: int,
             out_crs: ogc_crs.OfferedCrs, to_features: ToFeatures) -> tuple[list[Feature], int]:
    """The GeoJSON features of one page of a pageable collection and its numberMatched."""
    if collection.id.startswith("blueprint-"):
        return _blueprint_page(services, collection, bbox, start, size, out_crs)
    name = collection.id.removeprefix("layer-")
    layers = services.stores.layers
    matched = layers.count(name, bbox=bbox)
    frame = layers.features(name, bbox=bbox, limit=size, offset=start)
    frame = frame.assign(**{ID_COLUMN: frame[collection.id_column].astype(str)})
    return to_features(frame, out_crs), matched


def _blueprint_page(services: Services, collection: Collection, bbox: Bbox | None, start: int, size: int,
                    out_crs: ogc_crs.OfferedCrs) -> tuple[list[Feature], int]:
    """Pieces or conflicts of a version as plain rows (a 10-row page through pandas and a GeoDataFrame
    cost more than the query): the same ids, properties and types as ``blueprint.store``'s frames."""
    pieces = collection.table == "pieces"
    table, columns = (PIECES, PIECE_COLUMNS) if pieces else (CONFLICTS, CONFLICT_COLUMNS)
    version = str(collection.param)
    with read_snapshot(services.engine) as conn:
        where = [table.c.version == version]
        if bbox is not None:
            where.append(bbox_filter(conn, str(table.name), bbox))  # type: ignore[arg-type]
        matched = int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())
        rows = conn.execute(sa.select(*(table.c[c] for c in columns), geom_as_wkb(table.c.geom))
                            .where(*where).order_by(table.c[collection.id_column])
                            .limit(size).offset(start)).all() if start < matched else []
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
