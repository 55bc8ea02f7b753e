"""Crashes and misuse: a failing write, SIGTERM, a full, read-only or missing archive folder.

Whatever happens, no file under a final name is partial: a file that fails is discarded whole (its pages are
fetched again by the next run), a complete one is published or left in the spool for the next run, and the
exit code says what happened (1 failed, 2 refused at start-up, 3 stopped before the end).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import (CrawlResult, RunningCrawl, crawl_command, crawl_env, in_ci, published_rows, run_crawl,
                      wait_until)
from crawler.localsite import LocalSite
from faults import InjectedFault, faulty_write
from newssite import REFERENCE_PATH, START_PATHS, build_news_site
from pipelines import storage
from pipelines.archive import ArchivePipeline
from pipelines.parquet import DatasetWriter, _PartitionFile
from pipelines.storage import LocalStore
from records import Stats, article
from schemas import ARTICLES
from test_state import assert_every_article_once

TESTS = Path(__file__).resolve().parent


def published_files(archive: Path) -> list[Path]:
    """Every file under a final name a reader looks at (hidden staging names and the spool excluded): data files,
    WARC files and their indexes."""
    return [p for pattern in ("*.parquet", "*.warc.gz", "*.cdxj") for p in archive.rglob(pattern)
            if "_spool" not in p.parts and not p.name.startswith(".")]


def assert_published_files_whole(archive: Path) -> None:
    for path in published_files(archive):
        published_rows(path)  # raises on a truncated or corrupt file
    for manifest in (json.loads(p.read_text()) for p in (archive / "runs").glob("*.json")):
        for entry in manifest.get("files", []):
            path = archive / entry["key"]
            assert path.stat().st_size == entry["bytes"] and published_rows(path) == entry["rows"], entry


# --- an exception while a file is written: core ---------------------------------------------------------------

def test_a_failure_mid_file_discards_that_file_whole_and_writing_goes_on(tmp_path, monkeypatch):
    monkeypatch.setattr(_PartitionFile, "write", faulty_write(5))
    store = LocalStore(tmp_path / "archive")
    published = []
    writer = DatasetWriter(dataset="articles", schema=ARTICLES, spool_dir=tmp_path / "spool", file_prefix="run1",
                           on_closed=lambda c: published.append(store.publish(c.path, c.key, rows=c.rows, sha256=c.sha256)),
                           max_file_rows=3, row_group_rows=1)
    for n in range(1, 5):  # rows 1-3: file 1, published; row 4: file 2, one row group written
        writer.write(article(n), dt="2026-11-25")
    with pytest.raises(InjectedFault):
        writer.write(article(5), dt="2026-11-25")  # the second row group of file 2 fails
    assert writer.discarded_rows == 2
    assert not list((tmp_path / "spool").rglob("*.inprogress")), "the failed file is gone, not left half-written"
    for n in (6, 7):
        writer.write(article(n), dt="2026-11-25")
    writer.close()
    titles = [[row["title"] for row in pq.read_table(store.root / f.key).to_pylist()] for f in published]
    assert titles == [["Story 1", "Story 2", "Story 3"], ["Story 6", "Story 7"]], "file 2 is published whole or not at all"
    assert [f.key.rsplit("-", 1)[1] for f in published] == ["00001.parquet", "00003.parquet"]


def test_a_failure_while_closing_discards_that_file_and_closes_the_others(tmp_path, monkeypatch):
    original = _PartitionFile.close

    def close(self, amendments=None):
        if "dt=2026-11-24" in self.key:
            raise OSError(28, "No space left on device")
        return original(self, amendments)

    monkeypatch.setattr(_PartitionFile, "close", close)
    published = []
    writer = DatasetWriter(dataset="articles", schema=ARTICLES, spool_dir=tmp_path / "spool", file_prefix="run1",
                           on_closed=published.append, row_group_rows=1)
    writer.write(article(1), dt="2026-11-24")
    writer.write(article(2), dt="2026-11-25")
    with pytest.raises(OSError):
        writer.close()
    assert [c.key for c in published] == ["articles/dt=2026-11-25/run1-00002.parquet"]
    assert writer.discarded_rows == 1
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file() and "2026-11-24" in str(p)]


def make_pipeline(tmp_path, **options) -> ArchivePipeline:
    store = LocalStore(tmp_path / "archive")
    store.check_writable()
    return ArchivePipeline(store=store, crawl_id="20261125T000000Z-abcdef", spool_root=tmp_path / "archive" / "_spool",
                           writer_options={"row_group_rows": 1, "max_file_rows": 3, **options}, settings_record={},
                           upload_threads=1, stats_collector=Stats())


def run_pipeline(pipeline: ArchivePipeline, records, reason: str = "finished") -> dict:
    """What Scrapy does with the pipeline, without a reactor; the manifest."""
    pipeline.open_files()
    pipeline._state_loaded(pipeline._prepare())
    for record in records:
        pipeline.process_item(record)
    pipeline.close_files()
    pipeline.executor.shutdown(wait=True)
    pipeline.finish(reason)
    return json.loads((pipeline.store.root / "runs" / f"{pipeline.crawl_id}.json").read_text())


def test_archive_pipeline_fails_the_run_with_one_line_and_publishes_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_PartitionFile, "write", faulty_write(5))
    pipeline = make_pipeline(tmp_path)
    manifest = run_pipeline(pipeline, [article(n) for n in range(1, 8)])
    assert manifest["status"] == "failed"
    assert manifest["errors"][0].startswith("write articles: InjectedFault")
    assert any("2 row(s) discarded" in error for error in manifest["errors"])
    failure = pipeline.stats.values()["archive/failure"]
    assert "\n" not in failure and "InjectedFault" in failure
    archive = tmp_path / "archive"
    rows = [row["title"] for path in sorted(published_files(archive)) if path.suffix == ".parquet"
            for row in pq.read_table(path).to_pylist()]
    assert rows == ["Story 1", "Story 2", "Story 3", "Story 6", "Story 7"]
    assert_published_files_whole(archive)
    assert not [p for p in (archive / "_spool").rglob("*") if p.is_file()], "nothing left half-written in the spool"


def test_stale_staging_files_of_killed_runs_are_removed_at_start(tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    folder = archive / "articles" / "dt=2026-11-25"
    folder.mkdir(parents=True)
    stale = folder / f".run0-00001.parquet.{'a1' * 16}.tmp"
    others = [folder / ".run0-00001.parquet.not-ours.tmp", folder / ".keep", folder / "run0-00001.parquet.tmp"]
    for path in [stale, *others]:
        path.write_bytes(b"PAR1")
    spooled = archive / "_spool" / "run0" / f".x.{'b2' * 16}.tmp"
    spooled.parent.mkdir(parents=True)
    spooled.write_bytes(b"x")
    assert LocalStore(archive).remove_stale_staging() == 0, "a young staging file may belong to a live run"
    monkeypatch.setattr(storage, "STALE_STAGING_SECONDS", 0)
    pipeline = make_pipeline(tmp_path)
    run_pipeline(pipeline, [article(1)])
    assert not stale.exists()
    assert all(path.exists() for path in others), "only our own kind of staging file is removed"
    assert spooled.exists(), "the spool is not the archive's business here"


def test_a_spooled_file_with_another_schema_is_never_published(tmp_path):
    left = tmp_path / "archive" / "_spool" / "20261124T000000Z-000000" / "articles" / "dt=2026-11-24"
    left.mkdir(parents=True)
    old = pa.table({"url": ["https://herald.example/a"], "http_status": pa.array([200], pa.int32())})
    pq.write_table(old, left / "20261124T000000Z-000000-00001.parquet")
    pipeline = make_pipeline(tmp_path)
    manifest = run_pipeline(pipeline, [article(1)])
    assert manifest["status"] == "failed"
    assert any("does not have the dataset's schema" in error for error in manifest["errors"])
    assert not (tmp_path / "archive" / "articles" / "dt=2026-11-24").exists()
    assert (left / "20261124T000000Z-000000-00001.parquet").exists(), "kept for a person to migrate"


# --- end to end: `scrapy crawl news` ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site():
    site = LocalSite()
    spec = build_news_site(site.start())
    site.pages.update(spec.pages)
    yield site, spec
    site.stop()


def crawl(site: LocalSite, archive: Path, tmp_path: Path, settings: dict | None = None, env: dict | None = None,
          **options) -> CrawlResult:
    cache = tmp_path / f"cache-{time.monotonic_ns()}"
    return run_crawl(archive, [site.base_url + p for p in START_PATHS], settings=settings,
                     env={"XDG_CACHE_HOME": str(cache), **(env or {})}, **options)


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr.strip().splitlines()[-1]
    return stderr.strip().splitlines()[-1]


def assert_next_run_archives_every_article_once(site, spec, archive, tmp_path):
    again = crawl(site, archive, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_every_article_once(spec, again.rows("articles"))
    assert_published_files_whole(archive)
    assert not list((archive / "_spool").rglob("*.parquet*")), "the leftovers were published or discarded"


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_crawl_with_a_failing_write_exits_1_and_the_next_run_loses_nothing(site, tmp_path):
    site, spec = site
    archive = tmp_path / "archive"
    result = crawl(site, archive, tmp_path, settings={
        "EXTENSIONS": json.dumps({"faults.ParquetWriteFault": 0}), "FAULT_PARQUET_ROW_GROUP": 3,
        "ARCHIVE_ROW_GROUP_ROWS": 1, "ARCHIVE_MAX_FILE_ROWS": 2,
    }, env={"PYTHONPATH": str(TESTS)})
    assert result.returncode == 1, result.stderr[-3000:]
    line = last_line(result.stderr)
    assert line.startswith("news-archive: the archive was not fully written") and "InjectedFault" in line
    [manifest] = result.manifests()
    assert manifest["status"] == "failed" and any("row(s) discarded" in e for e in manifest["errors"])
    assert_published_files_whole(archive)
    assert not list((archive / "_spool").rglob("*.inprogress"))
    assert_next_run_archives_every_article_once(site, spec, archive, tmp_path)


def held_crawl(site: LocalSite, archive: Path, tmp_path: Path) -> tuple[RunningCrawl, Path, Path]:
    """A crawl of the news site whose extraction of the reference article is held in its worker until the
    release file exists (``faults.HeldExtraction``): until then the crawl cannot end, whatever the speed."""
    held, release = tmp_path / "held", tmp_path / "release"
    held.mkdir()
    command = crawl_command(archive, [site.base_url + p for p in START_PATHS], settings={
        "ARCHIVE_MAX_FILE_ROWS": 2, "ARCHIVE_ROW_GROUP_ROWS": 1,
        "EXTENSIONS": json.dumps({"faults.HeldExtraction": 0}), "FAULT_HOLD_EXTRACT_URL": re.escape(REFERENCE_PATH) + "$",
        "FAULT_HOLD_EXTRACT_RELEASE": str(release), "FAULT_HOLD_EXTRACT_ANNOUNCE": str(held),
        "EXTRACT_TIMEOUT": 600})  # the held page is not given up while the test waits
    env = crawl_env({"XDG_CACHE_HOME": str(tmp_path / "cache-killed"), "PYTHONPATH": str(TESTS)})
    return RunningCrawl(command, env), held, release


@pytest.mark.slow
@pytest.mark.needs_corpus
@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm-once", "sigterm-twice"])
def test_sigterm_stops_with_exit_3_and_nothing_is_lost(site, tmp_path, signals):
    site, spec = site
    archive = tmp_path / "archive"
    crawl, held, release = held_crawl(site, archive, tmp_path)
    try:
        # mid-run by construction: one article's extraction is held (so the crawl cannot end) and a file is out
        wait_until(lambda: any(held.iterdir()), "the held extraction to start")
        crawl.wait_for_line("published articles/")
        assert crawl.process.poll() is None
        crawl.process.send_signal(signal.SIGTERM)
        crawl.wait_for_line("Received SIGTERM, shutting down gracefully")
        if signals == 1:
            release.touch()  # the graceful stop waits for the page being extracted: let it end
        else:
            crawl.process.send_signal(signal.SIGTERM)  # the graceful stop is still waiting for the held page
        stderr = crawl.finish()
        still_held = not release.exists()
    finally:
        release.touch()
        crawl.kill()
    assert crawl.process.returncode == 3, stderr[-3000:]
    assert "stopped before its end" in last_line(stderr)
    assert_published_files_whole(archive)
    manifests = CrawlResult(0, "", "", archive).manifests()
    if signals == 1:  # graceful: what was complete is published, the run recorded as partial
        [manifest] = manifests
        assert manifest["status"] == "partial" and manifest["finish_reason"] == "shutdown"
        assert manifest["files"] and not manifest["errors"]
        assert {e["key"] for e in manifest["files"]} == {p.relative_to(archive).as_posix() for p in published_files(archive)}
    else:  # fast: gone at once, without waiting for the page in the pipeline; leftovers for the next run
        assert still_held, "the crawl exited while the held extraction was still running"
        assert "Received SIGTERM twice, forcing unclean shutdown" in stderr
        assert not manifests
    assert_next_run_archives_every_article_once(site, spec, archive, tmp_path)


# --- the archive folder: full, read-only, missing ----------------------------------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs (of the size given) at a fresh folder; always unmounted afterwards."""
    mounted = []

    def mount(size: str, *options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            why = f"cannot mount a tmpfs here (needs root in a container that allows it): {done.stderr.strip()}"
            if in_ci():  # CI runs as root: these cases are what docs/RELIABILITY.md cites, never skipped there
                pytest.fail(why)
            pytest.skip(why)
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def remount(point: Path, *options: str) -> None:
    subprocess.run(["mount", "-o", ",".join(["remount", *options]), str(point)], check=True)


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_read_only_archive_folder_is_refused_at_start_up(site, tmp_path, tmpfs):
    site, _ = site
    point = tmpfs("1m")
    (point / "archive").mkdir()
    remount(point, "ro")
    before = sum(site.requests.values())
    result = crawl(site, point / "archive", tmp_path)
    assert result.returncode == 2
    line = last_line(result.stderr)
    assert line.startswith("news-archive: ") and "not writable" in line and "Read-only" in line
    assert sum(site.requests.values()) == before


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_full_archive_folder_fails_the_write_and_the_next_run_loses_nothing(site, tmp_path, tmpfs):
    site, spec = site
    point = tmpfs("160k")
    archive = point / "archive"
    result = crawl(site, archive, tmp_path, settings={"ARCHIVE_ROW_GROUP_ROWS": 1, "ARCHIVE_MAX_FILE_ROWS": 2})
    assert result.returncode == 1, result.stderr[-3000:]
    line = last_line(result.stderr)
    assert line.startswith("news-archive: the archive was not fully written") and "No space left" in line, line
    assert_published_files_whole(archive)
    assert not list(archive.rglob("*.inprogress"))
    remount(point, "size=64m")  # the operator frees space
    assert_next_run_archives_every_article_once(site, spec, archive, tmp_path)


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_missing_parent_folder_is_refused_at_start_up(site, tmp_path):
    site, _ = site
    before = sum(site.requests.values())
    result = crawl(site, tmp_path / "not-mounted" / "archive", tmp_path)
    assert result.returncode == 2
    assert "does not exist" in last_line(result.stderr)
    assert not (tmp_path / "not-mounted").exists(), "no folder is made where a volume should be"
    assert sum(site.requests.values()) == before
