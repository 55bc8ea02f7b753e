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

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from scrapy import signals

from crawler.items import ArticleRecord, DuplicateRecord, RejectRecord
from pipelines import stats
from pipelines.exceptions import ArchiveConfigError, SchemaMismatch
from pipelines.storage import file_sha256
from schemas import DATASETS

logger = logging.getLogger(__name__)

_DATASET_OF = {ArticleRecord: "articles", DuplicateRecord: "duplicates", RejectRecord: "rejects"}


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


class ParquetPipeline:
    """Scrapy shell: records -> ``DatasetWriter`` per dataset -> store; the run manifest last.

    Every closed file is published as soon as it rolls; a file that cannot be
    published stays in the spool and the run is marked failed (the command
    then exits non-zero). The manifest is written at ``spider_closed``, after
    every file, so its presence means the run's files are all there.
    """

    def __init__(self, *, store, crawl_id: str, spool_dir: Path, writer_options: dict, settings_record: dict,
                 stats_collector=None) -> None:
        self.store = store
        self.crawl_id = crawl_id
        self.spool_dir = spool_dir
        self.writer_options = writer_options
        self.settings_record = settings_record
        self.stats = stats_collector
        self.writers: dict[str, DatasetWriter] = {}
        self.published: list[tuple[str, object]] = []
        self.errors: list[str] = []
        self.started_at = datetime.now(timezone.utc)
        self.spider_args: dict = {}

    @classmethod
    def from_crawler(cls, crawler):
        from crawler.signals import archive_records
        from pipelines.manifest import recorded_settings
        from pipelines.storage import store_from_uri

        settings = crawler.settings
        crawl_id = settings["ARCHIVE_CRAWL_ID"]
        if not crawl_id:
            raise ArchiveConfigError("ARCHIVE_CRAWL_ID is not set (the news spider sets it)")
        store = store_from_uri(settings["ARCHIVE_URI"])
        store.check_writable()
        spool_root = Path(settings["ARCHIVE_SPOOL_DIR"]) if settings.get("ARCHIVE_SPOOL_DIR") else store.default_spool_dir()
        pipeline = cls(
            store=store,
            crawl_id=crawl_id,
            spool_dir=spool_root / crawl_id,
            writer_options={
                "max_file_rows": settings.getint("ARCHIVE_MAX_FILE_ROWS"),
                "max_file_bytes": settings.getint("ARCHIVE_MAX_FILE_BYTES"),
                "row_group_rows": settings.getint("ARCHIVE_ROW_GROUP_ROWS"),
                "row_group_bytes": settings.getint("ARCHIVE_ROW_GROUP_BYTES"),
                "compression": settings["ARCHIVE_COMPRESSION"],
            },
            settings_record=recorded_settings(settings),
            stats_collector=crawler.stats,
        )
        crawler.signals.connect(pipeline.write_records, signal=archive_records)
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    def open_spider(self, spider=None) -> None:
        self.started_at = datetime.now(timezone.utc)
        self._set(stats.CRAWL_ID, self.crawl_id)
        self._set(stats.STATUS, "running")
        for dataset, schema in DATASETS.items():
            self.writers[dataset] = DatasetWriter(
                dataset=dataset, schema=schema, spool_dir=self.spool_dir, file_prefix=self.crawl_id,
                on_closed=self._publish, **self.writer_options,
            )

    def process_item(self, item):
        dataset = _DATASET_OF.get(type(item))
        if dataset is not None:
            self._write(dataset, item)
        return item

    def write_records(self, records) -> None:
        for record in records:
            self._write(_DATASET_OF[type(record)], record)

    def _write(self, dataset: str, record) -> None:
        when = getattr(record, "fetched_at", None) or getattr(record, "detected_at")
        writer = self.writers[dataset]
        try:
            writer.write(record, dt=when.astimezone(timezone.utc).strftime("%Y-%m-%d"))
        except Exception as exc:  # our own bug: record it, fail the run, keep crawling
            logger.exception("could not write a %s row", dataset)
            self._fail(f"write {dataset}: {type(exc).__name__}: {exc}")
        else:
            self._inc(stats.rows(dataset))

    def _publish(self, closed: ClosedFile) -> None:
        try:
            published = self.store.publish(closed.path, closed.key, rows=closed.rows, sha256=closed.sha256)
        except Exception as exc:
            logger.exception("could not publish %s; it stays in the spool at %s", closed.key, closed.path)
            self._inc(f"{stats.PREFIX}/upload/failed")
            self._fail(f"publish {closed.key}: {type(exc).__name__}: {exc}")
            return
        self.published.append((closed.dataset, published))
        self._inc(stats.FILES_PUBLISHED)
        self._inc(stats.BYTES_PUBLISHED, published.bytes)
        logger.info("published %s (%d rows, %d bytes)", published.key, published.rows, published.bytes)

    def close_spider(self, spider=None) -> None:
        for dataset, writer in self.writers.items():
            try:
                writer.close()
            except Exception as exc:
                logger.exception("could not close the %s file", dataset)
                writer.abort()
                self._fail(f"close {dataset}: {type(exc).__name__}: {exc}")
            if writer.rejected_rows:
                self._fail(f"{dataset}: {writer.rejected_rows} row(s) refused by the schema")
        _remove_empty_dirs(self.spool_dir)

    def spider_closed(self, spider, reason: str) -> None:
        from pipelines.manifest import build_manifest, manifest_bytes

        self.spider_args = dict(getattr(spider, "archive_args", {}) or {})
        status = "failed" if self.errors else ("complete" if reason == "finished" else "partial")
        self._set(stats.STATUS, status)
        manifest = build_manifest(
            crawl_id=self.crawl_id,
            status=status,
            started_at=self.started_at,
            finished_at=datetime.now(timezone.utc),
            finish_reason=reason,
            settings=self.settings_record,
            spider_args=self.spider_args,
            stat_values=dict(self.stats.get_stats()) if self.stats is not None else {},
            files=self.published,
            errors=self.errors,
        )
        try:
            self.store.put_bytes(f"runs/{self.crawl_id}.json", manifest_bytes(manifest))
        except Exception as exc:
            logger.exception("could not write the run manifest")
            self.errors.append(f"manifest: {type(exc).__name__}: {exc}")
            self._set(stats.STATUS, "failed")
            return
        logger.info("run %s %s: %s", self.crawl_id, status, json.dumps(manifest["counts"], sort_keys=True))

    def _fail(self, message: str) -> None:
        self.errors.append(message)
        self._inc(stats.WRITE_FAILED)

    def _inc(self, name: str, count: int = 1) -> None:
        if self.stats is not None:
            self.stats.inc_value(name, count)

    def _set(self, name: str, value) -> None:
        if self.stats is not None:
            self.stats.set_value(name, value)


def _remove_empty_dirs(root: Path) -> None:
    """Remove ``root`` and its sub-folders when they hold no file (a spool with nothing left to publish)."""
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
    try:
        root.rmdir()
    except OSError:
        pass
