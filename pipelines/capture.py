"""Capture step: each fetched page's raw exchange kept as WARC before extraction, and the page given its pointer.

The first item pipeline: a ``FetchedPage`` with its ``Exchange`` goes in; the exchange is appended to this run's
open WARC file (``warc.WarcFile``, which the archive step owns: it rolls, publishes and commits it) in a thread of
its own, never on the reactor (warcio's record building and gzip); the page comes out with ``warc_filename``,
``warc_record_offset`` and ``warc_record_length``, which the rows made from it carry, and without the raw bytes.
``ARCHIVE_WARC_ENABLED=False`` turns it off (the spider then keeps no exchange).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from pipelines import stats
from pipelines.records import FetchedPage

logger = logging.getLogger(__name__)


class CapturePipeline:
    def __init__(self, *, writer=None, stats_collector=None) -> None:
        self.writer = writer or (lambda: None)  #: () -> the archive step's WarcFile, or None
        self.stats = stats.StatsRecorder(stats_collector)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-capture")
        self.cpu_seconds = 0.0

    @classmethod
    def from_crawler(cls, crawler):
        from pipelines.archive import ArchivePipeline

        def writer():
            archive = crawler.get_item_pipeline(ArchivePipeline)
            return archive.warc if archive is not None else None

        return cls(writer=writer, stats_collector=crawler.stats)

    async def process_item(self, item):
        if not isinstance(item, FetchedPage) or item.exchange is None:
            return item
        exchange, item.exchange = item.exchange, None  # the raw bytes leave the item here
        writer = self.writer()
        if writer is None:
            return item
        try:
            pointer, seconds = await asyncio.get_running_loop().run_in_executor(self.executor, self._write, writer,
                                                                                exchange)
        except Exception:  # (a full disk) the page goes on without its record; the run says so at its end
            logger.exception("could not keep %s as WARC", item.url)
            self.stats.inc(stats.WARC_WRITE_FAILED)
            return item
        item.warc_filename, item.warc_record_offset, item.warc_record_length = (
            pointer.filename, pointer.offset, pointer.length)
        self.cpu_seconds += seconds
        self.stats.inc(stats.WARC_RECORDS)
        return item

    @staticmethod
    def _write(writer, exchange):
        started = time.thread_time()
        pointer = writer.write_exchange(exchange)
        return pointer, time.thread_time() - started

    def close_spider(self, spider=None) -> None:
        self.executor.shutdown(wait=True)
        self.stats.set(stats.CAPTURE_CPU, round(self.cpu_seconds, 3))
