"""api.ogc.openapi: the OpenAPI 3.0 document of /ogc, with the path names GDAL and QGIS look up."""

from __future__ import annotations

from typing import Any

OPENAPI_MEDIA = "application/vnd.oai.openapi+json;version=3.0"
GEOJSON = "application/geo+json"
SCHEMA_JSON = "application/schema+json"
DEFAULT_LIMIT, MAX_LIMIT = 1_000, 10_000
MAX_OFFSET = 100_000_000

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            "style": "form", "explode": False, **extra}


PARAMETERS: dict[str, dict[str, Any]] = {
    "collectionId": {"name": "collectionId", "in": "path", "required": True, "schema": {"type": "string"},
                     "description": "blueprint-{version}-pieces, blueprint-{version}-conflicts, "
                                    "layer-{name} or project-parcels"},
    "featureId": {"name": "featureId", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": "the feature id"},
    "limit": _query("limit", f"features per page (default {DEFAULT_LIMIT:,}, at most {MAX_LIMIT:,})",
                    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
    "offset": _query("offset", "features to skip (the next links carry it)",
                     {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}),
    "bbox": _query("bbox", "minx,miny,maxx,maxy in bbox-crs (default CRS84: lon,lat)",
                   {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}),
    "bbox-crs": _query("bbox-crs", "CRS of bbox (one of the collection's crs)",
                       {"type": "string", "format": "uri"}),
    "crs": _query("crs", "CRS of the returned coordinates (one of the collection's crs), in its axis order",
                  {"type": "string", "format": "uri"}),
    "filter": _query("filter", "a CQL2 text filter over the queryables, e.g. "
                               "kind = 'ecological_redline' AND S_INTERSECTS(geometry, POLYGON((...)))",
                     {"type": "string"}),
    "filter-lang": _query("filter-lang", "the filter language", {
        "type": "string", "enum": ["cql2-text", "cql-text"], "default": "cql2-text"}),
    "filter-crs": _query("filter-crs", "CRS of geometry literals in filter (default CRS84)",
                         {"type": "string", "format": "uri"}),
    "datetime": _query("datetime", "accepted and ignored: the collections have no time dimension",
                       {"type": "string"}),
    "f": _query("f", "output format", {"type": "string", "enum": ["json", "geojson"]}),
}
ITEMS_PARAMETERS = ("collectionId", "limit", "offset", "bbox", "bbox-crs", "crs", "filter", "filter-lang",
                    "filter-crs", "datetime", "f")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _get(summary: str, media: str, parameters: tuple[str, ...] = ("f",), **extra: Any) -> dict[str, Any]:
    return {"get": {
        "summary": summary,
        "operationId": summary.lower().replace(" ", "_").replace("'", ""),
        "parameters": [_ref(p) for p in parameters],
        "responses": {
            "200": {"description": summary, "content": {media: {"schema": {"type": "object"}}}},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
        **extra,
    }}


def document(server_url: str) -> dict[str, Any]:
    """OpenAPI 3.0.3 of the OGC API, paths relative to ``server_url`` (…/ogc)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "一张蓝图 One Blueprint — OGC API – Features", "version": "1.0.0",
                 "description": "blueprint pieces, conflicts (差异图斑), plan layers and project parcels. "
                                "Authenticate with HTTP Basic (any user name, the API key as password), "
                                "X-API-Key or Authorization: Bearer."},
        "servers": [{"url": server_url}],
        "security": [{"basic": []}, {"apiKey": []}, {"bearer": []}],
        "paths": {
            "/": _get("Landing page", "application/json"),
            "/conformance": _get("Conformance classes", "application/json"),
            "/api": _get("This API definition", OPENAPI_MEDIA),
            "/collections": _get("Feature collections", "application/json"),
            "/collections/{collectionId}": _get("One feature collection", "application/json",
                                                ("collectionId", "f")),
            "/collections/{collectionId}/items": _get("Features", GEOJSON, ITEMS_PARAMETERS),
            "/collections/{collectionId}/items/{featureId}": _get("One feature", GEOJSON,
                                                                  ("collectionId", "featureId", "crs", "f")),
            "/collections/{collectionId}/queryables": _get("Queryables", SCHEMA_JSON, ("collectionId", "f")),
            "/collections/{collectionId}/schema": _get("Feature schema", SCHEMA_JSON, ("collectionId", "f")),
        },
        "components": {
            "parameters": PARAMETERS,
            "responses": {"Error": {
                "description": "an error: a stable code and a readable detail (OGC's description too)",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["code", "detail"],
                    "properties": {"code": {"type": "string"}, "detail": {"type": "string"},
                                   "description": {"type": "string"}}}}},
            }},
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic",
                          "description": "any user name, the API key as password (QGIS, GDAL USERPWD)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
