"""The ``reextract`` spider: the archive's own WARC records in, fetched pages out; nothing is requested.

``news-archive reextract [ARCHIVE_URI] [--since DAY] [--until DAY] [--domain D ...] [--extractor-version V]``
runs it (``scrapy crawl reextract -a since=... -a domains=...`` does too). For each WARC file of the archive
(``pipelines/reextract.py`` says which records, one file at a time) every selected record is read back with one
ranged read and handed on as a ``FetchedPage`` that carries the row it was extracted into before; the item
pipelines then do what a crawl does (extraction on all cores, dedup, table commits), the new row keeping the
article's id, version and first capture, stamped with the current ``extractor_version``. Raw capture is off:
the rows point at the records they came from.

Items handed on from ``start`` are not held back by Scrapy as responses are: at most
``WARC_MAX_IN_FLIGHT`` pages are between this spider and the archive at a time, so memory stays flat
whatever the number of records.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from crawler.spiders.warcpages import WarcPagesSpider, content_type, day_arg
from pipelines import stats
from pipelines.archive import dataset_tables, open_store
from pipelines.exceptions import ArchiveConfigError
from pipelines.extract import extractor_version
from pipelines.fingerprints import canonicalize_url, registered_domain
from pipelines.publisher import sitemap_news_of_row
from pipelines.records import FetchedPage, RejectRecord
from pipelines.reextract import PlannedRecord, Selection, plan_warc_files, planned_records
from pipelines.warc import WarcRecordError, read_record

logger = logging.getLogger(__name__)

def selection_from_args(since: str | None, until: str | None, domains: str | None,
                        extractor_version_arg: str | None, warc_files: str | None = None) -> Selection:
    """The spider's arguments as a Selection (``warc_files``: comma-separated keys); ArchiveConfigError for a day
    that is not YYYY-MM-DD."""
    selection = Selection(since=day_arg("since", since), until=day_arg("until", until),
                          domains=frozenset(d.strip().lower() for d in (domains or "").split(",") if d.strip()),
                          extractor_version=extractor_version_arg or None,
                          warc_files=frozenset(f.strip() for f in (warc_files or "").split(",") if f.strip()))
    if selection.since and selection.until and selection.since > selection.until:
        raise ArchiveConfigError(f"since ({selection.since}) is after until ({selection.until})")
    return selection


class ReextractSpider(WarcPagesSpider):
    name = "reextract"
    custom_settings = {"ARCHIVE_WARC_ENABLED": False, "ARCHIVE_JOB": "reextract"}

    def __init__(self, since: str | None = None, until: str | None = None, domains: str | None = None,
                 extractor_version: str | None = None, warc_files: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection_from_args(since, until, domains, extractor_version, warc_files)
        self.archive_args = {"since": since, "until": until, "domains": domains,
                             "extractor_version": extractor_version, "warc_files": warc_files}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.current_version = extractor_version(favor_precision=crawler.settings.getbool("EXTRACT_FAVOR_PRECISION"))
        return spider

    async def start(self):
        store = await asyncio.to_thread(open_store, self.settings)
        tables = dataset_tables(store)
        names = await asyncio.to_thread(plan_warc_files, tables, self.selection)
        logger.info("re-extraction with %s: %d WARC file(s) to look at", self.current_version, len(names))
        for name in names:
            planned = await asyncio.to_thread(planned_records, tables, name, self.selection,
                                              current_version=self.current_version)
            logger.info("%s: %d record(s) to re-extract", name, len(planned))
            for record in planned:
                await self._wait_for_room()
                self.in_flight += 1
                yield await self._item(store, record)

    async def _item(self, store, record: PlannedRecord):
        try:
            raw = await asyncio.to_thread(read_record, store, record.warc_filename, record.offset, record.length)
        except (OSError, WarcRecordError) as exc:
            return self._unreadable(record, f"{type(exc).__name__}: {exc}")
        self.crawler.stats.inc_value(stats.WARC_RECORDS_READ)
        if raw.url != record.capture["url"]:
            return self._unreadable(record, f"the record holds {raw.url}, not the row's page")
        capture = record.capture
        redirects = list(capture["redirect_urls"] or [])
        return FetchedPage(
            url=capture["url"],
            request_url=redirects[0] if redirects else capture["url"],
            canonical_url=canonicalize_url(capture["url"]),
            body=raw.body,
            content_type=content_type(raw.headers),
            http_status=capture["http_status"],
            fetched_at=capture["fetched_at"],
            discovered_via=capture["discovered_via"],
            source_url=capture["source_url"],
            http_etag=capture["http_etag"],
            http_last_modified=capture["http_last_modified"],
            redirect_urls=redirects,
            warc_filename=record.warc_filename,
            warc_record_offset=record.offset,
            warc_record_length=record.length,
            earlier=record.earlier,
            sitemap_news=sitemap_news_of_row(capture),
        )

    def _unreadable(self, record: PlannedRecord, detail: str) -> RejectRecord:
        """A record that cannot be read back: counted and kept in ``rejects`` with its pointer (judged by this
        extractor: a rerun does not try it again)."""
        logger.warning("%s at %d: %s", record.warc_filename, record.offset, detail)
        self.crawler.stats.inc_value(stats.dropped("warc_unreadable"))
        return RejectRecord(
            url=record.capture["url"], domain=registered_domain(record.capture["url"]), reason="warc_unreadable",
            detail=detail[:1000], http_status=record.capture["http_status"],
            discovered_via=record.capture["discovered_via"], fetched_at=record.capture["fetched_at"] or
            datetime.now(timezone.utc), crawl_id=self.crawl_id, source_url=record.capture["source_url"],
            redirect_urls=list(record.capture["redirect_urls"] or []), warc_filename=record.warc_filename,
            warc_record_offset=record.offset, warc_record_length=record.length,
            extractor_version=self.current_version,
        )
