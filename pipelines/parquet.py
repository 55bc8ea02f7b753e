"""Parquet step: records -> closed, Hive-partitioned Parquet files in a spool folder.

``DatasetWriter`` is the core (no Scrapy): it buffers rows of one dataset per
``dt`` partition, writes a row group when the buffer reaches its row or byte
budget, and rolls the file when the file reaches its own: a file holds at most
``max_file_rows`` rows (the row group that reaches it is cut to fit), and is
rolled once its row groups add up to about ``max_file_bytes`` (an estimate
from the Arrow batches, checked after each row group). Rows are held as
Python objects only a few hundred at a time: they are converted to Arrow
batches as they come (a row group of Python strings and dicts takes several
times its Arrow size, and that peak grew with the row-group budget); a rolled file is
closed, hashed and handed to ``on_closed`` (the storage step), so memory and
local disk stay bounded however long the crawl. A file is written under a
``.inprogress`` name and renamed only once closed. Rows are converted with the
dataset's explicit schema, so a record of the wrong shape is refused before
anything is written.

A row already handed over can be amended until its file is closed
(``amend``: a Google News sitemap entry read after the row of its page was
written): the file is then rewritten row group by row group before it is
renamed, so a reader only ever sees the amended file.

An exception while a file is written (our own bug, a full or failing disk)
discards that file whole: its ``.inprogress`` name is deleted and its rows are
counted in ``discarded_rows``. They were never committed, so the next run
fetches their pages again; nothing half-written is ever handed on.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.exceptions import SchemaMismatch
from pipelines.storage import check_key, file_sha256
from schemas import dictionary_columns

logger = logging.getLogger(__name__)

_DT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class ClosedFile:
    """A complete Parquet file in the spool, ready to publish."""

    dataset: str
    key: str  #: <dataset>/dt=<YYYY-MM-DD>/<crawl_id>-<seq>.parquet
    path: Path
    rows: int
    sha256: str


def record_to_row(record: object, schema: pa.Schema) -> dict:
    """The record's value for every column of ``schema``; a missing attribute, or a field the schema has
    no column for (it would be silently dropped), is a schema mismatch."""
    if dataclasses.is_dataclass(record):
        extra = [f.name for f in dataclasses.fields(record) if f.name not in schema.names]
        if extra:
            raise SchemaMismatch(f"{type(record).__name__} has fields the dataset has no column for: {extra}")
    try:
        return {name: getattr(record, name) for name in schema.names}
    except AttributeError as exc:
        raise SchemaMismatch(f"{type(record).__name__} lacks a column of the dataset: {exc}") from exc


def check_file_schema(path: Path, schema: pa.Schema) -> None:
    """Refuse a Parquet file whose columns (names, types, nullability) are not ``schema``'s, in order; a file an
    older release wrote, with the first columns only and every column it lacks nullable, is the dataset's too
    (its table reads the missing columns as nulls)."""
    check_schema(pq.read_schema(path), schema, path.name)


def check_schema(found: pa.Schema, schema: pa.Schema, name: str) -> None:
    """``check_file_schema`` on a schema already read (a footer read over S3)."""
    older = pa.schema(list(schema)[: len(found)])
    if len(found) < len(schema) and found.equals(older, check_metadata=False) and all(
            field.nullable for field in list(schema)[len(found):]):
        return
    if not found.equals(schema, check_metadata=False):
        raise SchemaMismatch(f"{name} does not have the dataset's schema: "
                             f"{found.to_string(show_schema_metadata=False, show_field_metadata=False)!r}")


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


#: rows held as Python objects before they are converted to an Arrow batch (fewer when the row group is smaller)
BATCH_ROWS = 256
BATCH_BYTES = 2**20


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


class Amendments:
    """Changes to rows already handed to a writer, each found by the value of one column (``url``): ``changes``
    gets the row as a dict and returns the columns to set. Applied when the file holding the row is closed."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.changes: dict[object, Callable[[dict], dict]] = {}

    def __bool__(self) -> bool:
        return bool(self.changes)

    def apply(self, table: pa.Table) -> tuple[pa.Table, int]:
        keys = table.column(self.column).to_pylist()
        positions = [i for i, key in enumerate(keys) if key in self.changes]
        if not positions:
            return table, 0
        columns: dict[str, list] = {}
        for position, row in zip(positions, table.take(positions).to_pylist()):
            for name, value in self.changes[keys[position]](row).items():
                columns.setdefault(name, table.column(name).to_pylist())[position] = value
        for name, values in columns.items():
            index = table.schema.get_field_index(name)
            table = table.set_column(index, table.schema.field(index), pa.array(values, type=table.schema.field(index).type))
        return table, len(positions)


class _PartitionFile:
    """One open file of one partition."""

    def __init__(self, key: str, path: Path, schema: pa.Schema, compression: str, compression_level: int | None) -> None:
        self.key = key
        self.path = path
        self.inprogress = path.with_name(path.name + ".inprogress")
        self.inprogress.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.compression, self.compression_level = compression, compression_level
        try:
            self.writer = self._writer(self.inprogress)
        except Exception:  # a full disk can fail even the file's header
            self.inprogress.unlink(missing_ok=True)
            raise
        self.rows = 0
        self.bytes_estimate = 0

    def _writer(self, path: Path) -> pq.ParquetWriter:
        return pq.ParquetWriter(path, self.schema, compression=self.compression,
                                compression_level=self.compression_level, write_statistics=True,
                                use_dictionary=dictionary_columns(self.schema))

    def write(self, table: pa.Table) -> None:
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows

    def close(self, amendments: Amendments | None = None) -> tuple[Path, int]:
        """Close the file (its rows amended first, when there are amendments) under its final name; the rows
        amended."""
        self.writer.close()
        amended = self._amend(amendments) if amendments else 0
        self.inprogress.rename(self.path)
        return self.path, amended

    def _amend(self, amendments: Amendments) -> int:
        """Rewrite the file row group by row group (one in memory at a time), the amended rows changed."""
        rewritten = self.inprogress.with_name(self.inprogress.name + ".amending")
        amended = 0
        try:
            source = pq.ParquetFile(self.inprogress)
            writer = self._writer(rewritten)
            try:
                for group in range(source.num_row_groups):
                    table, count = amendments.apply(source.read_row_group(group))
                    amended += count
                    writer.write_table(table, row_group_size=max(table.num_rows, 1))
            finally:
                writer.close()
            rewritten.replace(self.inprogress)
        finally:
            rewritten.unlink(missing_ok=True)
        return amended

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
        row_group_bytes: int = 8 * 2**20,
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
        self._rows: dict[str, list[dict]] = {}  #: per dt: rows not yet converted
        self._rows_bytes: dict[str, int] = {}
        self._batches: dict[str, list[pa.Table]] = {}  #: per dt: converted rows of the next row group
        self._batch_rows: dict[str, int] = {}
        self._batch_bytes: dict[str, int] = {}
        self._convert_rows = min(BATCH_ROWS, row_group_rows)
        self._convert_bytes = min(BATCH_BYTES, row_group_bytes)
        self._files: dict[str, _PartitionFile] = {}
        self._generations: dict[str, int] = {}  #: per dt: files closed so far (the current file's number)
        self._amendments: dict[str, Amendments] = {}  #: per dt: changes to rows of the current file
        self.amended_rows = 0
        self._seq = 0
        self.rows_written = 0
        self.rejected_rows = 0  #: rows refused by the schema (a bug upstream; the run is marked failed)
        self.discarded_rows = 0  #: rows of files discarded because writing them failed (fetched again next run)

    def write(self, record: object, *, dt: str) -> None:
        """Add one record to partition ``dt`` (YYYY-MM-DD)."""
        if not _DT.fullmatch(dt):
            raise ValueError(f"partition dt must be YYYY-MM-DD, not {dt!r}")
        row = record_to_row(record, self.schema)
        rows = self._rows.setdefault(dt, [])
        rows.append(row)
        self._rows_bytes[dt] = self._rows_bytes.get(dt, 0) + _estimate_bytes(row)
        # the next row group ends at its own budget, or where the open file reaches max_file_rows: so a file
        # never holds more rows than that (its last row group is cut to fit)
        group_rows = min(self.row_group_rows, self.max_file_rows - self._file_rows(dt))
        pending = len(rows) + self._batch_rows.get(dt, 0)
        if len(rows) >= self._convert_rows or self._rows_bytes[dt] >= self._convert_bytes or pending >= group_rows:
            self._convert(dt)
            if self._batch_rows.get(dt, 0) >= group_rows or self._batch_bytes.get(dt, 0) >= self.row_group_bytes:
                self._flush(dt)

    def generation(self, dt: str) -> int:
        """Which file of partition ``dt`` the rows written now go into (it changes when that file is closed)."""
        return self._generations.get(dt, 0)

    def amend(self, dt: str, generation: int, key: object, changes: Callable[[dict], dict], *,
              column: str = "url") -> bool:
        """Change the row of ``dt`` whose ``column`` is ``key``, written while ``generation`` was current, when its
        file is closed; False when that file is already closed (too late)."""
        if generation != self.generation(dt):
            return False
        self._amendments.setdefault(dt, Amendments(column)).changes[key] = changes
        return True

    def _file_rows(self, dt: str) -> int:
        partition = self._files.get(dt)
        return partition.rows if partition is not None else 0

    def _convert(self, dt: str) -> None:
        """The rows of ``dt`` held as Python objects -> one Arrow batch of the next row group."""
        rows = self._rows.pop(dt, [])
        self._rows_bytes.pop(dt, None)
        if not rows:
            return
        try:
            try:
                table = rows_to_table(rows, self.schema)
            except SchemaMismatch:
                table = self._keep_valid_rows(rows)
        except Exception:
            self._discard(dt, len(rows))
            raise
        self._batches.setdefault(dt, []).append(table)
        self._batch_rows[dt] = self._batch_rows.get(dt, 0) + table.num_rows
        self._batch_bytes[dt] = self._batch_bytes.get(dt, 0) + table.nbytes

    def _flush(self, dt: str) -> None:
        """Write the converted rows of ``dt`` as one row group; roll the file when it is full."""
        batches = self._batches.pop(dt, [])
        rows = self._batch_rows.pop(dt, 0)
        size = self._batch_bytes.pop(dt, 0)
        if not rows:
            return
        try:
            partition = self._files.get(dt) or self._open(dt)
            partition.write(pa.concat_tables(batches))
        except Exception:
            self._discard(dt, rows)
            raise
        partition.bytes_estimate += size
        self.rows_written += rows
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

    def _open(self, dt: str) -> _PartitionFile:
        self._seq += 1
        key = check_key(f"{self.dataset}/dt={dt}/{self.file_prefix}-{self._seq:05d}.parquet")
        partition = _PartitionFile(key, self.spool_dir / key, self.schema, self.compression, self.compression_level)
        self._files[dt] = partition
        return partition

    def _discard(self, dt: str, unwritten: int = 0) -> None:
        """Delete the open file of ``dt`` (and count its rows): it is never handed on half-written."""
        partition = self._files.pop(dt, None)
        rows = unwritten + (partition.rows if partition is not None else 0) + self._batch_rows.pop(dt, 0)
        self._batches.pop(dt, None)
        self._batch_bytes.pop(dt, None)
        if partition is not None:
            partition.abort()
        self.discarded_rows += rows
        self._amendments.pop(dt, None)
        self._generations[dt] = self.generation(dt) + 1
        logger.error("%s: writing dt=%s failed; its unfinished file (%d rows) is discarded", self.dataset, dt, rows)

    def _roll(self, dt: str) -> None:
        partition = self._files[dt]
        self._generations[dt] = self.generation(dt) + 1
        amendments = self._amendments.pop(dt, None)
        try:
            path, amended = partition.close(amendments)
            self.amended_rows += amended
            sha256 = file_sha256(path)
        except Exception:
            path = partition.path
            path.unlink(missing_ok=True)
            self._discard(dt)
            raise
        del self._files[dt]
        self.on_closed(ClosedFile(self.dataset, partition.key, path, partition.rows, sha256))

    def close(self) -> None:
        """Write what is buffered and close every open file (each handed to ``on_closed``). A partition whose
        file fails is discarded, the others are still closed, and the first error is raised at the end."""
        error = None
        for dt in sorted(set(self._rows) | set(self._batches) | set(self._files)):
            try:
                self._convert(dt)
                self._flush(dt)
                if dt in self._files:
                    self._roll(dt)
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error

    def abort(self) -> None:
        """Discard open files and buffers: nothing half-written is left under a final name."""
        self.discarded_rows += sum(len(rows) for rows in self._rows.values()) + sum(self._batch_rows.values())
        for buffer in (self._rows, self._rows_bytes, self._batches, self._batch_rows, self._batch_bytes):
            buffer.clear()
        for dt in list(self._files):
            self._discard(dt)
