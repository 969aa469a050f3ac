"""blueprint.workfiles: the out-of-core build's own work files, as uncompressed Arrow IPC."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa


def write_table(table: pa.Table, path: Path) -> None:
    """``table`` to ``path``: written once and read back whole by the next pass on the same disk, so no
    compression or parquet encoding to undo (both cost more CPU than the disk saves here)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A work file written by :func:`write_table` (memory-mapped: columns not asked for are not read)."""
    # the map stays open as long as the table's buffers point into it (closing it would free them)
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    return table.select(columns) if columns is not None else table
