"""api.ogc.collections: which feature collections exist, their rows, extents, properties and geometry type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
import sqlalchemy as sa

from api.errors import CollectionNotFoundError
from layers.crs import OUTPUT_CRS, transformer
from runtime.services import Services

ID_COLUMN = "_id"  # the feature id of every collection, as text


@dataclass(frozen=True)
class Collection:
    """One feature collection: where its rows live and which column is the feature id."""

    id: str
    title: str
    description: str
    id_column: str
    table: str  # for the extent query
    where: str  # SQL condition on that table (bound parameter :p)
    param: str | int | None


def collections(services: Services) -> list[Collection]:
    out: list[Collection] = []
    for summary in services.stores.blueprints.versions():
        out.extend(_blueprint_collections(str(summary["version"]), str(summary["status"])))
    for layer in services.stores.layers.list():
        name = str(layer["name"])
        out.append(
            Collection(
                f"layer-{name}",
                f"图层 layer {name} ({layer['kind']})",
                f"stored plan layer, source {layer['source']}",
                "feature_id",
                "layer_features",
                "layer_id = :p",
                int(layer["id"]),
            )
        )
    out.append(
        Collection(
            "project-parcels",
            "项目地块 project parcels",
            "parcels of every project in the pool",
            "feature_key",
            "project_parcels",
            "1 = 1",
            None,
        )
    )
    return out


def _blueprint_collections(version: str, status: str) -> list[Collection]:
    label = "已发布 published" if status == "published" else "草稿 draft"
    return [
        Collection(
            f"blueprint-{version}-pieces",
            f"一张蓝图 {version} 图斑 pieces ({label})",
            "the blueprint's planar partition with the controlling kind per piece",
            "piece_id",
            "pieces",
            "version = :p",
            version,
        ),
        Collection(
            f"blueprint-{version}-conflicts",
            f"差异图斑 conflicts {version} ({label})",
            "inter-plan disagreements and how the precedence resolved them",
            "conflict_id",
            "conflicts",
            "version = :p",
            version,
        ),
    ]


def find(services: Services, collection_id: str) -> Collection:
    for collection in collections(services):
        if collection.id == collection_id:
            return collection
    raise CollectionNotFoundError(f"no collection {collection_id!r}")


def frame_of(services: Services, collection: Collection) -> gpd.GeoDataFrame:
    """The collection's features in the working CRS (with an ``_id`` column)."""
    if collection.id.startswith("blueprint-"):
        blueprint = services.published.blueprint(str(collection.param))
        frame = blueprint.pieces if collection.id.endswith("-pieces") else blueprint.conflicts
    elif collection.id.startswith("layer-"):
        frame = services.layer_cache.get(collection.id.removeprefix("layer-")).frame
    else:
        frame = services.projects.parcels()
        # astype(str): an empty pool gives float64 columns, which cannot be concatenated with ":"
        frame = frame.assign(
            feature_key=frame["project_code"].astype(str) + ":" + frame["parcel_id"].astype(str)
        )
    return frame.assign(**{ID_COLUMN: frame[collection.id_column].astype(str)})


def extent(services: Services, collection: Collection) -> list[float] | None:
    """Bounding box in CRS84 from the database (no geometry is loaded)."""
    if services.engine.dialect.name == "postgresql":
        fns = ("ST_XMin", "ST_YMin", "ST_XMax", "ST_YMax")
    else:
        fns = ("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")
    cols = f"min({fns[0]}(geom)), min({fns[1]}(geom)), max({fns[2]}(geom)), max({fns[3]}(geom))"
    query = sa.text(f"SELECT {cols} FROM {collection.table} WHERE {collection.where}")
    with services.engine.connect() as conn:
        row = conn.execute(query, {"p": collection.param} if collection.param is not None else {}).first()
    if row is None or row[0] is None:
        return None
    to_84 = transformer(services.settings.work_crs, OUTPUT_CRS)
    west, south, east, north = to_84.transform_bounds(
        float(row[0]), float(row[1]), float(row[2]), float(row[3])
    )
    return [round(west, 7), round(south, 7), round(east, 7), round(north, 7)]


def properties(frame: gpd.GeoDataFrame) -> dict[str, dict[str, Any]]:
    """JSON Schema of each feature property (every column but the geometry and the id)."""
    out: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        if column in (frame.geometry.name, ID_COLUMN):
            continue
        out[str(column)] = {"title": str(column), **_json_type(frame[column])}
    return out


def _json_type(series: pd.Series) -> dict[str, str]:
    if pd.api.types.is_bool_dtype(series):
        return {"type": "boolean"}
    if pd.api.types.is_integer_dtype(series):
        return {"type": "integer"}
    if pd.api.types.is_float_dtype(series):
        return {"type": "number"}
    if pd.api.types.is_datetime64_any_dtype(series):
        return {"type": "string", "format": "date-time"}
    return {"type": "string"}


# OGC API – Features Part 5 (schemas) names for the geometry of a collection
GEOMETRY_FORMATS = {
    frozenset({"Polygon"}): "geometry-polygon",
    frozenset({"MultiPolygon"}): "geometry-multipolygon",
    frozenset({"Polygon", "MultiPolygon"}): "geometry-polygon-or-multipolygon",
}
GEOJSON_SCHEMAS = {
    "Polygon": "https://geojson.org/schema/Polygon.json",
    "MultiPolygon": "https://geojson.org/schema/MultiPolygon.json",
}


def geometry_schema(frame: gpd.GeoDataFrame) -> dict[str, Any]:
    """The geometry property: its Part 5 format and the GeoJSON schemas of the types present."""
    types = frozenset(str(t) for t in frame.geometry.geom_type.dropna().unique()) or frozenset({"Polygon"})
    refs = [{"$ref": GEOJSON_SCHEMAS[t]} for t in sorted(types) if t in GEOJSON_SCHEMAS]
    schema: dict[str, Any] = {
        "title": "geometry",
        "x-ogc-role": "primary-geometry",
        "format": GEOMETRY_FORMATS.get(types, "geometry-any"),
    }
    if len(refs) == 1:
        schema.update(refs[0])
    elif refs:
        schema["oneOf"] = refs
    return schema
