"""checks.batch_store: a batch run's output directory: parquet partitions written atomically, a manifest.

Layout of ``--out DIR``::

    DIR/manifest.json          what was screened (input checksum, blueprint and rules versions, project
                               type, partition size) and each partition's status
    DIR/part-00000.parquet     the rows (checks.batch.COLUMNS) of the parcels of partition 0, sorted
    DIR/part-00001.parquet     …

Every file is written to a hidden temp file in DIR and renamed over its name, so a killed run leaves whole
files or none; a partition counts as finished only once the manifest says so, and the manifest is rewritten
(atomically too) after each partition. Concatenating the parts and sorting them with
``checks.batch.order_rows`` gives exactly the single-file table (``read_results``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from checks.batch import order_rows
from checks.errors import CheckError

MANIFEST = "manifest.json"
FORMAT = "one-blueprint/check-batch/1"
# the fields a resumed run must share with the run that wrote the directory, with the user's words for each
RUN_FIELDS = {
    "input_checksum": "the parcel input (file contents) 输入地块文件",
    "input_options": "the input options (--crs / --encoding) 输入选项",
    "blueprint_version": "the blueprint version 蓝图版本",
    "rules_version": "the rules version 规则版本",
    "rules_digest": "the rules (their content) 规则内容",
    "project_type": "the project type 项目类型",
    "partition_size": "the partition size (--partition-size) 分区大小",
    "parcels": "the number of parcels 地块数",
    "pieces": "the piece loading (--bounded / --whole) 蓝图加载方式",
}
# a manifest written before a field existed holds its default (runs then loaded the whole version)
RUN_DEFAULTS = {"pieces": "whole"}


class BatchResumeError(CheckError):
    """DIR holds a run of a different input, blueprint, rules or options: resuming would mix results."""

    code = "batch_resume_mismatch"


class BatchOutputError(CheckError):
    code = "batch_output_error"


@dataclass(frozen=True)
class RunKey:
    """What identifies a batch run; a rerun resumes only when every field is equal."""

    input_checksum: str
    input_options: str
    blueprint_version: str
    rules_version: str
    rules_digest: str
    project_type: str
    partition_size: int
    parcels: int
    pieces: str = "whole"  # "whole": the version in one Screener; "bounded": per partition (batch_regions)


def input_checksum(files: Iterable[Path]) -> str:
    """sha256 over the input files' names and contents (streamed: inputs can be gigabytes)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """write(temp) in path's directory, then rename over path: readers see the old file or the new one."""
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
    except OSError as exc:
        raise BatchOutputError(
            f"{path.parent}: cannot write the results there ({exc.strerror or exc})") from exc
    try:
        write(temp)
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the results from the rest of the team
        os.replace(temp, path)
    except OSError as exc:
        raise BatchOutputError(f"{path}: cannot write the results there ({exc.strerror or exc})") from exc
    finally:
        Path(temp).unlink(missing_ok=True)


class BatchDir:
    """The output directory of one batch run: opened fresh, resumed, or refused."""

    def __init__(self, root: Path, key: RunKey, sizes: list[int], manifest: dict[str, Any]):
        self.root, self.key, self.sizes, self.manifest = root, key, sizes, manifest

    @classmethod
    def open(cls, root: Path, key: RunKey, sizes: list[int], *, restart: bool = False,
             engine: str = "in-process") -> BatchDir:
        """Resume the run in ``root`` if it is the same run; start one if there is none (or ``restart``)."""
        _prepare(root)
        old = _read_manifest(root)
        if old is not None and not restart:
            changed = [f for f in RUN_FIELDS
                       if old.get("run", {}).get(f, RUN_DEFAULTS.get(f)) != asdict(key)[f]]
            if changed:
                raise BatchResumeError(
                    f"{root} holds another batch run (resuming would mix results): "
                    + "; ".join(f"{RUN_FIELDS[f]} changed" for f in changed)
                    + ". Use another --out directory, or --restart to discard the finished partitions "
                      "请换一个输出目录，或用 --restart 重新开始")
            manifest = old
            manifest["resumed"] = int(manifest.get("resumed", 0)) + 1
        else:
            for stale in root.glob("part-*.parquet"):
                stale.unlink()
            manifest = {"format": FORMAT, "run": asdict(key), "partition_count": len(sizes), "resumed": 0,
                        "started_at": _now(), "partitions": [
                            {"index": i, "file": part_name(i), "parcels": n, "status": "pending"}
                            for i, n in enumerate(sizes)]}
        manifest["engine"] = engine
        batch = cls(root, key, sizes, manifest)
        batch._forget_missing()
        batch._save()
        return batch

    def pending(self) -> list[int]:
        return [p["index"] for p in self.manifest["partitions"] if p["status"] != "done"]

    def finished_parcels(self) -> int:
        return sum(p["parcels"] for p in self.manifest["partitions"] if p["status"] == "done")

    def write_part(self, index: int, table: gpd.GeoDataFrame, seconds: float) -> None:
        """Write partition ``index`` (sorted) and record it as done."""
        path = self.root / part_name(index)
        table = order_rows(table)
        _atomic_write(path, table.to_parquet)
        verdicts = table.drop_duplicates("parcel_id")["parcel_verdict"].value_counts()
        self.manifest["partitions"][index].update(
            status="done", rows=len(table), seconds=round(seconds, 3), finished_at=_now(),
            run=int(self.manifest["resumed"]), verdicts={str(k): int(v) for k, v in sorted(verdicts.items())})
        self._save()

    def finish(self) -> dict[str, Any]:
        self.manifest["complete"] = not self.pending()
        self.manifest["finished_at"] = _now()
        self._save()
        return self.manifest

    def verdicts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in self.manifest["partitions"]:
            for k, v in part.get("verdicts", {}).items():
                total[k] = total.get(k, 0) + v
        return dict(sorted(total.items()))

    def rows(self) -> int:
        return sum(p.get("rows", 0) for p in self.manifest["partitions"])

    def _forget_missing(self) -> None:
        """A partition marked done whose file is gone (deleted by hand) is computed again."""
        for part in self.manifest["partitions"]:
            if part["status"] == "done" and not (self.root / part["file"]).is_file():
                part.update(status="pending")
        self.manifest["complete"] = False

    def _save(self) -> None:
        self.manifest["updated_at"] = _now()
        text = json.dumps(self.manifest, ensure_ascii=False, indent=1)
        def write(temp: str) -> None:
            Path(temp).write_text(text, encoding="utf-8")

        _atomic_write(self.root / MANIFEST, write)


def _prepare(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise BatchOutputError(f"{root}: is a file; give a directory for the partitioned results "
                               "(or a name ending in .parquet for one file)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchOutputError(f"{root}: cannot write the results there ({exc.strerror or exc})") from exc
    if (any(root.iterdir()) and not (root / MANIFEST).exists()):
        raise BatchOutputError(f"{root}: the directory holds other files and no batch manifest; "
                               "give an empty or new directory 请指定空目录")
    for temp in root.glob(".*.tmp"):  # left by a killed run
        temp.unlink()


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BatchOutputError(f"{path}: not a readable batch manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BatchOutputError(f"{path}: not a check-batch manifest (format {FORMAT})")
    return manifest


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_results(root: Path) -> gpd.GeoDataFrame:
    """The whole table of a finished run: every part, concatenated and sorted as the single-file output."""
    manifest = _read_manifest(root)
    if manifest is None:
        raise BatchOutputError(f"{root}: no {MANIFEST}")
    parts = [gpd.read_parquet(root / p["file"]) for p in manifest["partitions"] if p["status"] == "done"]
    if not parts:
        raise BatchOutputError(f"{root}: no finished partition")
    return order_rows(gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs))
