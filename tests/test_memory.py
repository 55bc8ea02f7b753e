"""The crawler's memory stays flat: freed memory given back (crawler/memory.py), the frontier on disk
(crawler/frontier.py); the benchmark measures how much."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from scrapy.utils.test import get_crawler

from conftest import REPO, run_crawl
from crawler import memory
from pipelines import extract, glibc

TESTS = Path(__file__).resolve().parent

glibc_only = pytest.mark.skipif(glibc.glibc() is None, reason="glibc only")


@glibc_only
def test_thresholds_and_trim_apply_on_glibc():
    assert glibc.return_freed_memory(128 * 1024) is True
    assert glibc.return_freed_memory(0) is False
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # 128 MB in the heap (below the mmap threshold)
    del blocks[::2]  # holes in the middle of the heap, which only malloc_trim gives back
    assert glibc.trim_freed_memory() is True


@glibc_only
def test_extension_switches_pyarrow_to_malloc_and_trims_while_the_spider_runs():
    from crawler.spiders.news import NewsSpider

    crawler = get_crawler(NewsSpider, {"MEMORY_MALLOC_THRESHOLD": 131072, "MEMORY_TRIM_INTERVAL": 5,
                                       "MEMORY_ARROW_SYSTEM_POOL": True})
    extension = memory.ReturnFreedMemory.from_crawler(crawler)
    previous = pa.default_memory_pool()
    try:
        extension.spider_opened()
        assert pa.default_memory_pool().backend_name == "system"
        assert extension.trimmer.running
        extension.spider_closed()
        assert not extension.trimmer.running
    finally:
        pa.set_memory_pool(previous)


def test_extension_is_enabled_by_default():
    from scrapy.utils.project import get_project_settings

    assert get_project_settings().getdict("EXTENSIONS")["crawler.memory.ReturnFreedMemory"] == 0


#: what a local crawl's process does not use, each several MB: Scrapy's remote consoles (aiohttp), boto3 (S3
#: archives only), cdxj-indexer (imported when a WARC file closes; it pulls in pyamf and pkg_resources)
CRAWLER_UNUSED = {"aiohttp", "twisted.conch.telnet", "scrapy.extensions.remote_control", "boto3", "botocore",
                  "cdxj_indexer", "pyamf", "pkg_resources"}
#: what the extraction workers do not use: their fork server imports only the extraction code
WORKER_UNUSED = {"pyarrow", "numpy", "scrapy", "twisted", "boto3", "deltalake", "duckdb", "cdxj_indexer"}


@pytest.mark.needs_corpus
def test_a_local_crawl_does_not_load_what_it_does_not_use(news_site, tmp_path):
    from scrapy.utils.project import get_project_settings

    site, _ = news_site
    seen = tmp_path / "modules.json"
    # the project's extensions, as a crawl has them, and the probe
    extensions = {**get_project_settings().getdict("EXTENSIONS"), "faults.ModulesInUse": 0}
    result = run_crawl(tmp_path / "archive", [site.base_url + "/robots.txt"], env={"PYTHONPATH": str(TESTS)},
                       settings={"EXTENSIONS": json.dumps(extensions), "FAULT_MODULES_FILE": str(seen),
                                 "TELNETCONSOLE_ENABLED": True})  # enabled, yet not in any extension list
    assert result.returncode == 0, result.stderr[-3000:]
    modules = set(json.loads(seen.read_text()))
    assert {"scrapy", "pyarrow", "deltalake", "warcio", "pipelines.archive"} <= modules  # the probe saw a crawl
    assert sorted(CRAWLER_UNUSED & modules) == []


def test_the_extraction_workers_fork_server_imports_only_the_extraction_code():
    code = ("import importlib, json, sys\n"
            f"for name in {extract.WORKER_PRELOAD!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    modules = set(json.loads(completed.stdout))
    assert {"trafilatura", "lxml", "pipelines.extract", "pipelines.fingerprints"} <= modules
    assert sorted(m for m in modules if m.split(".")[0] in WORKER_UNUSED) == []


def _scrapy_stat(stderr: str, name: str) -> int:
    match = re.search(rf"'{re.escape(name)}': (\d+)", stderr)
    return int(match.group(1)) if match else 0


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_frontier_waits_on_disk_in_a_folder_removed_at_the_end(news_site, tmp_path):
    # a sitemap's thousands of URLs are enqueued at once: in disk queues they do not grow the crawler
    site, spec = news_site
    frontier = tmp_path / "frontier"
    result = run_crawl(tmp_path / "archive", [site.base_url + "/robots.txt"], settings={"CRAWL_FRONTIER_DIR": str(frontier)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.rows("articles")) == len(spec.articles)  # the feed-only ones through the home page's feed links
    assert _scrapy_stat(result.stderr, "scheduler/enqueued/disk") >= len(spec.articles)
    assert _scrapy_stat(result.stderr, "scheduler/enqueued/memory") == 0
    assert frontier.is_dir() and not any(frontier.iterdir())  # the run's own folder is gone


def test_a_jobdir_is_left_to_scrapy_and_the_frontier_can_stay_in_memory(tmp_path):
    from crawler.frontier import DiskFrontierScheduler
    from crawler.spiders.news import NewsSpider

    def opened_and_closed(settings):
        crawler = get_crawler(NewsSpider, {"CRAWL_FRONTIER_DIR": str(tmp_path / "frontier"), **settings,
                                           "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.ScrapyPriorityQueue"})  # no engine here
        scheduler = DiskFrontierScheduler.from_crawler(crawler)
        scheduler.open(NewsSpider(start_urls="http://127.0.0.1/"))
        on_disk = scheduler.dqs is not None
        scheduler.close("finished")
        return on_disk

    assert opened_and_closed({"JOBDIR": str(tmp_path / "job")}) is True
    assert (tmp_path / "job" / "requests.queue" / "active.json").is_file()  # kept: the user resumes from it
    assert not (tmp_path / "frontier").exists()
    assert opened_and_closed({"CRAWL_FRONTIER_ON_DISK": False}) is False
    assert opened_and_closed({"CRAWL_FRONTIER_ON_DISK": True}) is True and not any((tmp_path / "frontier").iterdir())
    from scrapy.utils.project import get_project_settings

    project = get_project_settings()
    assert project["SCHEDULER"] == "crawler.frontier.DiskFrontierScheduler" and project.getbool("CRAWL_FRONTIER_ON_DISK")


def test_a_worker_gives_freed_memory_back_every_few_pages(monkeypatch):
    trims = []
    monkeypatch.setattr(extract, "trim_freed_memory", lambda: trims.append(extract._worker_pages))
    monkeypatch.setattr(extract, "_worker_pages", 0)
    monkeypatch.setattr(extract, "_timed_extraction", lambda *args: extract.Extraction(None, "empty"))
    for _ in range(2 * extract.WORKER_TRIM_EVERY + 3):
        extract.extract_task(b"<html></html>", "text/html", "http://127.0.0.1/a", 300, None)
    assert trims == [extract.WORKER_TRIM_EVERY, 2 * extract.WORKER_TRIM_EVERY]
