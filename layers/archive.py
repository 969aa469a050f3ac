"""layers.archive: size limits, checksums and safe extraction of uploaded zip archives."""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from layers.errors import FileTooLargeError, HostileFileError, UnreadableLayerError
from layers.model import Limits

MAX_RATIO = 100  # uncompressed/compressed beyond this for a sizeable member smells of a zip bomb
RATIO_MIN_BYTES = 1024 * 1024  # small members may compress very well legitimately
CHUNK = 1024 * 1024
UTF8_FLAG = 0x800  # general-purpose bit 11: member names are UTF-8


def file_size(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def check_size(paths: Iterable[Path], limits: Limits, source: str) -> None:
    """:class:`FileTooLargeError` when the upload is over ``limits.max_bytes``."""
    size = file_size(paths)
    if size > limits.max_bytes:
        raise FileTooLargeError(f"{source}: " + limits.exceeded("max_bytes", f"{size:,} bytes"))


def sha256(paths: Iterable[Path]) -> str:
    """sha256 of the concatenated bytes of ``paths`` (the source file, or a Shapefile's parts in order)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for chunk in iter(lambda h=handle: h.read(CHUNK), b""):  # type: ignore[misc]
                digest.update(chunk)
    return digest.hexdigest()


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's real name: zips from Chinese Windows tools store GBK names without the UTF-8 flag."""
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    try:
        raw = info.filename.encode("cp437")  # zipfile decoded it as cp437; undo that
    except UnicodeEncodeError:
        return info.filename
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _safe_relative(name: str, source: str) -> PurePosixPath | None:
    """The member's path relative to the extraction directory; None for a directory entry."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise HostileFileError(f"{source}: member {name!r} has an absolute path")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        raise HostileFileError(f"{source}: member {name!r} points outside the archive (path traversal)")
    if not parts or text.endswith("/"):
        return None
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_members(archive: zipfile.ZipFile, limits: Limits, source: str) -> list[zipfile.ZipInfo]:
    """Validate every member before anything is written; returns the file members."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise HostileFileError(f"{source}: " + limits.exceeded("max_members", f"{len(infos):,} members"))
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        name = member_name(info)
        if _is_symlink(info):
            raise HostileFileError(f"{source}: member {name!r} is a symbolic link")
        if _safe_relative(name, source) is None:
            continue
        if info.flag_bits & 0x1:
            raise UnreadableLayerError(f"{source}: member {name!r} is encrypted")
        total += info.file_size
        if total > limits.max_unzipped_bytes:
            raise HostileFileError(f"{source}: " + limits.exceeded(
                "max_unzipped_bytes", f"unpacks to {total:,} bytes or more"))
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= RATIO_MIN_BYTES and ratio > MAX_RATIO:
            raise HostileFileError(
                f"{source}: member {name!r} compresses {ratio:,.0f}:1, a zip bomb pattern; refused")
        files.append(info)
    return files


def _copy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int,
                 source: str) -> int:
    """Stream one member to disk, counting bytes: a lying header cannot make it write more."""
    written = 0
    with archive.open(info) as src, target.open("wb") as dst:
        while chunk := src.read(CHUNK):
            written += len(chunk)
            if written > info.file_size or written > budget:
                raise HostileFileError(f"{source}: member {member_name(info)!r} unpacks to more than "
                                       "its header says (zip bomb?)")
            dst.write(chunk)
    return written


def extract_zip(path: Path, dest: Path, limits: Limits) -> list[Path]:
    """Safely extract ``path`` into ``dest``; returns the extracted files."""
    source = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            files = check_members(archive, limits, source)
            budget = limits.max_unzipped_bytes
            out: list[Path] = []
            root = dest.resolve()
            for info in files:
                rel = _safe_relative(member_name(info), source)
                assert rel is not None  # directories were filtered by check_members
                target = (root / rel).resolve()
                if not target.is_relative_to(root):
                    raise HostileFileError(f"{source}: member {info.filename!r} points outside the archive")
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    budget -= _copy_member(archive, info, target, budget, source)
                except OSError as exc:  # e.g. a member named like another member's folder
                    raise HostileFileError(f"{source}: member {member_name(info)!r} cannot be unpacked "
                                           f"beside the other members ({exc.strerror or exc})") from exc
                out.append(target)
            return out
    except zipfile.BadZipFile as exc:
        raise UnreadableLayerError(f"{source}: not a readable zip archive ({exc})") from exc
    except (EOFError, zlib.error, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise UnreadableLayerError(f"{source}: zip archive is truncated or unsupported ({exc})") from exc


@contextmanager
def unpacked(path: Path, limits: Limits) -> Iterator[list[Path]]:
    """Extract a zip into a private temp directory that is removed afterwards, whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="blueprint-zip-"))
    try:
        yield extract_zip(path, tmp, limits)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
