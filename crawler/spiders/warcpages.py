"""What the spiders that read WARC records instead of fetching (``reextract``, ``backfill``) have in common.

They hand their pages on from ``start``, which Scrapy does not hold back as it holds back responses: at most
``WARC_MAX_IN_FLIGHT`` pages are between the spider and the archive at a time (counted back by the item
signals), so memory stays flat whatever the number of records. A record's response is replayed as Scrapy would
have handed it to the news spider, and decoded by the same rules.
"""

from __future__ import annotations

import asyncio
from datetime import date

import scrapy
from scrapy import signals
from scrapy.http import HtmlResponse

from crawler.spiders.news import new_crawl_id
from pipelines.exceptions import ArchiveConfigError

#: headers that described the bytes as they travelled, not the body a record hands back
_TRANSPORT_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


def day_arg(name: str, value: str | None) -> date | None:
    """A spider argument that is a day, YYYY-MM-DD; ArchiveConfigError otherwise."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArchiveConfigError(f"{name} must be a day, YYYY-MM-DD, not {value!r}") from None


def replay_response(url: str, status: int, headers: list[tuple[str, str]], body: bytes) -> HtmlResponse:
    """The response a record holds, its body as stored (decoded of its transfer and content encodings)."""
    kept = [(name, value) for name, value in headers if name.lower() not in _TRANSPORT_HEADERS
            and not name.lower().startswith("x-crawler-")]
    return HtmlResponse(url=url, status=status, headers=kept, body=body)


def content_type(headers: list[tuple[str, str]]) -> str | None:
    """A record's Content-Type header (the first), for the charset it may declare."""
    return next((value[:500] for name, value in headers if name.lower() == "content-type"), None)


class WarcPagesSpider(scrapy.Spider):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
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
        spider.crawl_id = crawler.settings["ARCHIVE_CRAWL_ID"]
        spider.max_in_flight = max(1, crawler.settings.getint("WARC_MAX_IN_FLIGHT"))
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(spider._item_done, signal=signal)
        return spider

    def _item_done(self, *args, **kwargs) -> None:
        self.in_flight -= 1
        self._room.set()

    async def _wait_for_room(self, limit: int | None = None) -> None:
        """Until fewer than ``limit`` (WARC_MAX_IN_FLIGHT) pages are on their way to the archive."""
        limit = self.max_in_flight if limit is None else limit
        while self.in_flight >= limit:
            self._room.clear()
            await self._room.wait()

    async def _drained(self) -> None:
        """Until every page handed on has been written (or dropped)."""
        await self._wait_for_room(1)
