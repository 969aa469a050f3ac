"""Shared pytest fixtures: the working CRS and paths to test data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyproj import CRS

pytest_plugins = ["tests.dbfixtures"]

# Rate limits are a feature with tests of their own (tests/api/test_rate_limits.py, which turn them on);
# elsewhere one key per role makes hundreds of requests a minute, so the suite runs without them
# (subprocess servers inherit this too).
os.environ.setdefault("BLUEPRINT_RATE_LIMITS_ENABLED", "false")

ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def work_crs() -> CRS:
    """CGCS2000 / 3-degree GK CM 117E (EPSG:4548), the demo city's working CRS."""
    return CRS.from_epsg(4548)


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA
