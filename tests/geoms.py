"""Ready-made awkward geometries for tests, in metres around the Tongling GK origin (EPSG:4548).

Each is small and named for what makes it awkward; X0/Y0 put them inside the demo city.
"""

from __future__ import annotations

from shapely.geometry import MultiPolygon, Polygon, box

X0, Y0 = 500_000.0, 3_420_000.0  # EPSG:4548 easting/northing near Tongling city centre


def square(x: float, y: float, size: float) -> Polygon:
    return box(X0 + x, Y0 + y, X0 + x + size, Y0 + y + size)


BOW_TIE = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100), (X0, Y0)])
WITH_HOLE = Polygon(square(0, 0, 100).exterior.coords, [square(25, 25, 50).exterior.coords])
MULTIPART = MultiPolygon([square(0, 0, 50), square(100, 0, 50)])
SLIVER = box(X0 + 100, Y0, X0 + 100.2, Y0 + 100)  # 0.2 m wide strip along x = 100
SHARED_EDGE_LEFT = square(0, 0, 100)
SHARED_EDGE_RIGHT = square(100, 0, 100)  # touches SHARED_EDGE_LEFT along x = 100 only
EMPTY = Polygon()
