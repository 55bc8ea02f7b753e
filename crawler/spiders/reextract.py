"""The ``reextract`` spider: the archive's own WARC records in, fetched pages out; nothing is requested.

``news-archive reextract [ARCHIVE_URI] [--since DAY] [--until DAY] [--domain D ...] [--extractor-version V]``
runs it (``scrapy crawl reextract -a since=... -a domains=...`` does too). For each WARC file of the archive
(``pipelines/reextract.py`` says which records, one file at a time) every selected record is read back with one
ranged read and handed on as a ``FetchedPage`` that carries the row it was extracted into before; the item
pipelines then do what a crawl does (extraction on all cores, dedup, table commits), the new row keeping the
article's id, version and first capture, stamped with the current ``extractor_version``. Raw capture is off:
the rows point at the records they came from.

Items handed on from ``start`` are not held back by Scrapy as responses are: at most
``REEXTRACT_MAX_IN_FLIGHT`` pages are between this spider and the archive at a time, so memory stays flat
whatever the number of records.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timezone

import scrapy
from scrapy import signals
from scrapy.http import HtmlResponse

from crawler import documents
from crawler.spiders.news import new_crawl_id
from pipelines import stats
from pipelines.archive import dataset_tables, open_store
from pipelines.exceptions import ArchiveConfigError
from pipelines.extract import extractor_version
from pipelines.fingerprints import canonicalize_url, registered_domain
from pipelines.records import FetchedPage, RejectRecord
from pipelines.reextract import PlannedRecord, Selection, plan_warc_files, planned_records
from pipelines.warc import RawPage, WarcRecordError, read_record

logger = logging.getLogger(__name__)

#: headers that described the bytes as they travelled, not the body a record hands back
_TRANSPORT_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


def selection_from_args(since: str | None, until: str | None, domains: str | None,
                        extractor_version_arg: str | None) -> Selection:
    """The spider's arguments as a Selection; ArchiveConfigError for a day that is not YYYY-MM-DD."""
    def day(name: str, value: str | None) -> date | None:
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ArchiveConfigError(f"{name} must be a day, YYYY-MM-DD, not {value!r}") from None

    selection = Selection(since=day("since", since), until=day("until", until),
                          domains=frozenset(d.strip().lower() for d in (domains or "").split(",") if d.strip()),
                          extractor_version=extractor_version_arg or None)
    if selection.since and selection.until and selection.since > selection.until:
        raise ArchiveConfigError(f"since ({selection.since}) is after until ({selection.until})")
    return selection


def replay_response(raw: RawPage) -> HtmlResponse:
    """The response a record holds, as Scrapy would have handed it to the spider (the body as stored, decoded
    by the same rules: header, BOM, meta, then detection)."""
    headers = [(name, value) for name, value in raw.headers if name.lower() not in _TRANSPORT_HEADERS
               and not name.lower().startswith("x-crawler-")]
    return HtmlResponse(url=raw.url, status=raw.status, headers=headers, body=raw.body)


class ReextractSpider(scrapy.Spider):
    name = "reextract"
    custom_settings = {"ARCHIVE_WARC_ENABLED": False, "ARCHIVE_JOB": "reextract"}

    def __init__(self, since: str | None = None, until: str | None = None, domains: str | None = None,
                 extractor_version: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selection = selection_from_args(since, until, domains, extractor_version)
        self.archive_args = {"since": since, "until": until, "domains": domains,
                             "extractor_version": extractor_version}
        self.in_flight = 0
        self._room = asyncio.Event()

    @classmethod
    def update_settings(cls, settings) -> None:
        super().update_settings(settings)
        if not settings.get("ARCHIVE_CRAWL_ID"):
            settings.set("ARCHIVE_CRAWL_ID", new_crawl_id(), priority="spider")

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.crawl_id = settings["ARCHIVE_CRAWL_ID"]
        spider.max_in_flight = max(1, settings.getint("REEXTRACT_MAX_IN_FLIGHT"))
        spider.current_version = extractor_version(favor_precision=settings.getbool("EXTRACT_FAVOR_PRECISION"))
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(spider._item_done, signal=signal)
        return spider

    def _item_done(self, *args, **kwargs) -> None:
        self.in_flight -= 1
        self._room.set()

    async def _wait_for_room(self) -> None:
        while self.in_flight >= self.max_in_flight:
            self._room.clear()
            await self._room.wait()

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
            html=documents.page_text(replay_response(raw)),
            body_bytes=len(raw.body),
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
