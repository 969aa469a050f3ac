"""api.ogc: OGC API – Features Parts 1–3 (GeoJSON, CRS, CQL2 filters) over blueprints, layers and parcels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.auth import Reader
from api.errors import FeatureNotFoundError, InvalidParameterError
from api.ogc import crs as ogc_crs
from api.ogc.collections import (
    ID_COLUMN,
    Collection,
    collections,
    extent,
    find,
    frame_of,
    geometry_schema,
    properties,
)
from api.ogc.filter import apply_filter, parse_filter
from api.ogc.openapi import (
    CONFORMANCE,
    DEFAULT_LIMIT,
    GEOJSON,
    ITEMS_PARAMETERS,
    MAX_LIMIT,
    MAX_OFFSET,
    OPENAPI_MEDIA,
    SCHEMA_JSON,
    document,
)
from api.ogc.paging import ItemsQuery, pageable, sql_page
from api.ogc.sql_filter import Untranslatable
from api.routes.common import ServicesDep
from runtime.geojson import _plain
from runtime.services import Services

router = APIRouter(prefix="/ogc", tags=["要素服务 OGC API – Features"])

JSON = "application/json"
F = Annotated[str | None, Query(description="output format; only json/geojson is offered", max_length=16)]
Text = Annotated[str | None, Query(max_length=20_000)]


def _links(request: Request, *pairs: tuple[str, str, str, str]) -> list[dict[str, str]]:
    base = str(request.base_url).rstrip("/")
    return [
        {"href": base + path, "rel": rel, "type": media, "title": title} for rel, path, media, title in pairs
    ]


def _path(collection: Collection) -> str:
    return f"/ogc/collections/{quote(collection.id, safe='')}"


def _describe(request: Request, services: Services, collection: Collection) -> dict[str, Any]:
    path = _path(collection)
    bbox = extent(services, collection)
    work = services.settings.work_crs
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "extent": {
            "spatial": {"bbox": [bbox] if bbox else [[-180.0, -90.0, 180.0, 90.0]], "crs": ogc_crs.CRS84}
        },
        "crs": [c.uri for c in ogc_crs.offered(work)],
        "storageCrs": ogc_crs.storage_uri(work),
        "links": _links(
            request,
            ("self", path, JSON, "this collection"),
            ("items", path + "/items", GEOJSON, "features as GeoJSON"),
            ("http://www.opengis.net/def/rel/ogc/1.0/queryables", path + "/queryables", SCHEMA_JSON,
             "queryable properties (CQL2 filter)"),
            # the short rel of the drafts, which GDAL's OAPIF driver looks for
            ("queryables", path + "/queryables", SCHEMA_JSON, "queryable properties (CQL2 filter)"),
            ("describedby", path + "/schema", SCHEMA_JSON, "schema of the features"),
        ),
    }


@router.get("", summary="服务入口 Landing page")
def landing(request: Request, who: Reader, f: F = None) -> dict[str, Any]:
    return {
        "title": "一张蓝图 One Blueprint — OGC API Features",
        "description": "blueprint versions, conflicts (差异图斑), plan layers and project parcels",
        "links": _links(
            request,
            ("self", "/ogc", JSON, "landing page"),
            ("service-desc", "/ogc/api", OPENAPI_MEDIA, "the API definition (OpenAPI 3.0)"),
            ("service-doc", "/docs", "text/html", "the API documentation"),
            ("conformance", "/ogc/conformance", JSON, "conformance classes"),
            ("data", "/ogc/collections", JSON, "collections"),
        ),
    }


@router.get("/api", summary="OpenAPI 3.0 定义 The API definition", response_class=JSONResponse)
def api_definition(request: Request, who: Reader, f: F = None) -> JSONResponse:
    server = str(request.base_url).rstrip("/") + "/ogc"
    return JSONResponse(document(server), media_type=OPENAPI_MEDIA)


@router.get("/conformance", summary="符合性 Conformance classes")
def conformance(who: Reader, f: F = None) -> dict[str, list[str]]:
    return {"conformsTo": CONFORMANCE}


@router.get("/collections", summary="要素集合 Feature collections")
def list_collections(request: Request, services: ServicesDep, who: Reader, f: F = None) -> dict[str, Any]:
    return {
        "collections": [_describe(request, services, c) for c in collections(services)],
        "crs": [c.uri for c in ogc_crs.offered(services.settings.work_crs)],
        "links": _links(request, ("self", "/ogc/collections", JSON, "collections")),
    }


@router.get("/collections/{collection_id}", summary="要素集合详情 One feature collection")
def get_collection(
    collection_id: str, request: Request, services: ServicesDep, who: Reader, f: F = None
) -> dict[str, Any]:
    return _describe(request, services, find(services, collection_id))


def _json_schema(request: Request, collection: Collection, title: str, body: dict[str, Any]) -> JSONResponse:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": str(request.url.replace(query="")),
        "type": "object",
        "title": f"{collection.title} — {title}",
        **body,
    }
    return JSONResponse(schema, media_type=_schema_media(request))


def _schema_media(request: Request) -> str:
    """application/schema+json, or plain JSON for a client that asks only for JSON (GDAL's driver)."""
    accept = request.headers.get("accept", "")
    if "application/json" in accept and SCHEMA_JSON not in accept and "*/*" not in accept:
        return JSON
    return SCHEMA_JSON


@router.get("/collections/{collection_id}/queryables", summary="可查询属性 Queryables (CQL2)")
def queryables(
    collection_id: str, request: Request, services: ServicesDep, who: Reader, f: F = None
) -> JSONResponse:
    collection = find(services, collection_id)
    frame = frame_of(services, collection)
    props = {"id": {"title": "feature id", "type": "string"}, **properties(frame)}
    props["geometry"] = geometry_schema(frame)
    # "queryables": the list of the Part 3 drafts, which GDAL's OAPIF driver reads to send -where as CQL
    legacy = [{"id": name, "type": p.get("type", "geometry")} for name, p in props.items()]
    body = {"properties": props, "additionalProperties": False, "queryables": legacy}
    return _json_schema(request, collection, "queryables", body)


@router.get("/collections/{collection_id}/schema", summary="要素模式 Schema of the features")
def schema(
    collection_id: str, request: Request, services: ServicesDep, who: Reader, f: F = None
) -> JSONResponse:
    collection = find(services, collection_id)
    frame = frame_of(services, collection)
    body = {
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": geometry_schema(frame),
            "properties": {"type": "object", "properties": properties(frame)},
        },
    }
    return _json_schema(request, collection, "feature schema", body)


def _int(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidParameterError(f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise InvalidParameterError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return value


def _refuse_unknown(request: Request) -> None:
    """OGC API – Features /req/core/query-param-unknown: 400 for a parameter the API does not define."""
    unknown = sorted(set(request.query_params) - set(ITEMS_PARAMETERS))
    if request.query_params.get("f") not in (None, "json", "geojson"):
        raise InvalidParameterError("f: only json (GeoJSON) is offered")
    if unknown:
        raise InvalidParameterError(
            f"unknown query parameter(s) {', '.join(unknown)}; this API takes "
            f"{', '.join(p for p in ITEMS_PARAMETERS if p != 'collectionId')}"
        )


@router.get(
    "/collections/{collection_id}/items",
    summary="要素 Features (GeoJSON, paged, CRS, CQL2 filter)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON FeatureCollection page"}},
)
def items(
    collection_id: str,
    request: Request,
    services: ServicesDep,
    who: Reader,
    bbox: Annotated[str | None, Query(max_length=200, description="minx,miny,maxx,maxy in bbox-crs")] = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs", max_length=200)] = None,
    crs: Annotated[str | None, Query(max_length=200, description="CRS of the output coordinates")] = None,
    filter: Text = None,
    filter_lang: Annotated[str | None, Query(alias="filter-lang", max_length=32)] = None,
    filter_crs: Annotated[str | None, Query(alias="filter-crs", max_length=200)] = None,
    limit: Annotated[str | None, Query(description=f"1..{MAX_LIMIT}, default {DEFAULT_LIMIT}")] = None,
    offset: Annotated[str | None, Query(description="features to skip")] = None,
    datetime_: Annotated[str | None, Query(alias="datetime", max_length=100)] = None,
    f: F = None,
) -> JSONResponse:
    _refuse_unknown(request)
    page_size = _int("limit", limit, DEFAULT_LIMIT, 1, MAX_LIMIT)
    start = _int("offset", offset, 0, 0, MAX_OFFSET)
    work = services.settings.work_crs
    out_crs = ogc_crs.resolve(crs, work, parameter="crs")
    tree = parse_filter(filter, filter_lang) if filter else None
    collection = find(services, collection_id)
    area = None
    if bbox:
        area = ogc_crs.parse_bbox(bbox, ogc_crs.resolve(bbox_crs, work, parameter="bbox-crs"), work)
    elif bbox_crs:
        ogc_crs.resolve(bbox_crs, work, parameter="bbox-crs")
    filter_at = ogc_crs.resolve(filter_crs, work, parameter="filter-crs")
    try:  # only the page's rows are read (SQL LIMIT/OFFSET, the filter translated to SQL)
        if not pageable(collection):
            raise Untranslatable(collection.id)
        bounds = tuple(float(v) for v in area.bounds) if area is not None else None
        query = ItemsQuery(bbox=bounds, tree=tree, filter_crs=filter_at)  # type: ignore[arg-type]
        features, matched = sql_page(services, collection, query, start, page_size, out_crs, _features)
    except Untranslatable:  # a filter on a layer's dates: evaluated over the collection's frame
        frame = frame_of(services, collection)
        if area is not None:
            frame = frame.iloc[np.sort(frame.sindex.query(area, predicate="intersects"))]
        if tree is not None:
            frame = apply_filter(frame, tree, filter_at, work)
        features, matched = _features(frame.iloc[start : start + page_size], out_crs), len(frame)
    body = {
        "type": "FeatureCollection",
        "features": features,
        "numberMatched": matched,
        "numberReturned": len(features),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "links": _page_links(request, collection, start, page_size, matched),
    }
    return JSONResponse(body, media_type=GEOJSON, headers={"Content-Crs": out_crs.header})


def _page_links(
    request: Request, collection: Collection, start: int, page_size: int, matched: int
) -> list[dict[str, str]]:
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    path = _path(collection) + "/items"

    def href(new_offset: int) -> str:
        return path + "?" + urlencode({**params, "limit": page_size, "offset": new_offset})

    pairs = [
        ("self", href(start), GEOJSON, "this page"),
        ("collection", _path(collection), JSON, "collection"),
    ]
    if start + page_size < matched:
        pairs.append(("next", href(start + page_size), GEOJSON, "next page"))
    if start > 0:
        pairs.append(("prev", href(max(0, start - page_size)), GEOJSON, "previous page"))
    return _links(request, *pairs)


def _features(page: Any, out_crs: ogc_crs.OfferedCrs) -> list[dict[str, Any]]:
    """GeoJSON features of a page (working CRS) with coordinates in ``out_crs``."""
    columns = [c for c in page.columns if c not in (page.geometry.name, ID_COLUMN)]
    geometries = ogc_crs.reproject(page, out_crs)
    records = page[columns].to_dict(orient="records")
    ids = page[ID_COLUMN].tolist()
    return [
        {"type": "Feature", "id": fid, "geometry": geom, "properties": {k: _plain(v) for k, v in rec.items()}}
        for fid, rec, geom in zip(ids, records, geometries, strict=True)
    ]


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="单个要素 One feature (GeoJSON)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}, "description": "a Feature"}},
)
def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    services: ServicesDep,
    who: Reader,
    crs: Annotated[str | None, Query(max_length=200)] = None,
    f: F = None,
) -> JSONResponse:
    out_crs = ogc_crs.resolve(crs, services.settings.work_crs, parameter="crs")
    collection = find(services, collection_id)
    if pageable(collection):  # the one row, read by its id
        found, _ = sql_page(services, collection, ItemsQuery(feature_id=feature_id), 0, 1, out_crs, _features,
                            count=False)
    else:
        frame = frame_of(services, collection)
        found = _features(frame[frame[ID_COLUMN] == feature_id].iloc[:1], out_crs)
    if not found:
        raise FeatureNotFoundError(f"no feature {feature_id!r} in {collection_id}")
    feature = found[0]
    path = _path(collection)
    feature["links"] = _links(
        request,
        ("self", f"{path}/items/{quote(feature_id, safe='')}", GEOJSON, "this feature"),
        ("collection", path, JSON, "collection"),
    )
    return JSONResponse(feature, media_type=GEOJSON, headers={"Content-Crs": out_crs.header})
