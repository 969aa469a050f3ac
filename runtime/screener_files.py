"""runtime.screener_files: a published version's Screener as one file in the data dir, for fast start-up."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from checks.engine import Screener

log = logging.getLogger(__name__)

# bumped when the file layout changes; the code digest below covers changes to the Screener itself
FORMAT = 1
KEY_LENGTH = 24
STEM_TAIL = "x" * KEY_LENGTH + ".screener"  # the part of a file name after "<version>-"


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of the checks package's sources: a Screener pickled by other code is never loaded."""
    digest = hashlib.sha256()
    package = resources.files("checks")
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".py", ".toml")):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
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
