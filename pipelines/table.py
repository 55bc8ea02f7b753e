"""Commit step: published Parquet files -> their dataset's Delta table (deltalake, delta-rs), so readers see whole
commits and nothing else.

Each dataset (``articles``, ``duplicates``, ``rejects``) is a Delta table at ``<ARCHIVE_URI>/<dataset>/``,
partitioned by ``dt``. The data path stays pyarrow's ``ParquetWriter`` and the store's verified publish
(``storage.py``, boto3's managed transfer on S3): a file is written and uploaded whole first, then this step
commits it, one add action per file with its statistics, in one Delta commit. Handing the rows to
``write_deltalake`` instead would drop what the data path guarantees (the spool that survives an unreachable
store, the SHA-256 and ETag verification, Arrow batches flushed as row groups while the crawl goes on) for no
gain in memory.

Every commit of a run carries an application transaction (``txn``: app id = the crawl id, version = the run's
commit number for that table), so a commit that is retried after an error that hid its success is never applied
twice: ``commit`` checks the table's transaction version first. A published file that was never committed (a
crash in between) is not in the table: no reader sees it, and ``vacuum`` removes it.

Concurrent writers (overlapping runs, several crawl workers, compaction) are safe through delta-rs's optimistic
concurrency: a commit that finds its version taken reads the new commits and tries the next version; appends
never conflict with each other. On a folder the commit file is created with an atomic no-replace rename; on S3
with a conditional PUT (``If-None-Match``), no DynamoDB lock.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions

from pipelines.exceptions import ArchiveError, SchemaMismatch
from pipelines.parquet import check_schema
from pipelines.storage import redact

logger = logging.getLogger(__name__)

PARTITION = "dt"
#: columns without statistics in the table's log: long texts and lists (their min/max skip nothing, and cost log)
NO_STATS = frozenset({"body", "title", "description", "url", "canonical_url", "source_url", "image_url",
                      "published_at_raw", "modified_at_raw", "http_etag", "http_last_modified", "detail",
                      "duplicate_of_url"})
COMMIT_RETRIES = 30  #: delta-rs's retries of a commit whose version another writer took


class TableUnusable(ArchiveError, OSError):
    """A dataset's table cannot be opened or created where the archive says it is (refused at start-up)."""


class CommitError(ArchiveError, RuntimeError):
    """A commit to a dataset's table failed (the files it names stay published, uncommitted, invisible)."""


def table_schema(schema: pa.Schema) -> pa.Schema:
    """A dataset's schema as its table's: the columns of the files, then the partition column ``dt``."""
    return pa.schema([*schema, pa.field(PARTITION, pa.string(), nullable=False,
                                        metadata={b"description": b"UTC date of the row, YYYY-MM-DD (partition)"})],
                     metadata=schema.metadata)


@dataclass(frozen=True, slots=True)
class TableFile:
    """A published data file, as its table's log records it."""

    path: str  #: relative to the table root: dt=YYYY-MM-DD/<name>.parquet
    size: int
    rows: int
    dt: str
    stats: str  #: Delta statistics JSON: numRecords, minValues, maxValues, nullCount
    modification_time: int  #: ms since the epoch

    def action(self) -> AddAction:
        return AddAction(self.path, self.size, {PARTITION: self.dt}, self.modification_time, True, self.stats)


def table_file(local_path: Path, key: str, *, size: int, rows: int) -> TableFile:
    """The add action's content for the file at ``local_path``, to be published under ``key``
    (``<dataset>/dt=<day>/<name>.parquet``): its statistics are read from its footer."""
    path = key.split("/", 1)[1]
    day = path.split("/", 1)[0].removeprefix(f"{PARTITION}=")
    return TableFile(path=path, size=size, rows=rows, dt=day, stats=file_stats(local_path),
                     modification_time=int(time.time() * 1000))


def legacy_table_files(store, dataset: str, schema: pa.Schema) -> list[TableFile]:
    """The data files an older release left under ``<dataset>/`` (plain Parquet, no table), as add actions: the
    first version of the table that converts the archive in place. Their statistics come from their footers (a
    ranged read of each on S3); a file whose columns are not the dataset's (or an older version of them) is
    refused (``SchemaMismatch``) before anything is committed."""
    files = []
    for key in store.list(f"{dataset}/"):
        if not key.endswith(".parquet") or "/_delta_log/" in key or "/dt=" not in key:
            continue
        with store.open_input(key) as source:
            size = source.seek(0, io.SEEK_END)
            footer = pq.ParquetFile(source)
            check_schema(footer.schema_arrow, schema, key)
            rows = footer.metadata.num_rows
            stats = file_stats(source)
        path = key.split("/", 1)[1]
        files.append(TableFile(path=path, size=size, rows=rows, dt=path.split("/", 1)[0].removeprefix(f"{PARTITION}="),
                               stats=stats, modification_time=int(time.time() * 1000)))
    return files


def table_keys(tables: dict[str, "DatasetTable"]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Store keys (``<dataset>/<path>``) of the data files in each table's current version, and those versions."""
    keys, versions = {}, {}
    for dataset, table in tables.items():
        delta = table.delta()
        versions[dataset] = delta.version()
        keys[dataset] = sorted(f"{dataset}/{path}" for path in add_actions(delta).column("path").to_pylist())
    return keys, versions


def file_stats(path) -> str:
    """Delta statistics of a Parquet file (a path or a seekable file) from its footer: row count, and per top-level
    column with statistics in every row group, its null count and min/max (timestamps at millisecond precision,
    min rounded down and max up, so skipping on them stays exact)."""
    metadata = pq.ParquetFile(path).metadata
    schema = metadata.schema.to_arrow_schema()
    mins, maxes, nulls = {}, {}, {}
    for index, field in enumerate(schema):
        if field.name in NO_STATS or pa.types.is_nested(field.type):
            continue
        columns = [metadata.row_group(g).column(index) for g in range(metadata.num_row_groups)]
        statistics = [column.statistics for column in columns]
        if not statistics or any(s is None or not s.has_null_count for s in statistics):
            continue
        nulls[field.name] = sum(s.null_count for s in statistics)
        with_values = [s for s in statistics if s.has_min_max]
        if with_values and len(with_values) + sum(s.null_count == s.num_values for s in statistics if not s.has_min_max) \
                == len(statistics):
            mins[field.name] = _stat_value(min(s.min for s in with_values), field.type, up=False)
            maxes[field.name] = _stat_value(max(s.max for s in with_values), field.type, up=True)
    return json.dumps({"numRecords": metadata.num_rows, "minValues": mins, "maxValues": maxes, "nullCount": nulls},
                      separators=(",", ":"))


def _stat_value(value, type_: pa.DataType, *, up: bool):
    if pa.types.is_timestamp(type_):
        instant = value if isinstance(value, datetime) else datetime.fromtimestamp(value / 1e6, timezone.utc)
        instant = instant.astimezone(timezone.utc)
        truncated = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
        if up and truncated != instant:
            truncated += timedelta(milliseconds=1)
        return truncated.strftime("%Y-%m-%dT%H:%M:%S.") + f"{truncated.microsecond // 1000:03d}Z"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class DatasetTable:
    """One dataset's Delta table in the archive: created (or converted) on first use, then committed to."""

    def __init__(self, uri: str, dataset: str, schema: pa.Schema, storage_options: dict[str, str] | None = None) -> None:
        self.uri = uri
        self.dataset = dataset
        self.schema = table_schema(schema)
        self.storage_options = storage_options or {}
        self._table: DeltaTable | None = None

    # --- opening ----------------------------------------------------------------------------------------------

    def open(self, *, legacy_files=None) -> DeltaTable:
        """The table, created when missing, its schema evolved when the dataset gained nullable columns; a schema
        it cannot take is refused (``SchemaMismatch``). ``legacy_files``: when the table does not exist yet, the
        ``TableFile`` of every data file an older release left under the dataset's folder, committed as the table's
        first version (the archive converted in place)."""
        try:
            try:
                table = DeltaTable(self.uri, storage_options=self.storage_options)
            except TableNotFoundError:
                table = self._create(list(legacy_files() if legacy_files else []))
        except (DeltaError, OSError) as exc:
            raise TableUnusable(f"the {self.dataset} table at {redact(self.uri)} cannot be opened: "
                                f"{redact(str(exc)).splitlines()[0]}") from None
        self._evolve(table)
        self._table = table
        return table

    def _create(self, files: list[TableFile]) -> DeltaTable:
        properties = CommitProperties(custom_metadata={"news_archive.operation": "convert" if files else "create",
                                                       "news_archive.files": len(files)})
        try:
            create_table_with_add_actions(
                self.uri, Schema.from_arrow(self.schema), [f.action() for f in files], mode="error",
                partition_by=[PARTITION], name=self.dataset, storage_options=self.storage_options,
                commit_properties=properties,
            )
        except DeltaError as exc:  # another writer created it first
            logger.info("table %s created meanwhile by another writer (%s)", self.uri, exc)
        if files:
            logger.info("converted %d data files of %s into a Delta table", len(files), self.dataset)
        return DeltaTable(self.uri, storage_options=self.storage_options)

    def check(self, *, legacy_files=None) -> None:
        """Read-only, at start-up: refuse a location that is not a table, or a table that cannot take this
        release's schema (``SchemaMismatch``). A table that does not exist yet is fine (``open`` creates it), if
        the data files an older release left where it will be (``legacy_files()``, which checks them) can be
        converted."""
        try:
            table = DeltaTable(self.uri, storage_options=self.storage_options)
        except TableNotFoundError:
            if legacy_files is not None:
                legacy_files()
            return
        except (DeltaError, OSError) as exc:
            raise TableUnusable(f"the {self.dataset} table at {redact(self.uri)} cannot be opened: "
                                f"{redact(str(exc)).splitlines()[0]}") from None
        self._missing_columns(table)

    def _evolve(self, table: DeltaTable) -> None:
        """Add the nullable columns the dataset has and the table lacks, in one commit; refuse anything else."""
        missing = self._missing_columns(table)
        if missing:
            from deltalake import Field

            table.alter.add_columns([Field.from_arrow(field) for field in missing], commit_properties=CommitProperties(
                custom_metadata={"news_archive.operation": "add columns", "news_archive.columns": [f.name for f in missing]}))
            logger.info("%s table: added columns %s", self.dataset, [f.name for f in missing])

    def _missing_columns(self, table: DeltaTable) -> list[pa.Field]:
        """The dataset's columns the table lacks (all nullable); ``SchemaMismatch`` for any other difference."""
        found = pa.schema(table.schema().to_arrow())  # an arro3 schema, through the Arrow C interface
        have = {field.name: field for field in found}
        wanted = {field.name: field for field in self.schema}
        problems = []
        for name, field in have.items():
            if name not in wanted:
                problems.append(f"column {name!r} is in the table but not in the dataset's schema")
            elif not _same_type(field.type, wanted[name].type):
                problems.append(f"column {name!r} is {field.type} in the table, {wanted[name].type} in the schema")
            elif field.nullable != wanted[name].nullable:
                problems.append(f"column {name!r} is {'nullable' if field.nullable else 'not null'} in the table")
        missing = [wanted[name] for name in wanted if name not in have]
        problems += [f"new column {f.name!r} must be nullable" for f in missing if not f.nullable]
        if problems:
            raise SchemaMismatch(f"{self.dataset} table at {redact(self.uri)} cannot take this release's schema: "
                                 + "; ".join(problems) + " (only nullable columns may be added)")
        return missing

    # --- commits ----------------------------------------------------------------------------------------------

    def delta(self) -> DeltaTable:
        """The opened table at its latest version."""
        table = self._table or self.open()
        table.update_incremental()
        return table

    def transaction_version(self, app_id: str) -> int:
        """The last commit number the writer ``app_id`` committed to this table (0: none)."""
        table = self._table or self.open()
        table.update_incremental()
        return table.transaction_version(app_id) or 0

    def commit(self, files: list[TableFile], *, app_id: str, version: int, metadata: dict | None = None) -> bool:
        """Commit ``files`` as commit number ``version`` of ``app_id``: True, or False when that commit was made
        already (a retry, a recovery). Raises ``CommitError``."""
        if not files:
            return False
        try:
            if self.transaction_version(app_id) >= version:
                logger.info("%s commit %s/%d is in the table already", self.dataset, app_id, version)
                return False
            table = self._table
            now = int(time.time() * 1000)
            table.create_write_transaction(
                [f.action() for f in files], mode="append", schema=Schema.from_arrow(self.schema),
                partition_by=[PARTITION],
                commit_properties=CommitProperties(
                    custom_metadata={"news_archive.crawl_id": app_id, "news_archive.commit": version,
                                     "news_archive.files": len(files), "news_archive.rows": sum(f.rows for f in files),
                                     **(metadata or {})},
                    app_transactions=[Transaction(app_id, version, now)], max_commit_retries=COMMIT_RETRIES),
            )
            return True
        except (DeltaError, OSError) as exc:
            try:  # did it land before the error? then it counts, once
                if self.transaction_version(app_id) >= version:
                    return True
            except (DeltaError, OSError):
                pass
            raise CommitError(f"could not commit {len(files)} file(s) to the {self.dataset} table: {exc}") from exc

    def paths(self) -> set[str]:
        """Paths (relative to the table root) of the data files in the table's current version."""
        table = self._table or self.open()
        table.update_incremental()
        return set(add_actions(table).column("path").to_pylist())


def add_actions(table: DeltaTable) -> pa.Table:
    """The table's add actions (one row per data file: path, size_bytes, num_records, partition.dt...) as pyarrow."""
    return pa.table(table.get_add_actions(flatten=True))


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Types equal as Delta stores them (a list's element field name aside)."""
    if pa.types.is_list(a) and pa.types.is_list(b):
        return _same_type(a.value_type, b.value_type)
    return a == b
