"""Typed records that flow spider -> extract -> dedup -> parquet.

``FetchedPage`` and ``UrlAlias`` come out of the spider; the extract step turns
a page into an ``ArticleRecord`` or a ``RejectRecord``; the dedup step turns an
article or an alias into a ``DuplicateRecord`` when it has been archived
before. The last three are rows of the datasets of the same names in
``schemas/`` (a test keeps fields and columns in step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(kw_only=True, slots=True)
class FetchedPage:
    """An HTML response the spider hands to extraction."""

    url: str  #: URL fetched, after redirects
    request_url: str  #: URL as requested (before redirects)
    canonical_url: str  #: canonical form of ``url`` (tracking parameters and fragment removed)
    html: str  #: page decoded by Scrapy (header, BOM, meta, then detection)
    body_bytes: int = 0  #: size of the response body as received (0: unknown, then len(html) stands in)
    http_status: int
    fetched_at: datetime  #: UTC
    discovered_via: str  #: start, link, feed or sitemap
    source_url: str | None = None  #: the page, feed or sitemap the URL was found on
    http_etag: str | None = None
    http_last_modified: str | None = None
    revisit: bool = False  #: fetched again because it was archived more than CRAWL_REVISIT_AFTER_DAYS ago


@dataclass(kw_only=True, slots=True)
class UrlAlias:
    """A link whose canonical URL was already requested under another URL, so it was not fetched."""

    url: str
    canonical_url: str
    discovered_via: str
    seen_at: datetime  #: UTC


@dataclass(kw_only=True, slots=True)
class ArticleRecord:
    """A row of the ``articles`` dataset."""

    article_id: str  #: first 32 hex digits of SHA-256 of canonical_url
    version: int = 1
    url: str
    canonical_url: str
    domain: str
    host: str
    title: str | None
    body: str  #: paragraphs separated by a blank line
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None  #: UTC instant
    published_date: date | None = None  #: calendar date as the page states it
    published_at_raw: str | None = None
    published_at_source: str | None = None  #: jsonld, meta, time, htmldate
    modified_at: datetime | None = None  #: UTC instant
    modified_at_raw: str | None = None
    language: str | None = None  #: ISO 639-1
    description: str | None = None
    site_name: str | None = None
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    image_url: str | None = None
    word_count: int
    fetched_at: datetime  #: UTC
    first_seen_at: datetime  #: UTC
    http_status: int
    http_etag: str | None = None
    http_last_modified: str | None = None
    discovered_via: str
    source_url: str | None = None
    crawl_id: str
    content_hash: str  #: SHA-256 hex of the normalised body
    simhash: int  #: 64-bit SimHash as a signed int64
    extractor_version: str


@dataclass(kw_only=True, slots=True)
class DuplicateRecord:
    """A row of the ``duplicates`` dataset: a page or link that is not archived again."""

    url: str
    canonical_url: str
    domain: str
    kind: str  #: url, exact or near
    duplicate_of_id: str
    duplicate_of_url: str
    duplicate_of_crawl_id: str
    distance: int | None = None  #: Hamming distance, for kind near
    title: str | None = None
    content_hash: str | None = None
    simhash: int | None = None
    fetched: bool
    http_status: int | None = None
    discovered_via: str
    detected_at: datetime  #: UTC
    crawl_id: str


@dataclass(kw_only=True, slots=True)
class RejectRecord:
    """A row of the ``rejects`` dataset: a fetched page that did not become an article, and why."""

    url: str
    domain: str
    reason: str
    detail: str | None = None
    http_status: int | None = None
    discovered_via: str
    fetched_at: datetime  #: UTC
    crawl_id: str


#: dataset name -> record type
RECORD_TYPES = {"articles": ArticleRecord, "duplicates": DuplicateRecord, "rejects": RejectRecord}
