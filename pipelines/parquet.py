"""Parquet step: records -> closed, Hive-partitioned Parquet files in a spool folder.

``DatasetWriter`` is the core (no Scrapy): it buffers rows of one dataset per
``dt`` partition, writes a row group when the buffer reaches its row or byte
budget, and rolls the file when the file reaches its own; a rolled file is
closed, hashed and handed to ``on_closed`` (the storage step), so memory and
local disk stay bounded however long the crawl. A file is written under a
``.inprogress`` name and renamed only once closed. Rows are converted with the
dataset's explicit schema, so a record of the wrong shape is refused before
anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.exceptions import SchemaMismatch
from pipelines.storage import file_sha256

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClosedFile:
    """A complete Parquet file in the spool, ready to publish."""

    dataset: str
    key: str  #: <dataset>/dt=<YYYY-MM-DD>/<crawl_id>-<seq>.parquet
    path: Path
    rows: int
    sha256: str


def record_to_row(record: object, schema: pa.Schema) -> dict:
    """The record's value for every column of ``schema``; a missing attribute is a schema mismatch."""
    try:
        return {name: getattr(record, name) for name in schema.names}
    except AttributeError as exc:
        raise SchemaMismatch(f"{type(record).__name__} lacks a column of the dataset: {exc}") from exc


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows as a table of exactly ``schema``: a wrong type or a null in a non-null column raises SchemaMismatch."""
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise SchemaMismatch(f"rows do not match the {schema.metadata.get(b'news_archive.dataset', b'?').decode()} "
                             f"schema: {exc}") from exc
    for field in schema:
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaMismatch(f"column {field.name!r} is not nullable but has nulls")
    return table


def _estimate_bytes(row: dict) -> int:
    size = 64
    for value in row.values():
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, list):
            size += sum(len(item) if isinstance(item, str) else 8 for item in value)
        else:
            size += 8
    return size


class _PartitionFile:
    """One open file of one partition."""

    def __init__(self, key: str, path: Path, schema: pa.Schema, compression: str, compression_level: int | None) -> None:
        self.key = key
        self.path = path
        self.inprogress = path.with_name(path.name + ".inprogress")
        self.inprogress.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(
            self.inprogress, schema, compression=compression, compression_level=compression_level,
            write_statistics=True, use_dictionary=True,
        )
        self.rows = 0
        self.bytes_estimate = 0

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows

    def close(self) -> Path:
        self.writer.close()
        self.inprogress.rename(self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # the file is discarded either way
            pass
        self.inprogress.unlink(missing_ok=True)


class DatasetWriter:
    """Rows of one dataset -> closed Parquet files, rolled by rows and bytes, one open file per partition."""

    def __init__(
        self,
        *,
        dataset: str,
        schema: pa.Schema,
        spool_dir: Path,
        file_prefix: str,
        on_closed: Callable[[ClosedFile], None],
        max_file_rows: int = 100_000,
        max_file_bytes: int = 128 * 2**20,
        row_group_rows: int = 10_000,
        row_group_bytes: int = 16 * 2**20,
        compression: str = "zstd",
        compression_level: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.schema = schema
        self.spool_dir = spool_dir
        self.file_prefix = file_prefix
        self.on_closed = on_closed
        self.max_file_rows = max_file_rows
        self.max_file_bytes = max_file_bytes
        self.row_group_rows = row_group_rows
        self.row_group_bytes = row_group_bytes
        self.compression = compression
        self.compression_level = compression_level
        self._buffers: dict[str, list[dict]] = {}
        self._buffer_bytes: dict[str, int] = {}
        self._files: dict[str, _PartitionFile] = {}
        self._seq = 0
        self.rows_written = 0
        self.rejected_rows = 0  #: rows refused by the schema (a bug upstream; the run is marked failed)

    def write(self, record: object, *, dt: str) -> None:
        """Add one record to partition ``dt`` (YYYY-MM-DD)."""
        row = record_to_row(record, self.schema)
        buffer = self._buffers.setdefault(dt, [])
        buffer.append(row)
        self._buffer_bytes[dt] = self._buffer_bytes.get(dt, 0) + _estimate_bytes(row)
        if len(buffer) >= self.row_group_rows or self._buffer_bytes[dt] >= self.row_group_bytes:
            self._flush(dt)

    def _flush(self, dt: str) -> None:
        rows = self._buffers.pop(dt, [])
        estimate = self._buffer_bytes.pop(dt, 0)
        if not rows:
            return
        try:
            table = rows_to_table(rows, self.schema)
        except SchemaMismatch:
            table = self._keep_valid_rows(rows)
        if not table.num_rows:
            return
        partition = self._files.get(dt)
        if partition is None:
            self._seq += 1
            key = f"{self.dataset}/dt={dt}/{self.file_prefix}-{self._seq:05d}.parquet"
            partition = _PartitionFile(key, self.spool_dir / key, self.schema, self.compression, self.compression_level)
            self._files[dt] = partition
        partition.write(table)
        partition.bytes_estimate += estimate
        self.rows_written += table.num_rows
        if partition.rows >= self.max_file_rows or partition.bytes_estimate >= self.max_file_bytes:
            self._roll(dt)

    def _keep_valid_rows(self, rows: list[dict]) -> pa.Table:
        """Isolate the rows that do not fit the schema, report them, and keep the rest."""
        good, errors = [], []
        for row in rows:
            try:
                rows_to_table([row], self.schema)
            except SchemaMismatch as exc:
                errors.append(str(exc))
            else:
                good.append(row)
        self.rejected_rows += len(errors)
        logger.error("%s: %d row(s) refused by the schema, first: %s", self.dataset, len(errors), errors[0])
        return rows_to_table(good, self.schema)

    def _roll(self, dt: str) -> None:
        partition = self._files.pop(dt)
        path = partition.close()
        self.on_closed(ClosedFile(self.dataset, partition.key, path, partition.rows, file_sha256(path)))

    def close(self) -> None:
        """Write what is buffered and close every open file (each handed to ``on_closed``)."""
        for dt in list(self._buffers):
            self._flush(dt)
        for dt in list(self._files):
            self._roll(dt)

    def abort(self) -> None:
        """Discard open files and buffers: nothing half-written is left under a final name."""
        self._buffers.clear()
        for partition in self._files.values():
            partition.abort()
        self._files.clear()
