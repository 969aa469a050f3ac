"""Shared pytest fixtures: the working CRS and paths to test data."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyproj import CRS

pytest_plugins = ["tests.dbfixtures"]

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def work_crs() -> CRS:
    """CGCS2000 / 3-degree GK CM 117E (EPSG:4548), the demo city's working CRS."""
    return CRS.from_epsg(4548)


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA
