"""runtime.screener_files: a published version's Screener as one file in the data dir, for fast start-up."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from checks.engine import Screener

log = logging.getLogger(__name__)

# bumped when the file layout changes; the code digest below covers changes to the code a Screener depends on
FORMAT = 1
KEY_LENGTH = 24
STEM_TAIL = "x" * KEY_LENGTH + ".screener"  # the part of a file name after "<version>-"
# A pickled Screener holds objects of classes defined across the core (checks.rules, checks.conditions,
# layers.catalogue, layers.land_use, ...) and caches what code there computed when it was built, so its
# file is valid for that code only. The core packages it may reach, and the module it starts from:
CORE = ("layers", "blueprint", "checks")
ROOT_MODULE = "checks.engine"
# an import statement at the start of a line: ``from a.b import c as d, (e, f)`` or ``import a.b as c, d``
IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)|import[ \t]+([^\n#]+))", re.MULTILINE)
COMMENT = re.compile(r"#[^\n]*")


def _source(module: str) -> Path | None:
    """The source file of a core module (or package), None for a name that is no module (an imported
    class or function)."""
    package, *rest = module.split(".")
    base = Path(str(importlib.import_module(package).__file__)).parent
    candidates = [base.joinpath(*rest).with_suffix(".py")] if rest else []
    candidates.append(base.joinpath(*rest, "__init__.py"))
    return next((path for path in candidates if path.is_file()), None)


def _core_imports(path: Path) -> set[str]:
    """Every core name ``path`` imports (at any depth, lazy imports too): modules and ``module.name``.

    A regular expression over the text, not :mod:`ast` (parsing the 30 files took 0.1–0.2 s of a start-up
    that reads its Screener in 0.3 s); an import-like line inside a docstring can only add a file."""
    found: set[str] = set()
    for match in IMPORT.finditer(path.read_text(encoding="utf-8")):
        module, names, plain = match.groups()
        if plain is not None:
            found.update(part.split()[0] for part in plain.split(",") if part.strip())
        else:
            found.add(module)
            listed = COMMENT.sub("", names).strip("()").split(",")
            found.update(f"{module}.{part.split()[0]}" for part in listed if part.strip())
    return {name for name in found if name.split(".")[0] in CORE}


def covered_files() -> list[Path]:
    """The files a stored Screener depends on: the source of :data:`ROOT_MODULE`, of every core module
    it imports, transitively (read from the sources, not from what is loaded: every class it can hold
    and every function that computed what it caches is among them), with their packages' ``__init__``,
    and the data files (``*.toml``) beside them that those sources name."""
    sources: dict[str, Path] = {}
    todo = [ROOT_MODULE]
    while todo:
        name = todo.pop()
        path = None if name in sources else _source(name)
        if path is None:
            continue
        sources[name] = path
        todo.extend(_core_imports(path))
        todo.extend(".".join(name.split(".")[:depth]) for depth in range(1, name.count(".") + 1))
    texts = [path.read_bytes() for path in sources.values()]
    folders = {path.parent for path in sources.values()}
    data = {toml for folder in folders for toml in folder.glob("*.toml")
            if any(f'"{toml.name}"'.encode() in text for text in texts)}
    return sorted({*sources.values(), *data})


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of :func:`covered_files`: a Screener pickled by other code is never loaded."""
    digest = hashlib.sha256()
    for path in covered_files():
        name = f"{path.parent.name}/{path.name}"  # where it lies in the package, not on this machine
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(version: str, summary: Mapping[str, Any], inputs: bytes) -> str:
    """What a stored Screener was built from: the version as published (its publish time and checksum),
    the rules/catalogue/tolerances (``inputs``, pickled by the caller) and the code that built it."""
    digest = hashlib.sha256()
    for part in (str(FORMAT), version, str(summary.get("published_at")), str(summary.get("checksum")),
                 code_digest()):
        digest.update(part.encode() + b"\0")
    digest.update(inputs)
    return digest.hexdigest()[:KEY_LENGTH]


def path_for(folder: Path, version: str, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)[:64]
    return folder / f"{safe}-{key}.screener"


def load(path: Path) -> Screener | None:
    """The Screener stored at ``path``; None when there is none or it cannot be read (then it is rebuilt)."""
    try:
        with path.open("rb") as handle:
            screener = pickle.load(handle)  # our own file in our own data dir, written by save()
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign file: rebuild instead of failing the check
        log.warning("screener file %s unreadable (%s); rebuilding it", path, exc)
        return None
    return screener if isinstance(screener, Screener) else None


def save(path: Path, screener: Screener) -> None:
    """Write atomically (temporary file + rename), so a reader never sees half a file, and remove the
    version's files of earlier fingerprints; failures only log (a full disk must not fail the check
    that built the Screener)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".screener")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(screener, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        tmp = None
        for stale in path.parent.glob(path.name[: -len(STEM_TAIL)] + "?" * KEY_LENGTH + ".screener"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("screener file %s not written: %s", path, exc)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
