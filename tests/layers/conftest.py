"""Fixtures for the ingestion tests: the catalogue and a small red-line frame with known areas."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import box

from layers.catalogue import Catalogue, load_catalogue
from tests.geoms import MULTIPART, WITH_HOLE, X0, Y0

# known plane areas in EPSG:4548: WITH_HOLE 7 500 m², MULTIPART 5 000 m², the rectangle 20 000 m²
KNOWN_AREA = 7_500.0 + 5_000.0 + 20_000.0


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture
def red_frame() -> gpd.GeoDataFrame:
    """Three features in EPSG:4548 with Chinese attributes and an id column."""
    return gpd.GeoDataFrame(
        {"BSM": [7, 8, 9], "名称": ["水源涵养生态保护红线", "水土保持生态保护红线", "生物多样性维护红线"]},
        geometry=[WITH_HOLE, MULTIPART, box(X0 + 1000, Y0, X0 + 1200, Y0 + 100)], crs=4548)


@pytest.fixture
def layer_data(test_data: Path) -> Path:
    return test_data / "layers"
