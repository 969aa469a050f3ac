"""api.tempfiles: private temporary directories for uploads, and the sweep of those a killed server left.

An upload is copied into ``<tmp>/blueprint-upload-<pid>-<random>`` and removed when the request ends; a
server killed mid-upload (SIGKILL, OOM) never removes it (the red team found 129 MB of them). At start-up
:func:`sweep_upload_dirs` removes every such directory whose process is gone, and legacy ones
(``blueprint-upload-<random>``, no pid) not touched for an hour; live processes' uploads are left alone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger("api.tempfiles")

PREFIX = "blueprint-upload-"
_WITH_PID = re.compile(rf"^{PREFIX}(\d+)-")
LEGACY_AGE_S = 3600


def upload_prefix() -> str:
    """The name prefix of this process's upload directories (carries the pid for the sweep)."""
    return f"{PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_upload_dirs(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove upload directories left by dead processes; returns what was removed."""
    root = Path(root or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed: list[Path] = []
    for path in root.glob(PREFIX + "*"):
        try:
            if not path.is_dir() or path.is_symlink():
                continue
            match = _WITH_PID.match(path.name)
            stale = (not _alive(int(match.group(1)))) if match else now - path.stat().st_mtime > LEGACY_AGE_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.warning("removed %d upload directories left by stopped servers", len(removed))
    return removed
