"""api.ogc.paging: an OGC items page read from the database — only the page's rows, counted in SQL."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd

from api.ogc.collections import ID_COLUMN, Collection
from api.services import Services
from layers.store import Bbox


@dataclass(frozen=True)
class Page:
    """The features of one page (working CRS, with ``_id``) and how many features the query matches."""

    frame: gpd.GeoDataFrame
    matched: int


def pageable(collection: Collection) -> bool:
    """Blueprint pieces and conflicts and stored layers page in SQL (LIMIT/OFFSET in the order of the
    whole-frame path, bbox through the spatial index: SpatiaLite's R*Tree, PostGIS's GiST); project
    parcels (a small table joined with projects) and CQL2 filters still go through the frame."""
    return collection.id.startswith(("blueprint-", "layer-"))


def sql_page(services: Services, collection: Collection, bbox: Bbox | None, start: int, size: int) -> Page:
    """One page of a pageable collection and its numberMatched, from two bounded queries."""
    if collection.id.startswith("blueprint-"):
        version, what = str(collection.param), collection.table
        store = services.stores.blueprints
        read = store.pieces if what == "pieces" else store.conflicts
        matched = store.count(version, what, bbox=bbox)
        frame = read(version, bbox=bbox, limit=size, offset=start)
    else:
        name = collection.id.removeprefix("layer-")
        layers = services.stores.layers
        matched = layers.count(name, bbox=bbox)
        frame = layers.features(name, bbox=bbox, limit=size, offset=start)
    return Page(frame.assign(**{ID_COLUMN: frame[collection.id_column].astype(str)}), matched)
