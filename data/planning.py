"""data.planning: the demo city's detailed plan (控规地块) and regional assessment areas (区域评估), seeded.

The detailed plan is a street grid of blocks over each urban development boundary blob, clear of the red
line and permanent farmland, with national land-use codes (用地用海分类) chosen by distance from the seat
(commerce and offices in the core, housing and schools around it, industry and storage at the edge) and
the limits a 控规 gives such land. A few blocks lie deliberately *outside* the urban boundary with urban
construction uses (the 差异图斑 the blueprint lists), two with uses allowed outside it. The blocks under
some demo projects are given the use their project needs, and those projects declare a plan
(``declared``): most within the limits, two beyond one (容积率, 建筑高度).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

WORK_EPSG = 4548
ROAD_M = 24.0  # the street between blocks
BLOCK_M = {0: (500.0, 400.0)}  # seat index → block size; other seats get DEFAULT_BLOCK_M
DEFAULT_BLOCK_M = (400.0, 300.0)
MIN_SHARE = 0.35  # a block clipped by the boundary below this share of a full block becomes street
SEAT_PREFIX = ("TG", "SA", "DT", "ZY")  # 铜官 中心城区, 顺安, 大通, 枞阳 (地块编号 prefixes)
PLAN_NAMES = (
    "铜陵市中心城区控制性详细规划",
    "义安区顺安镇区控制性详细规划",
    "郊区大通镇区控制性详细规划",
    "枞阳县城区控制性详细规划",
)

# land use by ring (distance from the seat / blob radius): (upper bound, ((code, weight), ...))
RINGS: tuple[tuple[float, tuple[tuple[str, float], ...]], ...] = (
    (0.3, (("0901", 0.30), ("0902", 0.12), ("0801", 0.10), ("0701", 0.30), ("0803", 0.06), ("1401", 0.12))),
    (
        0.65,
        (
            ("0701", 0.55),
            ("0804", 0.10),
            ("0806", 0.05),
            ("0901", 0.10),
            ("0805", 0.05),
            ("1401", 0.10),
            ("0702", 0.05),
        ),
    ),
    (9.9, (("1001", 0.45), ("1101", 0.15), ("0701", 0.22), ("1402", 0.08), ("1303", 0.05), ("1301", 0.05))),
)
# code family → (FAR max range, FAR min or None, density max %, green min %, height max m choices)
LIMITS: dict[
    str, tuple[tuple[float, float], float | None, tuple[float, ...], tuple[float, ...], tuple[float, ...]]
] = {
    "0701": ((1.8, 3.0), None, (25.0, 28.0, 30.0), (30.0, 35.0), (54.0, 80.0, 100.0)),
    "0702": ((1.0, 2.0), None, (35.0, 40.0), (30.0,), (24.0, 36.0)),
    "0801": ((1.2, 2.2), None, (30.0, 35.0), (35.0,), (36.0, 50.0)),
    "0803": ((0.8, 1.6), None, (30.0, 40.0), (35.0,), (24.0, 36.0)),
    "0804": ((0.8, 1.2), None, (25.0, 30.0), (35.0,), (24.0,)),
    "0805": ((0.4, 0.8), None, (20.0, 30.0), (30.0,), (24.0, 36.0)),
    "0806": ((1.2, 2.0), None, (30.0, 35.0), (35.0,), (45.0,)),
    "0901": ((2.5, 4.5), None, (40.0, 45.0, 50.0), (20.0,), (80.0, 100.0, 150.0)),
    "0902": ((3.0, 6.0), None, (40.0, 45.0), (20.0,), (100.0, 150.0)),
    "1001": ((1.2, 2.0), 1.0, (40.0, 50.0, 60.0), (10.0, 15.0), (24.0, 30.0, 40.0)),
    "1101": ((1.0, 1.5), 0.8, (50.0, 55.0), (10.0,), (24.0,)),
    "1301": ((0.3, 0.8), None, (30.0,), (30.0,), (15.0, 24.0)),
    "1303": ((0.3, 0.8), None, (30.0,), (30.0,), (15.0, 24.0)),
    "1401": ((0.05, 0.1), None, (5.0,), (65.0, 70.0), (12.0,)),
    "1402": ((0.0, 0.0), None, (0.0,), (80.0,), (0.0,)),  # 0 = no such indicator (written empty)
    "0703": ((0.8, 1.2), None, (40.0,), (0.0,), (12.0,)),
    "1202": ((0.0, 0.0), None, (0.0,), (0.0,), (0.0,)),
}
# deliberate plan parcels outside the urban boundary: (seat, land use); 0703/1202 may lie outside it
OUTSIDE: tuple[tuple[int, str], ...] = (
    (0, "1001"),
    (0, "0701"),
    (0, "0901"),
    (0, "1101"),
    (1, "1001"),
    (1, "0701"),
    (0, "0703"),
    (1, "1202"),
)

# demo projects whose parcels' blocks get the use the project needs, and what each declares:
# parcel → (land use given to its blocks, declaration: "within", "far_over" or "height_over")
PROJECT_PLOTS: dict[str, tuple[str, str]] = {
    "P01": ("1001", "far_over"),  # 经开区智能制造产业园: 容积率 above the plan's maximum
    "P02": ("0701", "within"),  # 铜官区滨江安置小区
    "P03": ("0806", "height_over"),  # 市第三人民医院新院区: 建筑高度 above the plan's limit
    "P46": ("0701", "within"),  # 枞阳县城安置地块
}

# regional assessments: (area, type as delivered (key or Chinese name), 文号, 批准日期, 有效期至)
# areas: "seat0" the central urban boundary (+200 m), "seat0_west" its western half, "seat1", "seat3"
ASSESSMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("seat0", "地质灾害危险性评估", "铜自然资函〔2024〕57号", "2024-04-18", "2029-04-17"),
    ("seat0", "水土保持方案", "铜水保〔2024〕12号", "2024-05-06", "2029-05-05"),
    ("seat0", "洪水影响评价", "铜水审批〔2024〕31号", "2024-06-20", "2029-06-19"),
    ("seat0", "climate_feasibility", "铜气函〔2025〕3号", "2025-02-10", "2030-02-09"),
    ("seat0_west", "压覆重要矿产资源评估", "皖自然资矿〔2024〕88号", "2024-09-02", "2029-09-01"),
    ("seat0", "地震安全性评价", "铜震发〔2019〕7号", "2019-05-20", "2024-05-19"),  # expired
    ("seat1", "地质灾害危险性评估", "义自然资〔2025〕9号", "2025-03-12", "2030-03-11"),
    ("seat1", "文物考古调查勘探", "铜文物函〔2025〕15号", "2025-04-01", "2030-03-31"),
    ("seat3", "土地勘测定界", "枞自然资〔2023〕41号", "2023-08-15", "2028-08-14"),
    ("seat3", "洪水影响评价", "枞水〔2020〕6号", "2020-07-01", "2023-06-30"),  # expired
)


def _limits(rng: np.random.Generator, code: str) -> dict[str, Any]:
    """The 控规 indicators of a block of ``code`` (RJLXX only where plans set a minimum)."""
    far, far_min, density, green, height = LIMITS[code]
    far_max = round(float(rng.uniform(*far)), 1)
    limits = {
        "YDDM": code,
        "RJL": far_max,
        "RJLXX": far_min,
        "JZMD": float(rng.choice(density)),
        "LDL": float(rng.choice(green)),
        "JZXG": float(rng.choice(height)),
    }
    # green belts and highways carry no building indicators: left empty (no limit), never written as 0
    return {k: (None if v == 0.0 else v) for k, v in limits.items()}


def _use_for(rng: np.random.Generator, share: float) -> str:
    for bound, choices in RINGS:
        if share <= bound:
            codes, weights = zip(*choices, strict=True)
            return str(rng.choice(codes, p=np.asarray(weights) / sum(weights)))
    raise AssertionError("the last ring is unbounded")


def _grid(region: BaseGeometry, size: tuple[float, float]) -> list[BaseGeometry]:
    """Blocks of ``size`` with streets between them, clipped to ``region``; slivers become street."""
    w, h = size
    minx, miny, maxx, maxy = region.bounds
    xs = np.arange(minx, maxx, w)
    ys = np.arange(miny, maxy, h)
    cells = [
        box(x + ROAD_M / 2, y + ROAD_M / 2, x + w - ROAD_M / 2, y + h - ROAD_M / 2) for y in ys for x in xs
    ]
    clipped = shapely.intersection(np.asarray(cells, dtype=object), region)
    full = (w - ROAD_M) * (h - ROAD_M)
    keep = [c for c in clipped if c.area >= MIN_SHARE * full]
    return [max(shapely.get_parts(c), key=lambda p: p.area) for c in keep]


def _clear(avoid: shapely.STRtree, geoms: Sequence[BaseGeometry]) -> list[bool]:
    """Which of ``geoms`` touch nothing in ``avoid`` (a tree, so a million farmland patches stay cheap)."""
    hit = (
        set(avoid.query(np.asarray(geoms, dtype=object), predicate="intersects")[0].tolist())
        if geoms
        else set()
    )
    return [i not in hit for i in range(len(geoms))]


def build_detailed_plan(
    rng: np.random.Generator,
    urban: gpd.GeoDataFrame,
    seats: Sequence[tuple[float, float]],
    avoid: shapely.STRtree,
    outside_room: BaseGeometry,
    snap: Callable[[BaseGeometry], BaseGeometry],
) -> gpd.GeoDataFrame:
    """控规地块 over each urban boundary blob, clear of everything in ``avoid`` (red line, farmland), and
    the deliberate ones outside the boundary placed in ``outside_room`` (agricultural space)."""
    rows: list[dict[str, Any]] = []
    for seat, (geom, (cx, cy)) in enumerate(zip(urban.geometry, seats, strict=True)):
        radius = max(float(np.sqrt(geom.area / np.pi)), 1.0)
        grid = _grid(geom, BLOCK_M.get(seat, DEFAULT_BLOCK_M))
        blocks = [b for b, ok in zip(grid, _clear(avoid, grid), strict=True) if ok]
        for n, block in enumerate(blocks, start=1):
            share = float(np.hypot(block.centroid.x - cx, block.centroid.y - cy)) / radius
            rows.append(
                {
                    "DKBH": f"{SEAT_PREFIX[seat]}-{n:03d}",
                    "GHMC": PLAN_NAMES[seat],
                    **_limits(rng, _use_for(rng, share)),
                    "geometry": snap(block),
                }
            )
    shapely.prepare(outside_room)
    for k, (seat, code) in enumerate(OUTSIDE, start=1):
        block = _outside_block(rng, outside_room, urban.geometry.iloc[seat], avoid)
        rows.append(
            {
                "DKBH": f"{SEAT_PREFIX[seat]}-W{k:02d}",
                "GHMC": PLAN_NAMES[seat],
                **_limits(rng, code),
                "geometry": snap(block),
            }
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)


def _outside_block(
    rng: np.random.Generator, room: BaseGeometry, blob: BaseGeometry, avoid: shapely.STRtree
) -> BaseGeometry:
    """A 220 × 160 m block within 600 m outside ``blob``, wholly in ``room``, touching nothing avoided."""
    ring = blob.buffer(600.0).difference(blob.buffer(40.0)).intersection(room)
    shapely.prepare(ring)
    minx, miny, maxx, maxy = ring.bounds
    for _ in range(4000):
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        block = box(x - 110.0, y - 80.0, x + 110.0, y + 80.0)
        if ring.contains(block) and _clear(avoid, [block.buffer(30.0)])[0]:
            return block
    raise RuntimeError("no room outside the urban boundary for a deliberate plan parcel")


def fit_to_projects(
    plan: gpd.GeoDataFrame, parcels: Mapping[str, BaseGeometry], rng: np.random.Generator
) -> gpd.GeoDataFrame:
    """The blocks under the demo projects of PROJECT_PLOTS get the land use their project needs."""
    plan = plan.copy()
    for pid, (code, _how) in PROJECT_PLOTS.items():
        if pid not in parcels:
            continue
        under = plan.index[plan.geometry.intersects(parcels[pid])]
        for i in under:
            for key, value in _limits(rng, code).items():
                plan.at[i, key] = value
    return plan


def declared_for(plan: gpd.GeoDataFrame, geoms: Sequence[BaseGeometry], how: str) -> dict[str, Any] | None:
    """What a project on ``geoms`` declares: within every limit of the blocks under it, or one beyond."""
    under = plan[plan.geometry.intersects(shapely.union_all(list(geoms)))]
    if under.empty:
        return None
    codes = set(under["YDDM"])
    far_cap = float(under["RJL"].min())
    far_floor = float(under["RJLXX"].dropna().max()) if under["RJLXX"].notna().any() else 0.0
    declared: dict[str, Any] = {
        "far": round(max(far_cap - 0.3, far_floor + 0.1, 0.1), 1),
        "building_density": float(under["JZMD"].min()) - 5.0,
        "green_ratio": float(under["LDL"].max()) + 5.0,
        "height_m": float(under["JZXG"].min()) - 6.0,
    }
    if len(codes) == 1:
        declared = {"land_use": codes.pop(), **declared}
    if how == "far_over":
        declared["far"] = round(far_cap + 0.6, 1)
    elif how == "height_over":
        declared["height_m"] = float(under["JZXG"].min()) + 12.0
    return declared


def declare_projects(
    projects: list[dict[str, Any]], plan: gpd.GeoDataFrame, parcels: Mapping[str, BaseGeometry]
) -> None:
    """Add ``declared`` to the demo projects whose first parcel is listed in PROJECT_PLOTS."""
    for project in projects:
        first = project["parcel_ids"][0] if project["parcel_ids"] else None
        if first in PROJECT_PLOTS:
            found = declared_for(plan, [parcels[p] for p in project["parcel_ids"]], PROJECT_PLOTS[first][1])
            if found:
                project["declared"] = found


def build_assessments(
    urban: gpd.GeoDataFrame, boundary: BaseGeometry, snap: Callable[[BaseGeometry], BaseGeometry]
) -> gpd.GeoDataFrame:
    """区域评估 areas: whole seats' boundaries (+200 m), one per type and approval, as a department hands
    them over (type by its Chinese name or key, 文号, dates)."""
    central = urban.geometry.iloc[0].buffer(200.0).intersection(boundary)
    minx, _miny, maxx, _maxy = central.bounds
    west = central.intersection(
        box(minx - 1, central.bounds[1] - 1, (minx + maxx) / 2, central.bounds[3] + 1)
    )
    areas = {
        "seat0": central,
        "seat0_west": west,
        "seat1": urban.geometry.iloc[1].buffer(200.0).intersection(boundary),
        "seat3": urban.geometry.iloc[3].buffer(200.0).intersection(boundary),
    }
    rows = [
        {
            "编号": f"QYPG-{k:02d}",
            "PGLX": kind,
            "WH": number,
            "PZRQ": approved,
            "YXQZ": until,
            "PGFW": {
                "seat0": "铜陵市中心城区",
                "seat0_west": "铜陵市中心城区西片",
                "seat1": "义安区顺安镇区",
                "seat3": "枞阳县城区",
            }[area],
            "geometry": snap(areas[area]),
        }
        for k, (area, kind, number, approved, until) in enumerate(ASSESSMENTS, start=1)
    ]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)


def plan_conflicts(
    plan: gpd.GeoDataFrame, urban: BaseGeometry, outside_allowed: Callable[[str], bool]
) -> list[dict[str, Any]]:
    """The deliberate 差异图斑: plan parcels of urban construction use outside the urban boundary."""
    out = []
    for row in plan.itertuples():
        left = row.geometry.difference(urban)
        if left.area > 1.0 and not outside_allowed(str(row.YDDM)):
            out.append({"feature_id": row.DKBH, "land_use": row.YDDM, "geometry": left})
    return out
