"""viewer.coverage: the pieces as one coverage of "atoms" (pieces dissolved by the layers they are in), from
which every layer is drawn at low zooms with sub-pixel parts merged and shared edges kept shared."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import shapely

# up to this zoom a tile may draw the merged, coverage-simplified layers: the whole city sits in a few tiles
# there, and tens of thousands of farmland parts of a pixel or two made the largest tile (842 kB at 10⁶)
LOW_ZOOM_MAX = 12
# zooms up to this one are always merged; above it (to LOW_ZOOM_MAX) only where many parts are sub-pixel:
# elsewhere merging removes nothing, and simplifying the whole coverage there costs seconds per zoom
LOW_ZOOM_ALWAYS = 10
SMALL_SHARE = 0.2  # "many": this share of the atoms under MERGE_PX2 square pixels
# a hole smaller than this many square pixels is filled by the shape around it and the parts inside it are
# dropped: what is under a dot of 1.4 × 1.4 px is drawn in the colour of its surroundings, with no gap (4 px²
# took every farmland patch off the city view of the 10⁵ bench city; 2 px² keeps the larger ones as dots)
MERGE_PX2 = 2.0
# coverage simplification tolerance in pixels (GEOS: about the side of the largest triangle removed)
COVERAGE_SIMPLIFY_PX = 0.5


def atoms(geoms: np.ndarray, codes: np.ndarray, dissolve: Callable[[np.ndarray], np.ndarray],
          workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The pieces dissolved per signature (``codes``: a bit per layer the piece is in) → (parts, their codes).

    Each piece is in exactly one group, so the parts form a coverage again (pieces of a blueprint do), and a
    layer is the union of the parts whose code has its bit — whatever layers overlap (a farmland piece is in
    the farmland layer, its zone and the boundary)."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    uniq, inverse = np.unique(codes, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    groups = [geoms[order[bounds[i]:bounds[i + 1]]] for i in range(len(uniq))]
    if workers > 1 and len(groups) > 1:  # GEOS releases the GIL: groups dissolve side by side
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tile-atoms") as pool:
            parts = list(pool.map(dissolve, groups))
    else:
        parts = [dissolve(g) for g in groups]
    out_codes = np.repeat(uniq, [len(p) for p in parts]).astype(np.int64)
    return (np.concatenate(parts) if parts else np.empty(0, dtype=object)), out_codes


def merge_small(geoms: np.ndarray, codes: np.ndarray, min_area: float) -> tuple[np.ndarray, np.ndarray]:
    """Fill every hole smaller than ``min_area`` and drop the parts inside such holes.

    In a coverage a hole of one part is exactly filled by other parts, so after this the coverage still has
    no gap and no overlap: a farmland patch too small to see is drawn as the zone around it. Small parts
    that are not inside a small hole (they touch several neighbours) are kept."""
    if len(geoms) == 0:
        return geoms, codes
    rings, owner = shapely.get_rings(geoms, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = owner[1:] != owner[:-1]
    small = ~exterior & (shapely.area(shapely.polygons(rings)) < min_area)
    if not small.any():
        return geoms, codes
    changed = np.unique(owner[small])
    rest = np.isin(owner, changed) & ~small
    out = geoms.copy()
    # polygons() with indices: the first ring of each index is its shell, the others its holes
    out[changed] = shapely.polygons(rings[rest], indices=np.searchsorted(changed, owner[rest]))
    holes = shapely.STRtree(shapely.polygons(rings[small]))
    inside = np.unique(holes.query(shapely.point_on_surface(geoms), predicate="within")[0])
    keep = np.ones(len(geoms), dtype=bool)
    keep[inside] = False
    return out[keep], codes[keep]


def low_zoom_top(areas: np.ndarray, ground_pixel: Callable[[int], float]) -> int:
    """The closest zoom drawn from the merged coverage: the highest up to :data:`LOW_ZOOM_MAX` where at
    least :data:`SMALL_SHARE` of the atoms (areas in ground m²) are under :data:`MERGE_PX2` pixels."""
    for z in range(LOW_ZOOM_MAX, LOW_ZOOM_ALWAYS, -1):
        if len(areas) and float(np.mean(areas < MERGE_PX2 * ground_pixel(z) ** 2)) >= SMALL_SHARE:
            return z
    return LOW_ZOOM_ALWAYS


def low_zoom_layers(geoms: np.ndarray, codes: np.ndarray, names: Sequence[str], zooms: Sequence[int],
                    pixel_size: Callable[[int], float],
                    dissolve: Callable[[np.ndarray], np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    """For each zoom, every layer's parts from the atom coverage (EPSG:3857): small holes merged, the coverage
    simplified as one (neighbouring parts keep sharing their edges), then each layer dissolved from it.

    Zooms are done from the closest out, each from the one before (fewer and simpler parts each time)."""
    out: dict[int, dict[str, np.ndarray]] = {}
    for z in sorted(zooms, reverse=True):
        px = pixel_size(z)
        geoms, codes = merge_small(geoms, codes, MERGE_PX2 * px * px)
        if len(geoms):
            geoms = shapely.coverage_simplify(geoms, COVERAGE_SIMPLIFY_PX * px)
            geoms, codes = _nonempty_polygons(geoms, codes)
        layers = {}
        for bit, name in enumerate(names):
            members = geoms[(codes >> bit) & 1 == 1]
            layers[name] = dissolve(members) if len(members) else np.empty(0, dtype=object)
        out[z] = layers
    return out


def _nonempty_polygons(geoms: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single polygons again (simplification may split a part into a multipolygon), empty ones dropped."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = ~shapely.is_empty(parts) & (shapely.area(parts) > 0)
    return parts[keep], codes[owner[keep]]
