"""The archive step's Scrapy shell: records -> Parquet files (parquet.py) -> the store (storage.py), the
run manifest last (manifest.py), and the leftovers of earlier runs first (spool.py).

Closed files are published in background threads as soon as they roll, so a
crawl of hours holds at most a few files on local disk, and the reactor keeps
fetching while uploads run. A file that cannot be published stays in the spool
and the run is marked failed (the ``crawl`` command then exits non-zero); the
next run publishes it under the same key before it crawls. The manifest is
written after every file, so its presence means the run's files are all there;
when it cannot be written to the store it is kept in the spool with the
files, and published by the next run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.parquet as pq
from scrapy import signals

from pipelines.publisher import LateSitemapNews, amend_with
from pipelines.records import (ArticleRecord, DiscoveredDocument, DuplicateRecord, RejectRecord, SitemapNewsSeen,
                               WarcFileRecord)
from pipelines import spool as spooling
from pipelines import stats
from pipelines.exceptions import ArchiveConfigError
from pipelines.manifest import build_manifest, manifest_bytes, recorded_settings
from pipelines.parquet import ClosedFile, DatasetWriter, check_file_schema
from pipelines.site_counts import SiteCounts
from pipelines.state import (DISCOVERY_PREFIX, EarlierRuns, discovery_bytes, discovery_entry, is_transient_failure,
                             load_discovery, load_state, write_state_snapshot)
from pipelines.storage import PublishedFile, check_crawl_id, file_sha256, redact
from pipelines.stores import store_from_uri
from pipelines.warc import ClosedWarc, WarcFile, cdxj_responses, write_cdxj
from pipelines.table import CommitError, DatasetTable, TableFile, legacy_table_files, table_file, table_keys
from schemas import DATASETS

logger = logging.getLogger(__name__)

_DATASET_OF = {ArticleRecord: "articles", DuplicateRecord: "duplicates", RejectRecord: "rejects"}
WARC_DATASET = "warc_files"
BACKFILL_PREFIX = "state/backfill/"  #: per complete backfill: the WARC files it read to the end


def s3_options_from_settings(settings):
    from pipelines.s3_store import S3Options

    return S3Options(
        endpoint_url=settings.get("ARCHIVE_S3_ENDPOINT_URL") or None,
        region=settings.get("ARCHIVE_S3_REGION") or None,
        addressing_style=settings.get("ARCHIVE_S3_ADDRESSING_STYLE") or None,
        storage_class=settings.get("ARCHIVE_S3_STORAGE_CLASS") or None,
        sse=settings.get("ARCHIVE_S3_SSE") or None,
        sse_kms_key_id=settings.get("ARCHIVE_S3_SSE_KMS_KEY_ID") or None,
        retry_mode=settings.get("ARCHIVE_S3_RETRY_MODE"),
        max_attempts=settings.getint("ARCHIVE_S3_MAX_ATTEMPTS"),
        connect_timeout=settings.getfloat("ARCHIVE_S3_CONNECT_TIMEOUT"),
        read_timeout=settings.getfloat("ARCHIVE_S3_READ_TIMEOUT"),
        multipart_threshold=settings.getint("ARCHIVE_S3_MULTIPART_THRESHOLD"),
        multipart_chunksize=settings.getint("ARCHIVE_S3_MULTIPART_CHUNKSIZE"),
    )


def open_store(settings):
    """The store ARCHIVE_URI names, proven writable; BadArchiveURI (with the reason) otherwise."""
    if settings.get("ARCHIVE_S3_RETRY_MODE") not in ("standard", "adaptive", "legacy"):
        raise ArchiveConfigError(f"ARCHIVE_S3_RETRY_MODE must be standard or adaptive, not {settings.get('ARCHIVE_S3_RETRY_MODE')!r}")
    uri = settings["ARCHIVE_URI"]
    s3 = urlsplit((uri or "").strip()).scheme.lower() == "s3"  # the S3 options import boto3: only for S3
    store = store_from_uri(uri, s3_options_from_settings(settings) if s3 else None)
    store.check_writable()
    return store


def dataset_tables(store) -> dict[str, DatasetTable]:
    """Every dataset's Delta table in ``store`` (not opened yet)."""
    tables = {}
    for dataset, schema in DATASETS.items():
        uri, options = store.table_location(dataset)
        tables[dataset] = DatasetTable(uri, dataset, schema, options)
    return tables


def check_tables(store) -> None:
    """At start-up, reading only: ``TableUnusable`` for a table location that is no table, ``SchemaMismatch`` for a
    table that cannot take this release's schema."""
    for dataset, table in dataset_tables(store).items():
        table.check(legacy_files=lambda dataset=dataset: legacy_table_files(store, dataset, DATASETS[dataset]))


def open_tables(store) -> dict[str, DatasetTable]:
    """Every dataset's Delta table in ``store``, opened: created when missing (from the data files an older release
    left, converting the archive in place), evolved when this release added nullable columns."""
    tables = dataset_tables(store)
    for dataset, table in tables.items():
        table.open(legacy_files=lambda dataset=dataset: legacy_table_files(store, dataset, DATASETS[dataset]))
    return tables


@dataclass(frozen=True, slots=True)
class _Upload:
    dataset: str
    closed: ClosedFile
    future: Future


class ArchivePipeline:
    def __init__(self, *, store, crawl_id: str, spool_root: Path, writer_options: dict, settings_record: dict,
                 upload_threads: int = 2, stats_collector=None, near_distance: int = 7, near_window_days: int = 30,
                 snapshot_files: int = 200, warc_max_bytes: int | None = None, robots: str = "obey",
                 warc_gzip_level: int = 6, state_refresh_seconds: float = 0) -> None:
        self.store = store
        self.crawl_id = check_crawl_id(crawl_id)
        self.spool_root = spool_root
        self.writer_options = writer_options
        self.settings_record = settings_record
        self.stats = stats.StatsRecorder(stats_collector)
        self.executor = ThreadPoolExecutor(max_workers=upload_threads, thread_name_prefix="archive-upload")
        self.uploads: list[_Upload] = []
        self.writers: dict[str, DatasetWriter] = {}
        self.published: list[tuple[str, PublishedFile]] = []
        self.spooled: list[tuple[str, ClosedFile]] = []  #: files left in the spool when publishing failed
        self.recovered: list[str] = []  #: crawl ids whose leftover files this run published
        self.errors: list[str] = []
        self.site_counts = SiteCounts()  #: the rows written, per site, for the manifest's ``sites``
        self.late_news = LateSitemapNews()  #: Google News entries read after their URL was requested
        self.started_at = datetime.now(timezone.utc)
        self.spool: spooling.RunSpool | None = None
        self.near_distance = near_distance
        self.near_window_days = near_window_days
        self.snapshot_files = snapshot_files
        self.earlier_runs: EarlierRuns | None = None  #: what earlier runs left; the known-URL filter and dedup ask for it
        self.discovery: dict[str, dict] = {}  #: robots.txt, sitemaps and feeds read (or carried over) by this run
        self.unsettled_sources: set[str] = set()  #: feeds and sitemaps an entry of which failed for now
        self.cpu_seconds = 0.0  #: writing Parquet, on the reactor thread
        self.upload_cpu_seconds = 0.0  #: publishing, in the upload threads
        self.tables: dict[str, DatasetTable] = {}
        self.commit_numbers: dict[str, int] = {}  #: dataset -> this run's last commit number to its table
        self.commits: list[dict] = []  #: every commit this run made: dataset, commit number, files, seconds
        self.commit_seconds = 0.0  #: wall time spent committing (in the upload threads)
        self._commit_lock = threading.Lock()  #: a run's commits to a table are made one at a time, in order
        self._stalled: set[tuple[str, str]] = set()  #: (writer, dataset) whose commit failed: later files wait
        self.warc_max_bytes = warc_max_bytes  #: None: no raw capture
        self.robots = robots
        self.warc_gzip_level = warc_gzip_level
        self.warc: WarcFile | None = None  #: this run's WARC files (the capture step appends to them)
        self.warc_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-warc")
        self._warc_uploads: list[Future] = []  #: every WARC file's publication: a data file waits for those before it
        self._loop = None
        self._reactor_thread = None
        self.state_refresh_seconds = state_refresh_seconds  #: 0: the state of earlier runs is read once, at start
        self._refresh_tables: dict[str, DatasetTable] | None = None  #: the refresh's own table objects
        self._refresh_task: asyncio.Task | None = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        crawl_id = settings["ARCHIVE_CRAWL_ID"]
        if not crawl_id:
            raise ArchiveConfigError("ARCHIVE_CRAWL_ID is not set (the news spider sets it)")
        store = open_store(settings)
        spool_root = Path(settings["ARCHIVE_SPOOL_DIR"]) if settings.get("ARCHIVE_SPOOL_DIR") else store.default_spool_dir()
        pipeline = cls(
            store=store,
            crawl_id=crawl_id,
            spool_root=spool_root,
            writer_options={
                "max_file_rows": settings.getint("ARCHIVE_MAX_FILE_ROWS"),
                "max_file_bytes": settings.getint("ARCHIVE_MAX_FILE_BYTES"),
                "row_group_rows": settings.getint("ARCHIVE_ROW_GROUP_ROWS"),
                "row_group_bytes": settings.getint("ARCHIVE_ROW_GROUP_BYTES"),
                "compression": settings["ARCHIVE_COMPRESSION"],
            },
            settings_record=recorded_settings(settings),
            upload_threads=settings.getint("ARCHIVE_UPLOAD_THREADS"),
            stats_collector=crawler.stats,
            near_distance=settings.getint("DEDUP_NEAR_DISTANCE"),
            near_window_days=settings.getint("DEDUP_NEAR_WINDOW_DAYS"),
            snapshot_files=settings.getint("ARCHIVE_STATE_SNAPSHOT_FILES"),
            warc_max_bytes=settings.getint("ARCHIVE_WARC_MAX_FILE_BYTES") if settings.getbool("ARCHIVE_WARC_ENABLED")
            else None,
            robots="obey" if settings.getbool("ROBOTSTXT_OBEY") else "ignore",
            warc_gzip_level=settings.getint("ARCHIVE_WARC_GZIP_LEVEL"),
            state_refresh_seconds=settings.getfloat("ARCHIVE_STATE_REFRESH_SECONDS"),
        )
        crawler.signals.connect(pipeline.spider_closed, signal=signals.spider_closed)
        return pipeline

    # --- start: this run's spool, then the leftovers of earlier runs --------------------------------------

    async def open_spider(self, spider=None) -> None:
        self.open_files()
        self._state_loaded(await asyncio.to_thread(self._prepare))  # reads the store: off the reactor

    def open_files(self) -> None:
        """Lock this run's spool folder and make one writer per dataset."""
        self.started_at = datetime.now(timezone.utc)
        self.spool = spooling.RunSpool(self.spool_root, self.crawl_id)
        self.stats.set(stats.CRAWL_ID, self.crawl_id)
        self.stats.set(stats.STATUS, "running")
        for dataset, schema in DATASETS.items():
            self.writers[dataset] = DatasetWriter(
                dataset=dataset, schema=schema, spool_dir=self.spool.path, file_prefix=self.crawl_id,
                on_closed=self._submit, **self.writer_options,
            )
        self._reactor_thread = threading.current_thread()
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # built without a reactor (a test, a script)
            self._loop = None
        if self.warc_max_bytes is not None:
            self.warc = WarcFile(spool_dir=self.spool.path, crawl_id=self.crawl_id, max_bytes=self.warc_max_bytes,
                                 on_closed=self._warc_closed, robots=self.robots,
                                 gzip_level=self.warc_gzip_level)

    def _prepare(self) -> EarlierRuns:
        """In a thread, before the first request: open the tables, commit leftovers of earlier runs, then load the
        state of what the tables hold now (so a leftover file counts as seen)."""
        removed = self.store.remove_stale_staging()
        if removed:
            logger.info("removed %d stale staging file(s) left in the archive by killed runs", removed)
        try:
            self.tables = open_tables(self.store)
            # a crawl id given again (a retried scheduler task) goes on after its own earlier commits
            self.commit_numbers = {name: table.transaction_version(self.crawl_id) for name, table in self.tables.items()}
        except Exception as exc:  # the store is down: crawl anyway, every file waits in the spool for the next run
            logger.error("could not open the archive's tables; this run's files wait in the spool: %s", redact(str(exc)))
            self._fail(f"open tables: {type(exc).__name__}: {redact(str(exc))}")
            self.tables = {}
        else:
            self._recover_leftovers()
        keys, versions = table_keys(self.tables) if self.tables else ({}, {})
        articles, uncovered = load_state(self.store, near_distance=self.near_distance,
                                         near_window_days=self.near_window_days, data_keys=keys,
                                         table_versions=versions)
        return EarlierRuns(archived=articles, discovery=load_discovery(self.store), uncovered_files=uncovered)

    def _state_loaded(self, earlier_runs: EarlierRuns) -> None:
        self.earlier_runs = earlier_runs
        logger.info("state of earlier runs: %d article rows, %d documents (%s)", len(earlier_runs.archived),
                    len(earlier_runs.discovery), json.dumps(earlier_runs.archived.loaded_from))
        self.stats.set(stats.STATE_ROWS, len(earlier_runs.archived))
        if self.state_refresh_seconds > 0 and self._loop is not None and self._refresh_task is None:
            self._refresh_task = self._loop.create_task(self._refresh_regularly())

    # --- while running: what other writers commit meanwhile ---------------------------------------------------

    async def _refresh_regularly(self) -> None:
        while True:
            await asyncio.sleep(self.state_refresh_seconds)
            await self.refresh_state()

    async def refresh_state(self) -> int:
        """Read the data files other writers (crawl workers of other shards, other runs) committed since the state
        was loaded, so that what they archived is a duplicate here, not a second row; the number of files read.
        A failure is logged and counted; the state stays as it was (the dedup stage catches what slips through)."""
        if self.earlier_runs is None or not self.tables:
            return 0
        current = self.earlier_runs
        try:
            refreshed = await asyncio.to_thread(self._read_new_commits, current.archived)
        except Exception as exc:
            logger.warning("could not read the archive's new commits (the state stays as it was): %s",
                           redact(str(exc)))
            self.stats.inc(stats.STATE_REFRESH_FAILED)
            return 0
        self.stats.inc(stats.STATE_REFRESHES)
        if refreshed is None or self.earlier_runs is not current:
            return 0
        files = refreshed.loaded_from["refreshed_files"] - current.archived.loaded_from.get("refreshed_files", 0)
        self.earlier_runs = dataclasses.replace(current, archived=refreshed)  # on the reactor: lookups see one or the other
        self.stats.inc(stats.STATE_REFRESHED_FILES, files)
        self.stats.inc(stats.STATE_REFRESHED_ROWS, len(refreshed) - len(current.archived))
        logger.info("state: read %d file(s) other writers committed (%d article rows)", files,
                    len(refreshed) - len(current.archived))
        return files

    def _read_new_commits(self, archived):
        """In a thread: the state with the files the tables gained since, this run's own left out (None: none)."""
        if self._refresh_tables is None:  # not the committing tables: those belong to the upload threads
            self._refresh_tables = dataset_tables(self.store)
        keys, versions = table_keys(self._refresh_tables)
        own = f"{self.crawl_id}-"
        delta = {dataset: [key for key in unread if not key.rsplit("/", 1)[-1].startswith(own)]
                 for dataset, unread in archived.unread(keys).items()}
        if not any(delta.values()):
            return None
        return archived.with_files(delta, table_versions=versions, near_window_days=self.near_window_days)

    def _recover_leftovers(self) -> None:
        """Publish what earlier runs left in the spool (same keys), their manifests last. Runs in a thread."""
        for folder, lock in spooling.leftover_runs(self.spool_root, exclude=self.crawl_id):
            try:
                self._recover_run(folder)
            finally:
                lock.close()
                spooling.remove_if_empty(folder)

    def _recover_run(self, folder: Path) -> None:
        files = spooling.complete_files(folder)
        manifest_entry = spooling.spooled_manifest(folder)
        published, failed = [], []
        for orphan in spooling.orphan_intents(folder):
            orphan.unlink()
        for warc in spooling.complete_warc_files(folder):  # before the rows that point into them
            try:
                cdxj = warc.path.with_name(warc.path.name.removesuffix(".warc.gz") + ".cdxj")
                if not cdxj.exists():
                    write_cdxj(warc.path, cdxj, warc.key)
                records = cdxj_responses(cdxj)
                index = self.store.publish(cdxj, warc.key.removesuffix(".warc.gz") + ".cdxj", rows=records,
                                           sha256=file_sha256(cdxj))
                published.append(("warc", self.store.publish(warc.path, warc.key, rows=records,
                                                             sha256=file_sha256(warc.path))))
                published.append(("warc_cdxj", index))
            except Exception as exc:
                failed.append(f"publish {warc.key} (left by {folder.name}): {type(exc).__name__}: {redact(str(exc))}")
        if failed:  # the rows pointing into them must not be committed before them
            self.errors.extend(failed)
            logger.error("could not publish %d WARC file(s) left by run %s; they stay in %s", len(failed), folder.name,
                         folder)
            return
        # committed in the order of their commit numbers, then the files no commit was attempted for
        files.sort(key=lambda f: (0, intent["commit"]) if (intent := spooling.read_intent(f.path)) else (1, f.key))
        for spooled in files:
            try:
                dataset = _dataset(spooled.key)
                check_file_schema(spooled.path, DATASETS[dataset])  # left by an incompatible version?
                closed = ClosedFile(dataset=dataset, key=spooled.key, path=spooled.path, rows=_parquet_rows(spooled.path),
                                    sha256=file_sha256(spooled.path))
                published.append((dataset, self._publish_and_commit(closed, app_id=folder.name)))
            except Exception as exc:
                failed.append(f"publish {spooled.key} (left by {folder.name}): {type(exc).__name__}: {redact(str(exc))}")
        if failed:
            self.errors.extend(failed)
            logger.error("could not publish %d file(s) left by run %s; they stay in %s", len(failed), folder.name, folder)
            return
        if manifest_entry is not None:
            path, manifest = manifest_entry
            manifest["files"] = manifest.get("files", []) + [_file_entry(dataset, p) for dataset, p in published]
            manifest["spooled_files"] = []
            manifest["recovered_by"] = self.crawl_id
        elif published:
            manifest = {"crawl_id": folder.name, "status": "incomplete", "recovered_by": self.crawl_id,
                        "note": "the run ended without a manifest; these files were recovered from its spool",
                        "files": [_file_entry(dataset, p) for dataset, p in published]}
            path = None
        else:
            return
        try:
            self.store.put_bytes(f"runs/{folder.name}.json", manifest_bytes(manifest))
        except Exception as exc:
            self.errors.append(f"manifest of {folder.name}: {type(exc).__name__}: {redact(str(exc))}")
            return
        if path is not None:
            path.unlink()
        self.recovered.append(folder.name)
        logger.info("published and committed %d file(s) left in the spool by run %s", len(published), folder.name)

    def _publish_and_commit(self, closed: ClosedFile, *, app_id: str) -> PublishedFile:
        """Publish a closed file (kept in the spool), commit it to its table, then remove it from the spool.

        The commit number is written beside the file before the commit (the intent): a file found in the spool
        with an intent is committed under that number, which the table's transaction version says was made or
        not; one without is committed under the writer's next number. Either way, never twice."""
        if closed.dataset not in self.tables:
            raise CommitError(f"the {closed.dataset} table could not be opened; {closed.key} waits in the spool")
        if (app_id, closed.dataset) in self._stalled:
            raise CommitError(f"an earlier commit to the {closed.dataset} table failed; {closed.key} waits in the "
                              f"spool for the next run")
        intent = spooling.read_intent(closed.path)
        entry = TableFile(**intent["file"]) if intent else table_file(closed.path, closed.key, rows=closed.rows,
                                                                       size=closed.path.stat().st_size)
        published = self.store.publish(closed.path, closed.key, rows=closed.rows, sha256=closed.sha256, keep_local=True)
        table = self.tables[closed.dataset]
        with self._commit_lock:
            started = time.monotonic()
            if intent is not None:
                number = intent["commit"]
            elif app_id == self.crawl_id:
                number = self.commit_numbers[closed.dataset] + 1
            else:
                number = table.transaction_version(app_id) + 1
            if intent is None:
                spooling.write_intent(closed.path, {"dataset": closed.dataset, "commit": number, "app_id": app_id,
                                                    "file": dataclasses.asdict(entry)})
            if app_id == self.crawl_id:
                self.commit_numbers[closed.dataset] = number
            try:
                table.commit([entry], app_id=app_id, version=number,
                             metadata={"news_archive.committed_by": self.crawl_id})
            except CommitError:
                # commit numbers are a high-water mark: no later commit may land before this one, so the files
                # after it wait in the spool too, and the next run commits them in order
                self._stalled.add((app_id, closed.dataset))
                raise
            seconds = time.monotonic() - started
            self.commit_seconds += seconds
            self.commits.append({"dataset": closed.dataset, "app_id": app_id, "commit": number, "path": entry.path,
                                 "seconds": round(seconds, 3)})
        spooling.remove_committed(closed.path)
        return published

    # --- records -> files -> uploads -----------------------------------------------------------------------

    def process_item(self, item):
        started = time.thread_time()
        if isinstance(item, DiscoveredDocument):
            self._discovered(item)
            return item
        if isinstance(item, SitemapNewsSeen):
            self._late_news(item)
            self.cpu_seconds += time.thread_time() - started
            return item
        dataset = _DATASET_OF.get(type(item))
        if dataset is not None:
            self._write(dataset, item)
            if isinstance(item, RejectRecord) and item.source_url and is_transient_failure(item.reason, item.http_status):
                self.unsettled_sources.add(item.source_url)
        self._collect()
        self.cpu_seconds += time.thread_time() - started
        return item

    def _discovered(self, document: DiscoveredDocument) -> None:
        known = self.discovery.get(document.url)
        if known is None or document.fetched_at.isoformat() >= known["fetched_at"]:
            self.discovery[document.url] = discovery_entry(document)

    def _late_news(self, seen: SitemapNewsSeen) -> None:
        """A Google News entry for a URL this run requested before: its fields go to the URL's row (now, when
        the row comes, or when the file holding it is closed)."""
        written = self.late_news.seen(seen)
        if written is None:
            return
        url, (dt, generation) = written
        if self.writers["articles"].amend(dt, generation, url, amend_with(seen)):
            return
        self.stats.inc(stats.SITEMAP_NEWS_TOO_LATE)
        logger.info("the Google News sitemap entry for %s came after its row's file was closed; its fields are not "
                    "in the row", url)

    def _write(self, dataset: str, record) -> None:
        when = getattr(record, "fetched_at", None) or getattr(record, "detected_at", None) or record.first_fetched_at
        dt = when.astimezone(timezone.utc).strftime("%Y-%m-%d")
        if dataset == "articles":
            record = self.late_news.article(record, (dt, self.writers[dataset].generation(dt)))
        try:
            self.writers[dataset].write(record, dt=dt)
        except Exception as exc:  # our own bug: record it, fail the run, keep crawling
            logger.exception("could not write a %s row", dataset)
            self._fail(f"write {dataset}: {type(exc).__name__}: {exc}")
        else:
            self.stats.inc(stats.rows(dataset))
            if dataset != WARC_DATASET:
                self.site_counts.add(record)

    def _submit(self, closed: ClosedFile) -> None:
        if closed.dataset != WARC_DATASET and self.warc is not None:
            try:
                self.warc.roll()  # the WARC records this file's rows point to are then all in closed files...
            except Exception as exc:
                logger.exception("could not close the WARC file")
                self._fail(f"close warc: {type(exc).__name__}: {exc}")
            lost = self._points_into(closed, set(self.warc.discarded)) if self.warc.discarded else set()
            if lost:
                closed.path.unlink(missing_ok=True)
                self._fail(f"write {closed.key}: its rows point into a WARC file that could not be written "
                           f"({self.warc.discarded[min(lost)]}); {closed.rows} row(s) discarded (the next run "
                           f"fetches them again)")
                return
        waits_for = list(self._warc_uploads)  # ...whose publication its commit waits for
        future = self.executor.submit(self._timed_publish, closed, waits_for)
        self.uploads.append(_Upload(closed.dataset, closed, future))

    @staticmethod
    def _points_into(closed: ClosedFile, keys: set[str]) -> set[str]:
        """Which of the WARC files ``keys`` the rows of a closed data file point into."""
        if "warc_filename" not in pq.read_schema(closed.path).names:
            return set()
        return set(pq.read_table(closed.path, columns=["warc_filename"]).column(0).to_pylist()) & keys

    def _warc_closed(self, closed: ClosedWarc) -> None:
        """A closed WARC file: published in its own thread at once, and its row written to ``warc_files``; rolled
        by size in the capture thread, it is handed to the reactor thread first (the writers are not
        thread-safe)."""
        if self._loop is not None and threading.current_thread() is not self._reactor_thread:
            self._loop.call_soon_threadsafe(self._warc_closed, closed)
            return
        future = self.warc_executor.submit(self._publish_warc, closed)
        self._warc_uploads.append(future)
        self.uploads.append(_Upload("warc", closed, future))
        self._write(WARC_DATASET, WarcFileRecord(
            warc_filename=closed.key, cdxj_filename=closed.cdxj_key, crawl_id=self.crawl_id, records=closed.records,
            bytes=closed.bytes, sha256=closed.sha256, first_fetched_at=closed.first_fetched_at,
            last_fetched_at=closed.last_fetched_at))

    def _publish_warc(self, closed: ClosedWarc) -> list[tuple[str, PublishedFile]]:
        """In the WARC thread: the WARC file and its CDXJ index published (verified, as any data file); they leave
        the spool then. The rows that point into it are committed only after."""
        started = time.thread_time()
        try:
            index = self.store.publish(closed.cdxj_path, closed.cdxj_key, rows=closed.records,
                                       sha256=file_sha256(closed.cdxj_path))
            return [("warc", self.store.publish(closed.path, closed.key, rows=closed.records, sha256=closed.sha256)),
                    ("warc_cdxj", index)]
        finally:
            self.upload_cpu_seconds += time.thread_time() - started

    def _timed_publish(self, closed: ClosedFile, waits_for: list[Future] = ()) -> PublishedFile:
        """In an upload thread: once the WARC files its rows point to are published, publish and commit; count the
        thread's CPU time."""
        for warc in waits_for:
            if warc.exception() is not None:  # its pointers would lead nowhere: it waits in the spool too
                raise CommitError(f"{closed.key} points into a WARC file that could not be published; it waits in "
                                  f"the spool for the next run")
        started = time.thread_time()
        try:
            return self._publish_and_commit(closed, app_id=self.crawl_id)
        finally:
            self.upload_cpu_seconds += time.thread_time() - started  # += on a float: one thread at a time matters little

    def _collect(self) -> None:
        """Account for finished uploads, on the reactor thread."""
        pending = []
        for upload in self.uploads:
            if not upload.future.done():
                pending.append(upload)
                continue
            exc = upload.future.exception()
            if exc is None:
                result = upload.future.result()  # a WARC upload: the WARC file and its CDXJ index
                for dataset, published in (result if isinstance(result, list) else [(upload.dataset, result)]):
                    self.published.append((dataset, published))
                    self.stats.inc(stats.FILES_PUBLISHED)
                    self.stats.inc(stats.BYTES_PUBLISHED, published.bytes)
                    logger.info("published %s (%d rows, %d bytes)", published.key, published.rows, published.bytes)
            else:
                logger.error("could not publish %s; it stays in the spool at %s: %s",
                             upload.closed.key, upload.closed.path, redact(str(exc)))
                self.spooled.append((upload.dataset, upload.closed))
                self.stats.inc(stats.UPLOAD_FAILED)
                self._fail(f"publish {upload.closed.key}: {type(exc).__name__}: {redact(str(exc))}")
        self.uploads = pending

    # --- end: close files, wait for uploads, manifest last ---------------------------------------------------

    # Files are closed on spider_closed, once every pipeline has closed (Scrapy closes them in reverse order, so
    # the steps before this one close after it).

    async def spider_closed(self, spider, reason: str) -> None:
        if self._refresh_task is not None:
            self._refresh_task.cancel()
        self.close_files()
        await asyncio.to_thread(self.warc_executor.shutdown, wait=True)
        await asyncio.to_thread(self.executor.shutdown, wait=True)  # every upload has ended
        self.finish(reason, spider)

    def close_files(self) -> None:
        """Close every open file (each then published in the background), the WARC file before the ``warc_files``
        rows that name it; a file that fails is discarded."""
        started = time.thread_time()
        for dataset, writer in self.writers.items():
            if dataset == WARC_DATASET and self.warc is not None:
                try:
                    self.warc.close()
                except Exception as exc:  # the records it holds are lost with it; their rows wait for it
                    logger.exception("could not close the WARC file")
                    self._fail(f"close warc: {type(exc).__name__}: {exc}")
            try:
                writer.close()
            except Exception as exc:
                logger.exception("could not close the %s file", dataset)
                writer.abort()
                self._fail(f"close {dataset}: {type(exc).__name__}: {exc}")
            if writer.rejected_rows:
                self._fail(f"{dataset}: {writer.rejected_rows} row(s) refused by the schema")
            if writer.discarded_rows:
                self._fail(f"{dataset}: {writer.discarded_rows} row(s) discarded with a file that could not be "
                           f"written; their pages are fetched again by the next run")
        self.cpu_seconds += time.thread_time() - started

    def finish(self, reason: str, spider=None) -> None:
        """Once every upload has ended: account for them, then the state files and the manifest, last."""
        self._collect()
        self.stats.set(stats.ARCHIVE_CPU, round(self.cpu_seconds, 3))
        self.stats.set(stats.UPLOAD_CPU, round(self.upload_cpu_seconds, 3))
        if "articles" in self.writers and self.writers["articles"].amended_rows:
            self.stats.set(stats.SITEMAP_NEWS_AMENDED, self.writers["articles"].amended_rows)
        unread = self.stats.values().get(stats.BACKFILL_SOURCES_FAILED, 0)
        if unread:  # a backfill that could not read all its WARC files has not done its job
            self._fail(f"backfill: {unread} WARC source(s) could not be read (see the log); a rerun reads them")
        uncaptured = self.stats.values().get(stats.WARC_WRITE_FAILED, 0)
        if uncaptured:  # archived without their raw page: the archive is not what the settings ask for
            self._fail(f"raw capture: {uncaptured} page(s) could not be written as WARC (see the log); their rows "
                       f"have no warc_filename")
        status = "failed" if self.errors else ("complete" if reason == "finished" else "partial")
        values = self.stats.values()
        unreachable = stats.unreachable_sites(values)
        self.stats.set(stats.UNREACHABLE_SITES, unreachable)
        for site in unreachable:
            logger.error("site %s was not reached: none of its start URLs could be fetched (DNS, connection, "
                         "timeout, 5xx or 429; see the rejects)", site)
        if status == "complete" and unreachable and unreachable == stats.started_sites(values):
            status = "unreachable"  # nothing could be fetched: not a success a scheduler should see
        self.stats.set(stats.STATUS, status)
        manifest = build_manifest(
            crawl_id=self.crawl_id,
            status=status,
            started_at=self.started_at,
            finished_at=datetime.now(timezone.utc),
            finish_reason=reason,
            settings=self.settings_record,
            spider_args=dict(getattr(spider, "archive_args", {}) or {}),
            stat_values=self.stats.values(),
            files=self.published,
            errors=self.errors,
        )
        self._publish_state(complete=status == "complete")
        manifest["sites"] = self.site_counts.as_dict()
        manifest["spooled_files"] = [_closed_entry(dataset, closed) for dataset, closed in self.spooled]
        manifest["recovered_runs"] = self.recovered
        manifest["commits"] = self.commits
        wall = (datetime.fromisoformat(manifest["finished_at"]) - self.started_at).total_seconds()
        manifest["timing"] = {"wall_seconds": round(wall, 3), "commit_seconds": round(self.commit_seconds, 3),
                              "commit_share": round(self.commit_seconds / wall, 4) if wall > 0 else 0.0}
        data = manifest_bytes(manifest)
        try:
            self.store.put_bytes(f"runs/{self.crawl_id}.json", data)
        except Exception as exc:
            logger.error("could not write the run manifest: %s", redact(str(exc)))
            self._fail(f"manifest: {type(exc).__name__}: {redact(str(exc))}")
            self.stats.set(stats.STATUS, "failed")
            try:
                spooling.write_json(self.spool.manifest_path(), manifest_bytes({**manifest, "status": "failed"}))
            except OSError as exc:  # a full disk: the files in the spool are still published by the next run
                logger.error("could not keep the run manifest in the spool either: %s", exc)
        else:
            logger.info("run %s %s: %s", self.crawl_id, status, json.dumps(manifest["counts"], sort_keys=True))
        if self.errors:
            self.stats.set(stats.FAILURE, self._failure_line())
        self.spool.release()

    def _publish_state(self, *, complete: bool) -> None:
        """Before the manifest: the robots.txt, sitemaps and feeds this run read, for the next run's conditional
        requests, and a new state snapshot when too many data files are not covered by one. Discovery state only
        from a complete run: a run stopped or failed midway has not archived every entry of its feeds, and a 304
        next time would hide them. A feed or sitemap an entry of which failed for now (5xx, timeout...) is kept
        without validators, so the next run reads it whole and tries that entry again."""
        try:
            sources_done = self.stats.values().get(stats.BACKFILL_SOURCES_DONE) or []
            if sources_done and complete:  # what a backfill read to the end, all of it committed: not read again
                self.store.put_bytes(f"{BACKFILL_PREFIX}{self.crawl_id}.json", json.dumps(
                    {"crawl_id": self.crawl_id, "sources_done": list(sources_done)}, indent=1).encode())
            if self.discovery and complete:
                documents = {url: ({**entry, "etag": None, "last_modified": None} if url in self.unsettled_sources
                                   else entry) for url, entry in self.discovery.items()}
                self.store.put_bytes(f"{DISCOVERY_PREFIX}{self.crawl_id}.json", discovery_bytes(self.crawl_id, documents))
            new_files = sum(dataset in self.tables for dataset, _ in self.published)  # data files, not WARC files
            if self.tables and self.earlier_runs is not None and \
                    self.earlier_runs.uncovered_files + new_files >= self.snapshot_files:
                keys, versions = table_keys(self.tables)
                state = write_state_snapshot(self.store, snapshot_id=self.crawl_id, near_distance=self.near_distance,
                                             data_keys=keys, table_versions=versions)
                logger.info("wrote a state snapshot covering %d articles files, %d duplicates and %d rejects files",
                            len(state.files), len(state.covered.get("duplicates", [])),
                            len(state.covered.get("rejects", [])))
        except Exception as exc:  # the data is committed; state files are an optimisation built from it
            logger.warning("could not write state files: %s", redact(str(exc)))

    def _failure_line(self) -> str:
        if self.spooled or any(e.startswith("manifest") for e in self.errors):
            line = (f"{len(self.spooled)} file(s) could not be published to {self.store.uri}; they wait in "
                    f"{self.spool.path} and the next run publishes them ({self.errors[0]})")
        else:
            line = f"{len(self.errors)} error(s) writing the archive; first: {self.errors[0]}"
        return " ".join(line.split())  # one line, whatever an exception's message holds

    def _fail(self, message: str) -> None:
        self.errors.append(message)
        self.stats.inc(stats.WRITE_FAILED)




def _dataset(key: str) -> str:
    return key.split("/", 1)[0]


def _file_entry(dataset: str, published: PublishedFile) -> dict:
    return {"dataset": dataset, "key": published.key, "rows": published.rows, "bytes": published.bytes,
            "sha256": published.sha256}


def _closed_entry(dataset: str, closed) -> dict:
    rows = closed.rows if isinstance(closed, ClosedFile) else closed.records
    return {"dataset": dataset, "key": closed.key, "rows": rows, "sha256": closed.sha256}


def _parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows
