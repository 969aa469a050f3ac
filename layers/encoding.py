"""layers.encoding: decide the text encoding of attribute data (Shapefile DBF, CSV) without mojibake."""

from __future__ import annotations

import codecs
import glob
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from layers.errors import EncodingError

SAMPLE_BYTES = 4 * 1024 * 1024  # enough records to see non-ASCII text without reading huge files
DBF_HEADER = 32
DBF_FIELD = 32
LDID_OFFSET = 29
# DBF language driver ids of Western code pages (437, 850, 1252 and their variants)
WESTERN_LDIDS = frozenset({0x01, 0x02, 0x03, 0x57, 0x58, 0x59})
# the code page a DBF language driver id names (what GDAL decodes with), for a truthful report
LDID_CODEPAGES = {
    0x01: "CP437", 0x02: "CP850", 0x03: "CP1252", 0x57: "CP1252", 0x58: "CP1252", 0x59: "CP1252",
    0x4D: "CP936", 0x7A: "CP936", 0x4E: "CP949", 0x79: "CP949", 0x4F: "CP950", 0x78: "CP950",
    0x13: "CP932", 0x7B: "CP932", 0x7C: "CP874", 0x64: "CP852", 0x65: "CP866", 0x66: "CP865",
    0xC8: "CP1250", 0xC9: "CP1251", 0xCA: "CP1254", 0xCB: "CP1253", 0xCC: "CP1257",
}


@dataclass(frozen=True)
class EncodingChoice:
    """The encoding to hand to the reader (None = let GDAL decide), a note saying why, and the
    encoding the attributes are really in (``label``) when GDAL decides: what is reported."""

    encoding: str | None
    note: str
    label: str | None = None


def check_encoding(name: str, source: str) -> str:
    """A declared encoding must be one Python knows; the error names it."""
    try:
        codecs.lookup(name)
    except LookupError:
        raise EncodingError(f"{source}: unknown encoding {name!r} (try UTF-8 or GB18030)") from None
    return name


def detect_text_encoding(samples: Iterable[bytes], source: str, what: str = "text") -> str | None:
    """UTF-8 if every sample decodes strictly, else GB18030 (a superset of GBK); None if all ASCII.

    GBK byte pairs almost never form valid UTF-8 sequences, so a strict UTF-8 pass first is safe.
    """
    data = [s for s in samples if s and not s.isascii()]
    if not data:
        return None
    try:
        for sample in data:
            sample.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        pass
    if _looks_chinese(data):
        return "GB18030"
    raise EncodingError(f"{source}: {what} is neither UTF-8 nor GBK/GB18030 Chinese; pass the encoding "
                        "explicitly (--encoding)")


def _dbf_samples(data: bytes, source: str) -> list[bytes]:
    """Field names and character-field values from the raw DBF bytes (as far as ``data`` reaches)."""
    if len(data) < DBF_HEADER:
        return []
    header_len, record_len = struct.unpack("<HH", data[8:12])
    samples: list[bytes] = []
    fields: list[tuple[int, int]] = []  # (offset in record, width) of character fields
    offset = 1  # byte 0 of a record is the deletion flag
    pos = DBF_HEADER
    while pos + DBF_FIELD <= min(header_len, len(data)) and data[pos] != 0x0D:
        desc = data[pos:pos + DBF_FIELD]
        samples.append(desc[:11].split(b"\x00", 1)[0])
        width = desc[16]
        if desc[11:12] in (b"C", b"M"):
            fields.append((offset, width))
        offset += width
        pos += DBF_FIELD
    if record_len <= 0:
        return samples
    for start in range(header_len, len(data) - record_len + 1, record_len):
        record = data[start:start + record_len]
        for field_offset, width in fields:
            # a value cut at the field width may end in half a GBK character; drop that byte
            samples.append(_trim_partial(record[field_offset:field_offset + width].rstrip(b" \x00")))
    return samples


def _trim_partial(value: bytes) -> bytes:
    if not value.isascii():
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start >= len(value) - 3 and exc.reason == "unexpected end of data":
                return value[:exc.start]
            try:
                value.decode("gb18030")
            except UnicodeDecodeError as gb_exc:
                if gb_exc.start == len(value) - 1:
                    return value[:-1]
    return value


def _looks_chinese(samples: list[bytes]) -> bool:
    """Non-ASCII bytes that are strict GB18030 (not UTF-8) and decode mostly to common (GB2312) text."""
    data = b" ".join(s for s in samples if s and not s.isascii())
    if not data:
        return False
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    wide = [c for c in text if ord(c) > 0x7F]
    # Latin-1 letters followed by ASCII also pair up into valid GBK, but into rare characters outside
    # GB2312 (whose trail bytes are never ASCII); real Chinese text is mostly GB2312
    return sum(_in_gb2312(c) for c in wide) >= 0.8 * len(wide)


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def shapefile_encoding(shp: Path, declared: str | None) -> EncodingChoice:
    """The attribute encoding of a Shapefile: declared, else .cpg, else DBF LDID, else detected.

    Detection looks at the raw bytes of field names and character values: strict UTF-8 first,
    then GB18030; GBK files from Chinese departments often come without a .cpg.
    """
    source = shp.name
    if declared:
        return EncodingChoice(check_encoding(declared, source), f"attribute encoding {declared} as declared")
    cpg = next((p for p in shp.parent.glob(glob.escape(shp.stem) + ".*") if p.suffix.lower() == ".cpg"), None)
    if cpg is not None:
        text = cpg.read_text(encoding="ascii", errors="replace").strip()
        return EncodingChoice(None, f"attribute encoding {text} from {cpg.name}", label=text or None)
    dbf = next((p for p in shp.parent.glob(glob.escape(shp.stem) + ".*") if p.suffix.lower() == ".dbf"), None)
    if dbf is None:
        return EncodingChoice(None, f"{source}: no .dbf, no attributes")
    with dbf.open("rb") as handle:
        data = handle.read(SAMPLE_BYTES)
    ldid = data[LDID_OFFSET] if len(data) > LDID_OFFSET else 0
    samples = _dbf_samples(data, dbf.name)
    if ldid in WESTERN_LDIDS and _looks_chinese(samples):
        # ArcGIS and others stamp "Windows ANSI" on DBFs whatever the text really is
        return EncodingChoice("GB18030", f"{dbf.name}: the DBF language driver id 0x{ldid:02X} says a "
                                         "Western code page but the text is GBK/GB18030; read as GB18030")
    if ldid:
        page = LDID_CODEPAGES.get(ldid)
        named = f" ({page})" if page else ""
        return EncodingChoice(None, f"attribute encoding from the DBF language driver id 0x{ldid:02X}{named}",
                              label=page)
    detected = detect_text_encoding(samples, dbf.name, "attribute text")
    if detected is None:
        return EncodingChoice(None, f"{dbf.name}: attributes are plain ASCII")
    return EncodingChoice(detected, f"{dbf.name} has no .cpg: attribute encoding detected as {detected}")
