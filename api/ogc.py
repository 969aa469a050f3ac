"""api.ogc: OGC API – Features (GeoJSON) over blueprint versions, conflicts, layers and project parcels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import geopandas as gpd
import numpy as np
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pyproj import CRS
from shapely.geometry import box

from api.auth import Reader
from api.errors import CollectionNotFoundError, FeatureNotFoundError, InvalidRequestError
from api.routes.common import ServicesDep
from api.services import Services, feature_collection
from layers.crs import OUTPUT_CRS, to_output, transformer

router = APIRouter(prefix="/ogc", tags=["要素服务 OGC API – Features"])

GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000
F = Annotated[str | None, Query(description="output format; only json/geojson is offered", max_length=16)]


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
        version, status = str(summary["version"]), str(summary["status"])
        published = status == "published"
        label = "已发布 published" if published else "草稿 draft"
        out.append(
            Collection(
                f"blueprint-{version}-pieces",
                f"一张蓝图 {version} 图斑 pieces ({label})",
                "the blueprint's planar partition with the controlling kind per piece",
                "piece_id",
                "pieces",
                "version = :p",
                version,
            )
        )
        out.append(
            Collection(
                f"blueprint-{version}-conflicts",
                f"差异图斑 conflicts {version} ({label})",
                "inter-plan disagreements and how the precedence resolved them",
                "conflict_id",
                "conflicts",
                "version = :p",
                version,
            )
        )
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
    return frame.assign(_id=frame[collection.id_column].astype(str))


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


def _links(request: Request, *pairs: tuple[str, str, str, str]) -> list[dict[str, str]]:
    base = str(request.base_url).rstrip("/")
    return [
        {"href": base + path, "rel": rel, "type": media, "title": title} for rel, path, media, title in pairs
    ]


def _describe(request: Request, services: Services, collection: Collection) -> dict[str, Any]:
    path = f"/ogc/collections/{quote(collection.id, safe='')}"
    bbox = extent(services, collection)
    epsg = services.settings.work_crs.to_epsg()
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        "itemType": "feature",
        "extent": {"spatial": {"bbox": [bbox] if bbox else [[-180.0, -90.0, 180.0, 90.0]], "crs": CRS84}},
        "crs": [CRS84],
        "storageCrs": f"http://www.opengis.net/def/crs/EPSG/0/{epsg}",
        "links": _links(
            request,
            ("self", path, "application/json", "this collection"),
            ("items", path + "/items", GEOJSON, "features as GeoJSON"),
        ),
    }


@router.get("", summary="服务入口 Landing page")
def landing(request: Request, who: Reader, f: F = None) -> dict[str, Any]:
    return {
        "title": "一张蓝图 One Blueprint — OGC API Features",
        "description": "blueprint versions, conflicts (差异图斑), plan layers and project parcels",
        "links": _links(
            request,
            ("self", "/ogc", "application/json", "landing page"),
            (
                "service-desc",
                "/openapi.json",
                "application/vnd.oai.openapi+json;version=3.0",
                "the API definition",
            ),
            ("service-doc", "/docs", "text/html", "the API documentation"),
            ("conformance", "/ogc/conformance", "application/json", "conformance classes"),
            ("data", "/ogc/collections", "application/json", "collections"),
        ),
    }


@router.get("/conformance", summary="符合性 Conformance classes")
def conformance(who: Reader, f: F = None) -> dict[str, list[str]]:
    return {"conformsTo": CONFORMANCE}


@router.get("/collections", summary="要素集合 Feature collections")
def list_collections(request: Request, services: ServicesDep, who: Reader, f: F = None) -> dict[str, Any]:
    return {
        "collections": [_describe(request, services, c) for c in collections(services)],
        "links": _links(request, ("self", "/ogc/collections", "application/json", "collections")),
    }


@router.get("/collections/{collection_id}", summary="要素集合详情 One feature collection")
def get_collection(
    collection_id: str, request: Request, services: ServicesDep, who: Reader, f: F = None
) -> dict[str, Any]:
    return _describe(request, services, find(services, collection_id))


def parse_bbox(text: str, work_crs: CRS) -> Any:
    """``minx,miny,maxx,maxy`` in CRS84 as a polygon in the working CRS."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidRequestError("bbox must be four numbers: minLon,minLat,maxLon,maxLat") from None
    if len(values) == 6:  # minx,miny,minz,maxx,maxy,maxz
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InvalidRequestError("bbox must be four numbers: minLon,minLat,maxLon,maxLat")
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= north <= 90):
        raise InvalidRequestError("bbox is outside lon/lat range (CRS84)")
    if west > east:  # crossing the antimeridian: nowhere near any Chinese city
        west, east = -180.0, 180.0
    to_work = transformer(OUTPUT_CRS, work_crs)
    try:
        minx, miny, maxx, maxy = to_work.transform_bounds(west, south, east, north, densify_pts=21)
    except Exception:
        raise InvalidRequestError("bbox cannot be expressed in the working CRS") from None
    if not all(np.isfinite([minx, miny, maxx, maxy])):
        raise InvalidRequestError("bbox cannot be expressed in the working CRS")
    return box(minx, miny, maxx, maxy)


@router.get(
    "/collections/{collection_id}/items",
    summary="要素 Features (GeoJSON, paged)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}, "description": "a GeoJSON FeatureCollection page"}},
)
def items(
    collection_id: str,
    request: Request,
    services: ServicesDep,
    who: Reader,
    bbox: Annotated[
        str | None, Query(max_length=200, description="minLon,minLat,maxLon,maxLat (CRS84)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    f: F = None,
) -> JSONResponse:
    collection = find(services, collection_id)
    frame = frame_of(services, collection)
    if bbox:
        area = parse_bbox(bbox, services.settings.work_crs)
        hits = np.sort(frame.sindex.query(area, predicate="intersects"))
        frame = frame.iloc[hits]
    matched = len(frame)
    page = frame.iloc[offset : offset + limit]
    out = to_output(page.drop(columns=[c for c in ("_id",) if c in page.columns]))
    properties = [c for c in out.columns if c != out.geometry.name]
    body = feature_collection(out.assign(_id=page["_id"].to_numpy()), id_column="_id", properties=properties)
    for feature in body["features"]:
        feature["properties"].pop("_id", None)
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    path = f"/ogc/collections/{quote(collection.id, safe='')}/items"

    def href(new_offset: int) -> str:
        return path + "?" + urlencode({**params, "limit": limit, "offset": new_offset})

    pairs = [
        ("self", href(offset), GEOJSON, "this page"),
        ("collection", f"/ogc/collections/{quote(collection.id, safe='')}", "application/json", "collection"),
    ]
    if offset + len(page) < matched:
        pairs.append(("next", href(offset + limit), GEOJSON, "next page"))
    if offset > 0:
        pairs.append(("prev", href(max(0, offset - limit)), GEOJSON, "previous page"))
    body.update(
        numberMatched=matched,
        numberReturned=len(page),
        timeStamp=datetime.now(UTC).isoformat(timespec="seconds"),
        links=_links(request, *pairs),
    )
    return JSONResponse(body, media_type=GEOJSON)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="单个要素 One feature (GeoJSON)",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}, "description": "a Feature"}},
)
def item(
    collection_id: str, feature_id: str, request: Request, services: ServicesDep, who: Reader, f: F = None
) -> JSONResponse:
    collection = find(services, collection_id)
    frame = frame_of(services, collection)
    match = frame[frame["_id"] == feature_id]
    if match.empty:
        raise FeatureNotFoundError(f"no feature {feature_id!r} in {collection_id}")
    out = to_output(match.drop(columns=["_id"]).iloc[:1])
    feature = feature_collection(out.assign(_id=[feature_id]), id_column="_id")["features"][0]
    feature["properties"].pop("_id", None)
    path = f"/ogc/collections/{quote(collection.id, safe='')}"
    feature["links"] = _links(
        request,
        ("self", f"{path}/items/{quote(feature_id, safe='')}", GEOJSON, "this feature"),
        ("collection", path, "application/json", "collection"),
    )
    return JSONResponse(feature, media_type=GEOJSON)
