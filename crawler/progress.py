"""How far a crawl has got, while it runs: a line in the log every few seconds, or a live bar on a terminal.

Every ``PROGRESS_INTERVAL`` seconds, at INFO, one line::

    progress: 120 pages fetched, 45 articles, 6 duplicates, 30 rejects, 80 requests waiting, 12.3 pages/s,
    2/2 extraction workers busy

(one line in the log; pages/s over the last interval; articles, duplicates and rejects are rows written;
"requests waiting" is the scheduler's count; ``EXTRACT_WORKERS=0`` says "extraction in process"). When the
spider closes, one last line gives the run's totals and its average pages/s, so that every crawl's log has one,
however short the crawl::

    progress (final): 480 pages fetched, 190 articles, 21 duplicates, 260 rejects, 9.7 pages/s

On a terminal (stderr a TTY, ``PROGRESS_BAR=auto``) a tqdm bar takes the periodic line's place: pages fetched
out of fetched + waiting (its total grows as links are found), the other values after it; log records are
written above it. A CronJob's log (stderr not a TTY) and ``PROGRESS_BAR=off`` get the line.

The values come from the stats collector (the names the run manifest counts, ``pipelines/stats.py``), the
scheduler (``len()``) and the extraction pool (``ExtractPipeline.busy_workers``): a tick on the reactor's loop
only reads counters.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from pipelines import stats
from pipelines.exceptions import ArchiveConfigError
from pipelines.extract import ExtractPipeline

logger = logging.getLogger(__name__)

BAR_MODES = ("auto", "off")  #: PROGRESS_BAR: a bar when stderr is a terminal, or the line always
#: pages fetched out of fetched + waiting, then the postfix (``bar_postfix``); no ETA: the total keeps growing
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} pages [{elapsed}{postfix}]"


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """Where a crawl is at one moment."""

    pages_fetched: int  #: responses received (Scrapy's ``response_received_count``, the manifest's pages_fetched)
    articles: int  #: article rows written
    duplicates: int  #: duplicates rows written
    rejects: int  #: rejects rows written
    requests_waiting: int | None  #: requests in the scheduler; None: not known (the final line: it is closed)
    pages_per_second: float
    busy_workers: int = 0  #: extraction workers holding a page now
    workers: int | None = None  #: extraction workers; 0: extraction in the crawler's process; None: not known


def snapshot(values: dict, *, requests_waiting: int | None, pages_per_second: float,
             workers: tuple[int, int] | None) -> ProgressSnapshot:
    """A snapshot from a crawl's stats ``values``, the scheduler's count and the extraction pool's (busy, total)."""
    busy, total = workers if workers is not None else (0, None)
    return ProgressSnapshot(
        pages_fetched=values.get("response_received_count", 0),
        articles=values.get(stats.rows("articles"), 0),
        duplicates=values.get(stats.rows("duplicates"), 0),
        rejects=values.get(stats.rows("rejects"), 0),
        requests_waiting=requests_waiting,
        pages_per_second=pages_per_second,
        busy_workers=busy,
        workers=total,
    )


def _counts(progress: ProgressSnapshot, *, waiting: str, workers: str) -> list[str]:
    parts = [f"{progress.articles} articles", f"{progress.duplicates} duplicates", f"{progress.rejects} rejects"]
    if progress.requests_waiting is not None:
        parts.append(f"{progress.requests_waiting} {waiting}")
    parts.append(f"{progress.pages_per_second:.1f} pages/s")
    if progress.workers == 0:
        parts.append("extraction in process")
    elif progress.workers is not None:
        parts.append(f"{progress.busy_workers}/{progress.workers} {workers}")
    return parts


def progress_line(progress: ProgressSnapshot) -> str:
    """``120 pages fetched, 45 articles, ..., 2/2 extraction workers busy``: what follows ``progress:``."""
    return ", ".join([f"{progress.pages_fetched} pages fetched",
                      *_counts(progress, waiting="requests waiting", workers="extraction workers busy")])


def bar_postfix(progress: ProgressSnapshot) -> str:
    """What the bar shows after its pages: ``45 articles, ..., 80 waiting, 12.3 pages/s, 2/2 workers busy``."""
    return ", ".join(_counts(progress, waiting="waiting", workers="workers busy"))


def bar_mode(settings) -> str:
    """``PROGRESS_BAR``, checked: ``auto`` or ``off``; ArchiveConfigError otherwise (refused at start-up)."""
    mode = str(settings.get("PROGRESS_BAR", "auto")).strip().lower()
    if mode not in BAR_MODES:
        raise ArchiveConfigError(f"PROGRESS_BAR must be auto or off, not {settings.get('PROGRESS_BAR')!r}")
    return mode


class ConsoleAboveBar(logging.Handler):
    """Stands in for a console handler while a bar is drawn: each record the handler would write is written as
    ``tqdm.write`` does (the bar cleared, the record, the bar again), with the handler's own level, filters and
    formatter. (tqdm's ``logging_redirect_tqdm`` drops the level: Scrapy's root logger lets DEBUG through to
    its handler, which stops it, so LOG_LEVEL=INFO would show DEBUG records on the terminal.)"""

    def __init__(self, console: logging.StreamHandler, bar_class) -> None:
        super().__init__(console.level)
        self.console = console
        self.bar_class = bar_class

    def handle(self, record: logging.LogRecord) -> bool:
        with self.bar_class.external_write_mode(file=self.console.stream):
            return bool(self.console.handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


class CrawlProgress:
    """Scrapy extension: the progress line every ``interval`` seconds, or a tqdm bar on ``stream`` when ``bar``;
    the final line when the spider closes.

    ``requests_waiting`` and ``extraction_workers`` are asked at each tick (the scheduler's count, or None;
    the extraction pool's (busy, total), or None without one), so a test gives plain functions.
    """

    def __init__(self, *, stats_collector, interval: float, bar: bool = False,
                 requests_waiting: Callable[[], int | None] = lambda: None,
                 extraction_workers: Callable[[], tuple[int, int] | None] = lambda: None,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.stats_collector = stats_collector
        self.interval = interval
        self.bar = bar
        self.requests_waiting = requests_waiting
        self.extraction_workers = extraction_workers
        self.stream = stream
        self.clock = clock
        self.task = None
        self.progress_bar = None  #: the tqdm bar while it is drawn
        self._consoles: list[tuple[logging.Handler, ConsoleAboveBar]] = []
        self._started = self._last_time = clock()  #: reset when the spider opens
        self._last_pages = 0

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        interval = settings.getfloat("PROGRESS_INTERVAL")
        if interval <= 0:
            raise NotConfigured("PROGRESS_INTERVAL is 0: no progress line")
        bar = bar_mode(settings) == "auto" and sys.stderr is not None and sys.stderr.isatty()
        extension = cls(stats_collector=crawler.stats, interval=interval, bar=bar,
                        requests_waiting=lambda: scheduler_pending(crawler),
                        extraction_workers=lambda: extraction_workers(crawler), stream=sys.stderr)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider=None) -> None:
        self._started = self._last_time = self.clock()
        self._last_pages = 0
        if self.bar:
            self._show_bar()
        self.task = create_looping_call(self.tick)
        self.task.start(self.interval, now=False)

    def tick(self) -> ProgressSnapshot:
        """One interval: the line logged, or the bar redrawn; pages/s since the last tick."""
        now = self.clock()
        values = self.stats_collector.get_stats()
        pages = values.get("response_received_count", 0)
        rate = (pages - self._last_pages) / (now - self._last_time) if now > self._last_time else 0.0
        self._last_pages, self._last_time = pages, now
        progress = snapshot(values, requests_waiting=self.requests_waiting(), pages_per_second=rate,
                            workers=self.extraction_workers())
        if self.progress_bar is not None:
            self._draw(progress)
        else:
            logger.info("progress: %s", progress_line(progress))
        return progress

    def spider_closed(self, spider=None, reason: str | None = None) -> ProgressSnapshot:
        """Stop ticking, take the bar down (it stays on screen as last drawn), log the final line: the totals and
        the run's average pages/s (the scheduler is closed by now, the extraction pool too: neither is asked)."""
        if self.task is not None and self.task.running:
            self.task.stop()
        if self.progress_bar is not None:
            self._hide_bar()
        values = self.stats_collector.get_stats()
        elapsed = self.clock() - self._started
        pages = values.get("response_received_count", 0)
        progress = snapshot(values, requests_waiting=None, pages_per_second=pages / elapsed if elapsed > 0 else 0.0,
                            workers=None)
        logger.info("progress (final): %s", progress_line(progress))
        return progress

    # --- the bar ------------------------------------------------------------------------------------------------

    def _show_bar(self) -> None:
        from tqdm import tqdm

        self.progress_bar = tqdm(total=0, desc="crawl", unit="pages", file=self.stream, bar_format=BAR_FORMAT,
                                 dynamic_ncols=True, mininterval=0)
        root = logging.getLogger()
        self._consoles = [(handler, ConsoleAboveBar(handler, tqdm)) for handler in root.handlers
                          if _writes_to(handler, self.stream)]
        above = dict(self._consoles)
        root.handlers = [above.get(handler, handler) for handler in root.handlers]

    def _draw(self, progress: ProgressSnapshot) -> None:
        bar = self.progress_bar
        bar.total = progress.pages_fetched + (progress.requests_waiting or 0)
        bar.n = progress.pages_fetched
        bar.set_postfix_str(bar_postfix(progress), refresh=False)
        bar.refresh()

    def _hide_bar(self) -> None:
        root = logging.getLogger()
        console = {above: handler for handler, above in self._consoles}
        root.handlers = [console.get(handler, handler) for handler in root.handlers]
        self._consoles = []
        self.progress_bar.close()
        self.progress_bar = None


def _writes_to(handler: logging.Handler, stream) -> bool:
    """Whether ``handler`` writes to ``stream`` (a console handler; a log file's is not one)."""
    return (isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            and handler.stream is stream)


def scheduler_pending(crawler) -> int | None:
    """Requests waiting in the crawl's scheduler (Scrapy's ``Scheduler`` has ``len()``; a scheduler without it
    says only whether it has any: None)."""
    scheduler = crawler.engine.scheduler  # asked from spider_opened on: the engine is there
    if scheduler is None or not hasattr(scheduler, "__len__"):
        return None
    return len(scheduler)


def extraction_workers(crawler) -> tuple[int, int] | None:
    """(busy, total) of the crawl's extraction pool; None when the crawl extracts nothing."""
    pipeline = crawler.get_item_pipeline(ExtractPipeline)
    return (pipeline.busy_workers, pipeline.workers) if pipeline is not None else None
