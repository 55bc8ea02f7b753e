"""The crawl's progress (crawler/progress.py): a line in the log every interval and at the end, a bar on a terminal.

The crawls run against the offline demo's site (crawler/demo.py) on 127.0.0.1, one server for the module. A
periodic line (or the bar's first update) is waited for, not slept for: the site holds the answer to one start
URL until the test has seen it in the crawl's output, so the crawl cannot end before.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import pty
import re
import struct
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from conftest import REPO, RunningCrawl, crawl_command, crawl_env, run_crawl
from crawler.demo import build_site
from crawler.localsite import LocalSite
from crawler.progress import (ConsoleAboveBar, CrawlProgress, ProgressSnapshot, bar_mode, bar_postfix,
                              progress_line)
from pipelines import stats
from pipelines.exceptions import ArchiveConfigError
from pipelines.extract import ExtractPipeline

START_PATHS = ("/", "/feed/", "/robots.txt")
HELD = "/feed/"  #: the start URL whose answer waits for the test
#: a test crawl's progress settings: a line every 0.2 s, one extraction worker
PROGRESS_SETTINGS = {"PROGRESS_INTERVAL": "0.2", "EXTRACT_WORKERS": "1"}
PERIODIC = re.compile(r"progress: (\d+) pages fetched, (\d+) articles, (\d+) duplicates, (\d+) rejects, "
                      r"(\d+) requests waiting, \d+\.\d pages/s, (\d+)/1 extraction workers busy$")
FINAL = re.compile(r"progress \(final\): (\d+) pages fetched, (\d+) articles, (\d+) duplicates, (\d+) rejects, "
                   r"\d+\.\d pages/s$")
#: the bar after at least one update: pages fetched (not 0) out of fetched + waiting, then the postfix
BAR_UPDATED = re.compile(rb"\rcrawl +\d+%\|[^|\r\n]*\| [1-9]\d*/\d+ pages \[\d\d:\d\d, \d+ articles, "
                         rb"\d+ duplicates, \d+ rejects, \d+ waiting, \d+\.\d pages/s, \d+/1 workers busy\]")


# --- the line and the bar's text, without a crawler ----------------------------------------------------------------


class FakeStats:
    """A stats collector's ``get_stats``, over values the test sets."""

    def __init__(self, values: dict) -> None:
        self.values = values

    def get_stats(self) -> dict:
        return dict(self.values)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def crawl_stats(pages: int, articles: int, duplicates: int, rejects: int) -> dict:
    return {"response_received_count": pages, stats.rows("articles"): articles,
            stats.rows("duplicates"): duplicates, stats.rows("rejects"): rejects, "downloader/request_count": 999}


def test_the_line_says_the_stats_the_scheduler_and_the_pool_and_pages_per_second_over_the_interval(caplog):
    values = FakeStats(crawl_stats(120, 45, 6, 30))
    clock = FakeClock()
    waiting = [80]
    progress = CrawlProgress(stats_collector=values, interval=5, requests_waiting=lambda: waiting[0],
                             extraction_workers=lambda: (2, 2), clock=clock)
    caplog.set_level(logging.INFO, logger="crawler.progress")
    clock.now += 5
    progress.tick()
    clock.now += 10
    values.values = crawl_stats(243, 50, 7, 90)
    waiting[0] = 3
    progress.tick()
    clock.now += 5
    values.values = crawl_stats(250, 52, 7, 94)
    progress.spider_closed(reason="finished")
    assert caplog.messages == [
        "progress: 120 pages fetched, 45 articles, 6 duplicates, 30 rejects, 80 requests waiting, 24.0 pages/s, "
        "2/2 extraction workers busy",
        "progress: 243 pages fetched, 50 articles, 7 duplicates, 90 rejects, 3 requests waiting, 12.3 pages/s, "
        "2/2 extraction workers busy",
        "progress (final): 250 pages fetched, 52 articles, 7 duplicates, 94 rejects, 12.5 pages/s",
    ]


def test_extraction_in_process_and_a_crawl_without_stats_yet():
    progress = ProgressSnapshot(pages_fetched=0, articles=0, duplicates=0, rejects=0, requests_waiting=2,
                                pages_per_second=0.0, busy_workers=0, workers=0)
    assert progress_line(progress) == ("0 pages fetched, 0 articles, 0 duplicates, 0 rejects, 2 requests waiting, "
                                       "0.0 pages/s, extraction in process")
    progress = CrawlProgress(stats_collector=FakeStats({}), interval=5, extraction_workers=lambda: (0, 0),
                             requests_waiting=lambda: 0, clock=FakeClock()).tick()
    assert progress == ProgressSnapshot(pages_fetched=0, articles=0, duplicates=0, rejects=0, requests_waiting=0,
                                        pages_per_second=0.0, busy_workers=0, workers=0)


def test_the_bar_postfix():
    progress = ProgressSnapshot(pages_fetched=120, articles=45, duplicates=6, rejects=30, requests_waiting=80,
                                pages_per_second=12.34, busy_workers=1, workers=2)
    assert bar_postfix(progress) == "45 articles, 6 duplicates, 30 rejects, 80 waiting, 12.3 pages/s, 1/2 workers busy"


def test_busy_workers_are_the_pages_held_by_a_worker():
    pipeline = ExtractPipeline(crawl_id="c", min_chars=300, workers=2)
    pipeline.in_flight = 5  # three of them wait in the pool's queue
    assert pipeline.busy_workers == 0  # no pool: not open
    pipeline.pool = object()
    assert pipeline.busy_workers == 2
    pipeline.in_flight = 1
    assert pipeline.busy_workers == 1


def test_records_above_the_bar_keep_their_handlers_level_and_format():
    from tqdm import tqdm

    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s"))
    logger = logging.getLogger("tests.progress.above")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(ConsoleAboveBar(console, tqdm))
    try:
        logger.debug("not shown at INFO")
        logger.info("shown")
    finally:
        logger.handlers.clear()
    assert stream.getvalue() == "[tests.progress.above] INFO: shown\n"


def test_progress_bar_setting():
    assert bar_mode({"PROGRESS_BAR": "auto"}) == "auto"
    assert bar_mode({"PROGRESS_BAR": "OFF"}) == "off"
    with pytest.raises(ArchiveConfigError, match="PROGRESS_BAR must be auto or off, not 'sometimes'"):
        bar_mode({"PROGRESS_BAR": "sometimes"})


def test_an_interval_of_zero_turns_it_off():
    with pytest.raises(NotConfigured, match="PROGRESS_INTERVAL is 0"):
        CrawlProgress.from_crawler(get_crawler(settings_dict={"PROGRESS_INTERVAL": 0}))


# --- real crawls -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_site():
    site = LocalSite()
    site.pages.update(build_site(site.start()).pages)
    yield site
    site.stop()


@contextmanager
def held(site: LocalSite, path: str):
    """``path`` answered only once the event this yields is set (at the latest when the block ends)."""
    release = threading.Event()
    page = site.pages[path]
    site.pages[path] = dataclasses.replace(page, hold=release)
    try:
        yield release
    finally:
        release.set()
        site.pages[path] = page


def start_urls(site: LocalSite) -> list[str]:
    return [site.base_url + path for path in START_PATHS]


def manifest_counts(archive: Path) -> tuple[int, int, int, int]:
    [path] = (archive / "runs").glob("*.json")
    counts = json.loads(path.read_text())["counts"]
    return (counts["pages_fetched"], counts["articles_written"], counts["duplicates_written"],
            counts["rejects_written"])


def final_counts(log: str) -> tuple[int, ...]:
    [line] = [line for line in re.split(r"[\r\n]+", log) if "progress (final):" in line]
    match = FINAL.search(line)
    assert match, line
    return tuple(int(n) for n in match.groups())


@pytest.mark.slow
def test_a_crawl_logs_progress_lines_and_a_final_one_with_the_manifests_counts(demo_site, tmp_path):
    archive = tmp_path / "archive"
    with held(demo_site, HELD) as release:
        crawl = RunningCrawl(crawl_command(archive, start_urls(demo_site), settings=PROGRESS_SETTINGS), crawl_env())
        try:
            periodic = crawl.wait_for_line("INFO: progress: ")  # the held page keeps the crawl going until then
            release.set()
            log = crawl.finish()
        finally:
            crawl.kill()
    assert crawl.process.returncode == 0, log[-3000:]
    assert PERIODIC.search(periodic.rstrip("\n")), periodic
    assert final_counts(log) == manifest_counts(archive)
    assert "\r" not in log and " pages [" not in log  # stderr is a pipe: no bar
    assert "Traceback" not in log


@pytest.mark.slow
def test_a_bad_progress_bar_setting_is_refused_before_any_fetch(demo_site, tmp_path):
    before = sum(demo_site.requests.values())
    result = run_crawl(tmp_path / "archive", start_urls(demo_site), settings={"PROGRESS_BAR": "sometimes"})
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Spider opened" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "news-archive: PROGRESS_BAR must be auto or off, not 'sometimes'"
    assert sum(demo_site.requests.values()) == before


class Terminal:
    """A pseudo-terminal of 200 columns (the bar's text is never cut): what a process writes to its slave side, read from the master side in a
    thread until every writer has closed it; a test can wait for a pattern in it."""

    def __init__(self) -> None:
        import fcntl
        import termios

        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.output = bytearray()
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        os.close(self.slave)  # the child holds it now: the master reads EOF (EIO) once the child has exited
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the slave side is closed
                chunk = b""
            with self._changed:
                if not chunk:
                    self._ended = True
                    self._changed.notify_all()
                    return
                self.output += chunk
                self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern, timeout: float = 120) -> bytes:
        """The first match of ``pattern`` in the output, once it has come; AssertionError if the output ended (or
        ``timeout`` s passed, a safety net) first."""
        with self._changed:
            self._changed.wait_for(lambda: pattern.search(self.output) or self._ended, timeout)
            match = pattern.search(self.output)
        assert match, f"no {pattern.pattern!r} on the terminal:\n{bytes(self.output[-3000:])!r}"
        return match.group(0)

    def close(self, timeout: float = 120) -> str:
        self._reader.join(timeout)
        os.close(self.master)
        return self.output.decode("utf-8", "replace")


@pytest.mark.slow
def test_on_a_terminal_a_progress_bar_is_drawn_and_log_lines_still_come_through(demo_site, tmp_path):
    archive = tmp_path / "archive"
    terminal = Terminal()
    with held(demo_site, HELD) as release:
        process = subprocess.Popen(crawl_command(archive, start_urls(demo_site), settings=PROGRESS_SETTINGS),
                                   cwd=REPO, env=crawl_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=terminal.slave)
        terminal.start()
        try:
            terminal.wait_for(BAR_UPDATED)  # the bar redrawn by a tick, while the held page keeps the crawl going
            release.set()
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = terminal.close()
    assert process.returncode == 0, output[-3000:]
    lines = re.split(r"[\r\n]+", output)
    # log records are written above the bar, each on a line of its own that starts with its timestamp
    logged = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+\] [A-Z]+: ", line)]
    assert [line for line in logged if "[scrapy.core.engine] INFO: Spider opened" in line]
    assert [line for line in logged if line.endswith("[scrapy.core.engine] INFO: Spider closed (finished)")]
    assert [line for line in logged if "[crawler.progress] INFO: progress (final): " in line]
    assert not [line for line in lines if "INFO: progress: " in line]  # the bar takes the periodic line's place
    assert final_counts(output) == manifest_counts(archive)
    assert "Traceback" not in output
