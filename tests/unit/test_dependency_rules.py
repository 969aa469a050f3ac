"""The package rules of docs/architecture.md, read from the source (every import, at any depth, via ast).

api, viewer, cli → runtime → approval → checks → blueprint → layers; api and cli never import each
other; the core and runtime import nothing of the web; only storage modules of the core use SQLAlchemy.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = {"fastapi", "starlette", "uvicorn"}
# what each package may not import (its own layer and those below it are allowed)
FORBIDDEN: dict[str, set[str]] = {
    "layers": WEB | {"api", "cli", "viewer", "runtime", "approval", "checks", "blueprint"},
    "blueprint": WEB | {"api", "cli", "viewer", "runtime", "approval", "checks"},
    "checks": WEB | {"api", "cli", "viewer", "runtime", "approval"},
    "approval": WEB | {"api", "cli", "viewer", "runtime"},
    "runtime": WEB | {"api", "cli", "viewer"},
    "viewer": {"api", "cli"},
    "api": {"cli"},
    "cli": {"api"},
}
# the storage adapters of the core: the only core modules that talk SQLAlchemy (on an Engine/Connection
# handed in by the edge; none opens an engine or an ORM session)
STORAGE = {
    "layers/store.py", "blueprint/store.py", "checks/store.py",
    "approval/store.py", "approval/audit.py", "approval/pool.py", "approval/jobs.py", "approval/outbox.py",
    "approval/parcel_history.py", "approval/rescreen.py", "approval/pool_tables.py", "approval/decisions.py",
}
CORE = ("layers", "blueprint", "checks", "approval")


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module name ``path`` imports (top level or inside functions), with its line."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            if node.module in FORBIDDEN:  # ``from api import services``
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downwards(package: str) -> None:
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}"
           for path in modules(package) for line, name in imported(path)
           if name.split(".")[0] in FORBIDDEN[package]]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", CORE)
def test_only_the_core_storage_modules_use_sqlalchemy(package: str) -> None:
    bad = []
    for path in modules(package):
        rel = path.relative_to(ROOT).as_posix()
        for line, name in imported(path):
            if name == "sqlalchemy" or name.startswith("sqlalchemy."):
                if rel not in STORAGE or name.startswith("sqlalchemy.orm"):
                    bad.append(f"{rel}:{line} imports {name}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad += [f"{rel}:{n.lineno} opens an engine" for n in ast.walk(tree)
                if isinstance(n, ast.Attribute | ast.Name) and getattr(n, "attr", getattr(n, "id", "")) ==
                "create_engine"]
    assert not bad, "\n".join(bad)


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The reader finds imports inside functions and ``from api import x`` (so a pass means something)."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from api import services\n    import fastapi.responses\n")
    names = {name for _line, name in imported(sample)}
    assert {"api", "api.services", "fastapi.responses"} <= names
