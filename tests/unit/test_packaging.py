"""Every code package of the repository is installed (the console script runs outside the checkout too)."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", "bench", "data", "scripts", "docs"}


def test_every_package_is_in_the_setuptools_include_list() -> None:
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_SHIPPED
    missing = {p for p in packages if not any(fnmatch(p, pattern) for pattern in include)}
    assert not missing, f"add to [tool.setuptools.packages.find] include: {sorted(missing)}"
