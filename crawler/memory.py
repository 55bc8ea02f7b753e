"""Give freed memory back to the operating system, so a long crawl's resident memory stays flat.

The crawler's live Python objects stay at about 100 MB however long the crawl
(tracemalloc over 6,000 pages), yet its resident memory kept growing: glibc
keeps what it freed. Two things give it back:

- By default glibc's mmap threshold rises to the largest block ever freed, so
  after the first few responses every later body lands in the heap, whose
  freed pages are kept. A fixed threshold (``mallopt``) keeps large blocks in
  their own ``mmap``, returned on free, as ``MALLOC_MMAP_THRESHOLD_`` would
  without asking every user to set it.
- Article texts are unpickled in pebble's result thread and live until their
  row group is written, so the thread arenas fragment. ``malloc_trim(0)``
  every ``MEMORY_TRIM_INTERVAL`` seconds releases the free pages inside every
  arena, not only at the top of the heap (a few milliseconds each time).
- pyarrow's own allocator (mimalloc or jemalloc) keeps what a written row
  group used, about 80 MB after a few thousand pages; with
  ``MEMORY_ARROW_SYSTEM_POOL`` pyarrow allocates through malloc like the rest,
  and the two points above apply to it (6,000 pages: the crawler stayed at
  ~220 MB, against 300-360 MB with both defaults).

Elsewhere than glibc this does nothing. The extraction workers trim too, every few pages
(``pipelines/extract.py``); the glibc calls themselves are ``pipelines/glibc.py``.
"""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.exceptions import NotConfigured
from twisted.internet import task

from pipelines.glibc import glibc, return_freed_memory, trim_freed_memory

logger = logging.getLogger(__name__)

class ReturnFreedMemory:
    """Scrapy extension: ``MEMORY_MALLOC_THRESHOLD`` and ``MEMORY_ARROW_SYSTEM_POOL`` at start, ``malloc_trim``
    every ``MEMORY_TRIM_INTERVAL`` seconds."""

    def __init__(self, threshold: int, trim_interval: float, arrow_system_pool: bool = True) -> None:
        self.threshold = threshold
        self.arrow_system_pool = arrow_system_pool
        self.trim_interval = trim_interval
        self.trimmer = task.LoopingCall(trim_freed_memory) if trim_interval > 0 else None

    @classmethod
    def from_crawler(cls, crawler):
        if glibc() is None:
            raise NotConfigured("not glibc: nothing to tune")
        extension = cls(crawler.settings.getint("MEMORY_MALLOC_THRESHOLD"),
                        crawler.settings.getfloat("MEMORY_TRIM_INTERVAL"),
                        crawler.settings.getbool("MEMORY_ARROW_SYSTEM_POOL"))
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider=None) -> None:
        return_freed_memory(self.threshold)
        if self.arrow_system_pool:
            import pyarrow

            pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        if self.trimmer is not None:
            self.trimmer.start(self.trim_interval, now=False)

    def spider_closed(self, spider=None) -> None:
        if self.trimmer is not None and self.trimmer.running:
            self.trimmer.stop()
