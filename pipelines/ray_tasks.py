"""Batch stages as Ray tasks, on any Ray cluster, into one archive: re-extraction and backfill one task per WARC
file, the dedup stage's reading one task per partition.

``news-archive reextract --ray`` (or with ``RAY_ADDRESS`` set) plans on the driver which WARC files still hold
records the current extractor has not judged, then runs one task per such file. A task is the project's own
re-extraction of that one file (``news-archive reextract --warc-file KEY`` in a process of its own, so a task
is exactly what a local run does: the same extraction, dedup and table commits, its manifest in ``runs/``), and
commits its own rows under its own writer id. Files with nothing left to do are skipped, so a rerun after a
stop or a failed task does only what is missing (datatrove's completion markers; here the table itself says
what is done). At most twice the cluster's CPUs tasks are in flight (``ray.wait``).

``news-archive backfill --ray`` runs one task per source WARC file (a CC-NEWS month: per file of its listing)
that no complete backfill has read (``state/backfill/``); each task is ``news-archive backfill FILE``. Two tasks
that meet one story in different files at once each archive it: the dedup stage then keeps the first.

The dedup stage (``news-archive dedup --ray``) reads the window's ``dt`` partitions of the articles table as
one task each (the few columns it needs, no bodies), then orders, searches and commits on the driver exactly as
a local pass does: the same rows in, the same copies out.

Without an address Ray starts a local cluster on 127.0.0.1 (never another interface); usage statistics are off
unless ``RAY_USAGE_STATS_ENABLED`` says otherwise. The workers reach the archive with their own credentials
(an IAM role for the pods, or the environment), as crawl workers do.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from pipelines.archive import dataset_tables, open_store
from pipelines.dedup_pass import read_partition
from pipelines.extract import extractor_version
from pipelines.reextract import Selection, plan_warc_files, planned_records

logger = logging.getLogger(__name__)

#: one re-extraction task: the crawler's process, its extraction in one worker process (a per-page time limit and
#: crash isolation, as locally)
TASK_SETTINGS = ["EXTRACT_WORKERS=1"]
#: with "0", Ray's node address is the loopback one (ray._private.services.get_node_ip_address)
LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True, slots=True)
class TaskResult:
    unit: str  #: the WARC file (key in the archive)
    crawl_id: str  #: the task's run (its manifest: runs/<crawl_id>.json)
    returncode: int
    output: str  #: the end of its stdout and stderr


def connect(address: str | None = None, *, num_cpus: int | None = None):
    """Connect to the Ray cluster at ``address`` (``RAY_ADDRESS`` when None), or start a local one on loopback."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address or address.split(":")[0] in ("127.0.0.1", "localhost"):
        # a cluster of this machine only (started here, or a loopback one this process connects to): Ray's own switch for one that stays on 127.0.0.1 (by default its GCS and
        # raylet bind the address of the interface that routes outward, even when told 127.0.0.1); read when
        # ray is imported, and inherited by the processes it starts
        os.environ.setdefault(LOCAL_ONLY, "0")
    import ray

    if address:
        return ray.init(address=address, log_to_driver=False)
    return ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def task_crawl_id(stage: str, unit: str, now: datetime | None = None) -> str:
    """A task's run id: sortable by time, one per unit (``20261202T203000Z-reextract-3f9a1c2b``)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{stage}-{hashlib.sha256(unit.encode()).hexdigest()[:8]}"


def plan_reextract_tasks(store, selection: Selection, *, favor_precision: bool = False) -> tuple[list[str], list[str]]:
    """The WARC files with records still to re-extract by the current extractor, and those with none left."""
    tables = dataset_tables(store)
    current = extractor_version(favor_precision=favor_precision)
    todo, skipped = [], []
    for name in plan_warc_files(tables, selection):
        (todo if planned_records(tables, name, selection, current_version=current) else skipped).append(name)
    return todo, skipped


def run_command(command: list[str]) -> tuple[int, str]:
    """In a Ray worker: run one task's command; its exit code and the end of its output."""
    completed = subprocess.run(command, capture_output=True, text=True)
    return completed.returncode, (completed.stdout[-2000:] + completed.stderr[-3000:])


def reextract_command(archive_uri: str, warc_file: str, crawl_id: str, arguments: list[str]) -> list[str]:
    """``news-archive reextract`` of one WARC file, as a task runs it."""
    command = [sys.executable, "-m", "crawler.cli", "reextract", archive_uri, "--warc-file", warc_file, *arguments,
               "-s", f"ARCHIVE_CRAWL_ID={crawl_id}"]
    for setting in TASK_SETTINGS:
        command += ["-s", setting]
    return command


def archive_tables(archive_uri: str, overrides: list[str]):
    """In a Ray worker: the archive's tables, opened with the project's settings, ``-s`` ``overrides`` and the
    worker's own credentials (never sent with the task)."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    for override in overrides:
        name, _, value = override.partition("=")
        settings.set(name, value, priority="cmdline")
    settings.set("ARCHIVE_URI", archive_uri, priority="cmdline")
    return dataset_tables(open_store(settings))


def read_articles_partition(archive_uri: str, overrides: list[str], dt: str):
    """A Ray task: one partition of the articles table, the dedup stage's columns."""
    return read_partition(archive_tables(archive_uri, overrides)["articles"], dt)


def partition_reader(archive_uri: str, overrides: list[str], *, address: str | None = None,
                     num_cpus: int | None = None):
    """``read_partitions`` for ``dedup_pass``: one Ray task per partition, the tables in partition order."""
    def read_partitions(days: list[str]):
        connect(address, num_cpus=num_cpus)  # before ray is imported here: it reads the loopback switch
        import ray

        try:
            remote = ray.remote(num_cpus=1, max_retries=1)(read_articles_partition)
            return ray.get([remote.remote(archive_uri, overrides, day) for day in days])
        finally:
            ray.shutdown()
    return read_partitions


def backfill_command(archive_uri: str, source: str, crawl_id: str, arguments: list[str]) -> list[str]:
    """``news-archive backfill`` of one WARC file, as a task runs it."""
    command = [sys.executable, "-m", "crawler.cli", "backfill", source, "--archive", archive_uri, *arguments,
               "-s", f"ARCHIVE_CRAWL_ID={crawl_id}"]
    for setting in TASK_SETTINGS:
        command += ["-s", setting]
    return command


def run_tasks(commands: dict[str, tuple[str, list[str]]], *, address: str | None = None,
              num_cpus: int | None = None) -> list[TaskResult]:
    """Run ``commands`` (unit -> (crawl id, command)) as Ray tasks, one CPU each, a bounded number in flight."""
    connect(address, num_cpus=num_cpus)  # before ray is imported here: it reads the loopback switch
    import ray

    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_command)
        limit = max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending: dict = {}
        results: list[TaskResult] = []
        queue = list(commands.items())
        while queue or pending:
            while queue and len(pending) < limit:
                unit, (crawl_id, command) = queue.pop(0)
                pending[remote.remote(command)] = (unit, crawl_id)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                unit, crawl_id = pending.pop(ref)
                returncode, output = ray.get(ref)
                results.append(TaskResult(unit, crawl_id, returncode, output))
                logger.info("task %s (%s): exit %d", unit, crawl_id, returncode)
        return sorted(results, key=lambda result: result.unit)
    finally:
        ray.shutdown()
