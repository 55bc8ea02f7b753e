"""Compaction: the small files of closed partitions rewritten into a few large ones, and vacuum.

Scheduled runs every 15 minutes add a file per run per dataset and partition. ``compact_tables`` rewrites each
closed partition (a day at least ``closed_after_days`` behind today, UTC) that holds more than one file into
files near ``target_bytes``, with delta-rs's optimize, in one commit per partition (data unchanged:
``dataChange=false``). A crawl appending meanwhile loses nothing: an optimize commit removes only the files it
read, and delta-rs retries it past commits that landed first. ``vacuum_tables`` deletes, once older than
``retain_hours``, the files no version of the table needs any more: those compaction replaced, and published files
that were never committed (a run killed between publish and commit). Versions newer than that stay readable
(time travel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from deltalake import CommitProperties, WriterProperties

from pipelines.table import PARTITION, DatasetTable, add_actions

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionCompaction:
    """What compacting one partition of one table did."""

    dataset: str
    dt: str
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    table_version: int  #: the table's version after the compaction's commit


def closed_partitions(table: DatasetTable, *, closed_after_days: int, today: date | None = None) -> dict[str, int]:
    """Closed partitions (``dt`` at least ``closed_after_days`` behind ``today``) that hold more than one file:
    dt -> number of files."""
    today = today or datetime.now(timezone.utc).date()
    last = (today - timedelta(days=closed_after_days)).isoformat()
    counts: dict[str, int] = {}
    for day in add_actions(table.delta()).column(f"partition.{PARTITION}").to_pylist():
        if day <= last:
            counts[day] = counts.get(day, 0) + 1
    return {day: count for day, count in sorted(counts.items()) if count > 1}


def compact_tables(tables: dict[str, DatasetTable], *, target_bytes: int, closed_after_days: int,
                   compression: str = "zstd", run_id: str = "compact") -> list[PartitionCompaction]:
    """Compact every closed partition of every table, one commit per partition."""
    done = []
    for dataset, table in tables.items():
        for day, files in closed_partitions(table, closed_after_days=closed_after_days).items():
            delta = table.delta()
            before = _partition_sizes(delta, day)
            metrics = delta.optimize.compact(
                partition_filters=[(PARTITION, "=", day)], target_size=target_bytes,
                writer_properties=WriterProperties(compression=compression.upper()),
                commit_properties=CommitProperties(custom_metadata={
                    "news_archive.operation": "compact", "news_archive.crawl_id": run_id, PARTITION: day}),
            )
            delta.update_incremental()
            after = _partition_sizes(delta, day)
            done.append(PartitionCompaction(dataset=dataset, dt=day, files_before=len(before), files_after=len(after),
                                            bytes_before=sum(before), bytes_after=sum(after),
                                            table_version=delta.version()))
            logger.info("%s dt=%s: %d files (%d bytes) rewritten into %d (%d bytes); %s", dataset, day, len(before),
                        sum(before), len(after), sum(after), {k: metrics[k] for k in ("numFilesAdded", "numFilesRemoved")})
    return done


def vacuum_tables(tables: dict[str, DatasetTable], *, retain_hours: int, dry_run: bool = False) -> dict[str, list[str]]:
    """Delete the files of each table that no version kept for ``retain_hours`` needs, and the files that were
    published but never committed, once that old: dataset -> the files removed (or that would be)."""
    removed = {}
    for dataset, table in tables.items():
        removed[dataset] = table.delta().vacuum(retention_hours=retain_hours, dry_run=dry_run,
                                                enforce_retention_duration=False, full=True)
    return removed


def _partition_sizes(delta, day: str) -> list[int]:
    actions = add_actions(delta)
    days = actions.column(f"partition.{PARTITION}").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    return [size for d, size in zip(days, sizes) if d == day]
