"""The Screener file's code digest covers every core module a pickled Screener depends on, and only those."""

from __future__ import annotations

import io
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

from checks.engine import Screener
from checks.rules import load_rules
from layers.catalogue import load_catalogue
from tests.checks.conftest import make_blueprint

ROOT = Path(__file__).resolve().parents[2]
CORE = ("layers", "blueprint", "checks")
FINGERPRINT = "from runtime.screener_files import fingerprint; print(fingerprint('v1', {}, b''))"


class _Recording(pickle.Unpickler):
    """Unpickles and notes every (module, name) the pickle refers to."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.found: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> object:
        self.found.add((module, name))
        return super().find_class(module, name)


def test_every_core_class_a_pickled_screener_holds_is_covered() -> None:
    from runtime.screener_files import covered_files

    catalogue = load_catalogue()
    screener = Screener(make_blueprint(), load_rules(None, catalogue), catalogue)
    unpickler = _Recording(pickle.dumps(screener, protocol=pickle.HIGHEST_PROTOCOL))
    unpickler.load()
    held = {module for module, _ in unpickler.found if module.split(".")[0] in CORE}
    # it holds classes of layers/ too (the catalogue, the land-use codes), not only of checks/
    assert {"checks.engine", "checks.rules", "layers.catalogue", "layers.land_use"} <= held
    covered = set(covered_files())
    missing = {m for m in held if ROOT.joinpath(*m.split(".")).with_suffix(".py") not in covered}
    assert not missing


def _fingerprint(tree: Path) -> str:
    done = subprocess.run([sys.executable, "-c", FINGERPRINT], cwd=tree, env={"PYTHONPATH": str(tree)},
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_changing_a_covered_module_outside_checks_changes_the_fingerprint(tmp_path: Path) -> None:
    """A copy of the code in a new process: an edit to layers/catalogue.py (whose Catalogue a Screener
    holds) must change the fingerprint; an edit to layers/store.py (no part of a Screener) must not."""
    for package in (*CORE, "runtime"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = _fingerprint(tmp_path)
    with (tmp_path / "layers" / "store.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# an edit that no Screener depends on\n")
    assert _fingerprint(tmp_path) == before
    with (tmp_path / "layers" / "catalogue.py").open("a", encoding="utf-8") as handle:
        handle.write("\n# an edit to a class a Screener holds\n")
    assert _fingerprint(tmp_path) != before


def test_every_form_of_import_is_followed(tmp_path: Path) -> None:
    from runtime.screener_files import _core_imports

    source = tmp_path / "m.py"
    source.write_text(
        '"""A module."""\nfrom layers.crs import (\n    a,  # why\n    b as z,\n)\n'
        "import checks.rules as r, blueprint.model\nimport numpy\n\n\ndef f():\n"
        "    from layers import land_use  # a lazy import\n",
        encoding="utf-8",
    )
    assert _core_imports(source) == {"layers.crs", "layers.crs.a", "layers.crs.b", "checks.rules",
                                     "blueprint.model", "layers", "layers.land_use"}
