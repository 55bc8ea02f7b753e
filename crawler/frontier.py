"""The frontier (requests waiting to be fetched) on disk, so that a large sitemap does not grow the crawler.

One sitemap can list 50,000 URLs, and Scrapy enqueues every one of them at
once; in its memory queue each pending request costs about 1 KB, plus what
parsing the sitemap left fragmented. With a ``JOBDIR`` Scrapy keeps them in
disk queues instead, but a ``JOBDIR`` also means resuming: a later run with the
same folder would skip every URL the earlier one saw, home pages included.

``DiskFrontierScheduler`` is Scrapy's scheduler with its disk queues in a
temporary folder of its own (under ``CRAWL_FRONTIER_DIR``, the system's temporary
folder by default), created when the spider opens and removed when it closes.
The duplicate filter stays in memory and nothing is resumed. A user's
``JOBDIR`` is left to Scrapy as usual; ``CRAWL_FRONTIER_ON_DISK = False`` keeps
the frontier in memory. Requests that cannot be serialised
(none of the news spider's) stay in the memory queue, as Scrapy does.
(A 15,000-URL sitemap: the crawler at ~160-185 MB instead of ~205-230 MB over the crawl's first minute.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from scrapy.core.scheduler import Scheduler

from pipelines.exceptions import ArchiveConfigError

_PREFIX = "news-archive-frontier-"


def check_frontier_dir(settings) -> None:
    """Refuse, before anything is fetched, a ``CRAWL_FRONTIER_DIR`` (or temporary folder) the frontier cannot use."""
    if not settings.getbool("CRAWL_FRONTIER_ON_DISK") or settings.get("JOBDIR"):
        return
    root = settings.get("CRAWL_FRONTIER_DIR") or tempfile.gettempdir()
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=_PREFIX, dir=root):
            pass
    except OSError as exc:
        raise ArchiveConfigError(f"CRAWL_FRONTIER_DIR {root} cannot hold the frontier: {exc.strerror or exc}") from exc


class DiskFrontierScheduler(Scheduler):
    """Scrapy's scheduler; without a ``JOBDIR``, its disk queues live in a temporary folder for the run."""

    frontier_on_disk = False
    frontier_root: str | None = None
    temporary_frontier: str | None = None

    @classmethod
    def from_crawler(cls, crawler):
        scheduler = super().from_crawler(crawler)
        scheduler.frontier_on_disk = crawler.settings.getbool("CRAWL_FRONTIER_ON_DISK")
        scheduler.frontier_root = crawler.settings.get("CRAWL_FRONTIER_DIR") or None
        return scheduler

    def open(self, spider):
        if self.dqdir is None and self.frontier_on_disk:
            if self.frontier_root:
                Path(self.frontier_root).mkdir(parents=True, exist_ok=True)
            self.temporary_frontier = tempfile.mkdtemp(prefix=_PREFIX, dir=self.frontier_root)
            self.dqdir = self._dqdir(self.temporary_frontier)
        return super().open(spider)

    def close(self, reason):
        try:
            return super().close(reason)
        finally:
            if self.temporary_frontier is not None:
                shutil.rmtree(self.temporary_frontier, ignore_errors=True)
                self.dqdir = self.temporary_frontier = None
