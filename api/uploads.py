"""api.uploads: multipart uploads streamed to a file in the data dir, the size limit enforced as they come.

The body is parsed while it arrives (python-multipart's push parser, fed from ``request.stream()``): the
file part goes straight to ``<data_dir>/uploads/blueprint-upload-<pid>-<random>/<name>`` with a running
byte count; the few text fields are kept (each at most 64 KiB). No copy of the whole body is ever in
memory, and none is spooled elsewhere first. Past the limit the read stops at once with a 413 that names
the limit, and the partial file is removed. A server killed in the middle leaves its directory behind;
the start-up sweep (:func:`api.tempfiles.sweep_upload_dirs`) removes it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from api.errors import InvalidRequestError
from api.tempfiles import upload_prefix
from layers.errors import FileTooLargeError, OneBlueprintError, UnreadableLayerError
from layers.formats import SHAPEFILE_PARTS
from layers.model import Limits

FILE_FIELD = "file"
MAX_FIELDS = 32
MAX_FIELD_BYTES = 64 * 1024
FLUSH_BYTES = 1 << 20  # written to disk (in a thread) a megabyte at a time


def uploads_root(data_dir: Path) -> Path:
    """Where uploads are streamed to: beside the database and the job inputs, on the same disk."""
    return Path(data_dir) / "uploads"


SAFE_NAME = re.compile(r"[^\w.\-]+", re.UNICODE)


def safe_filename(name: str | None, default: str = "upload") -> str:
    """The base name of an uploaded file, without directories or odd characters (extension kept)."""
    base = Path((name or "").replace("\\", "/")).name
    base = SAFE_NAME.sub("_", base).lstrip(".")
    return base[:120] or default


def refuse_loose_shapefile_part(name: str) -> None:
    """A Shapefile is several files: one part alone (a bare .shp) cannot be read as the user meant."""
    if Path(name).suffix.lower() in SHAPEFILE_PARTS:
        raise UnreadableLayerError(
            f"{name}: a Shapefile is several files; upload the .shp/.shx/.dbf/.prj together as a .zip"
        )


@dataclass
class ReceivedFile:
    """The uploaded file as stored: its path, the client's (cleaned) name and its size in bytes."""

    path: Path
    filename: str
    size: int


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    """python-multipart callbacks: header bookkeeping, fields in memory, the file counted and buffered."""

    def __init__(self, directory: Path, limits: Limits) -> None:
        self.directory, self.limits = directory, limits
        self.fields: dict[str, str] = {}
        self.file: ReceivedFile | None = None
        self.out: IO[bytes] | None = None
        self.pending = bytearray()  # file bytes not yet written
        self.part = _Part()
        self.headers: dict[bytes, bytes] = {}
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.ended = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.part_begin, "on_part_data": self.part_data, "on_part_end": self.part_end,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.header_end, "on_headers_finished": self.headers_finished,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.part, self.headers = _Part(), {}

    def header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            if len(self.fields) >= MAX_FIELDS:
                raise InvalidRequestError(f"too many form fields (at most {MAX_FIELDS}) 表单字段过多")
            return
        if self.part.name != FILE_FIELD or self.file is not None:
            raise InvalidRequestError(
                "send one file, in the multipart field 'file' 只能上传一个文件（字段 file）")
        name = safe_filename(filename.decode("utf-8", "replace"))
        refuse_loose_shapefile_part(name)
        self.part.filename = name
        self.file = ReceivedFile(self.directory / name, name, 0)
        self.out = self.file.path.open("wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.filename is None:
            self.part.data.extend(data[start:end])
            if len(self.part.data) > MAX_FIELD_BYTES:
                raise InvalidRequestError(
                    f"form field {self.part.name!r} is longer than {MAX_FIELD_BYTES} bytes 表单字段过长")
            return
        assert self.file is not None
        self.file.size += end - start
        if self.file.size > self.limits.max_bytes:
            found = f"{self.file.filename}: {self.file.size:,} bytes or more"
            raise FileTooLargeError(self.limits.exceeded("max_bytes", found) + " 文件超过上传上限")
        self.pending.extend(data[start:end])

    def part_end(self) -> None:
        if self.part.filename is None and self.part.name:
            try:
                self.fields[self.part.name] = self.part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequestError(f"form field {self.part.name!r} is not UTF-8 text") from None

    def end(self) -> None:
        self.ended = True

    async def flush(self, *, force: bool = False) -> None:
        if self.out is not None and self.pending and (force or len(self.pending) >= FLUSH_BYTES):
            chunk, self.pending = bytes(self.pending), bytearray()
            await run_in_threadpool(self.out.write, chunk)  # a slow disk never blocks the event loop

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


async def _receive(request: Request, directory: Path, limits: Limits) -> tuple[dict[str, str], ReceivedFile]:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequestError("malformed multipart body: no boundary in Content-Type")
    receiver = _Receiver(directory, limits)
    parser = MultipartParser(boundary, receiver.callbacks())
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
                await receiver.flush()
        parser.finalize()
        await receiver.flush(force=True)
    except OneBlueprintError:
        raise
    except ClientDisconnect:
        raise InvalidRequestError("the upload was interrupted before the end of the body 上传中断") from None
    except ValueError as exc:  # python-multipart's MultipartParseError and friends: the client's body
        raise InvalidRequestError(f"malformed multipart body: {exc}") from None
    finally:
        receiver.close()
    if not receiver.ended:
        raise InvalidRequestError("malformed multipart body: it ends before its closing boundary")
    if receiver.file is None:
        raise InvalidRequestError("multipart field 'file' (the parcel or layer file) is required 缺少文件")
    return receiver.fields, receiver.file


@asynccontextmanager
async def received_form(
    request: Request, data_dir: Path, limits: Limits
) -> AsyncIterator[tuple[dict[str, str], ReceivedFile]]:
    """The text fields (empty ones dropped) and the ``file`` part, stored in a private directory under
    the data dir that is removed when the block ends (move the file out to keep it, e.g. into a job)."""
    root = uploads_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=upload_prefix(), dir=root))
    try:
        fields, received = await _receive(request, directory, limits)
        yield {k: v for k, v in fields.items() if v != ""}, received
    finally:
        shutil.rmtree(directory, ignore_errors=True)
