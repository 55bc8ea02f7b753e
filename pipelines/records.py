"""Typed records that flow spider -> extract -> dedup -> parquet -> storage -> table.

``FetchedPage``, ``UrlAlias`` and ``DiscoveredDocument`` come out of the
spider; the extract step turns a page into an ``ArticleRecord`` or a
``RejectRecord``; the dedup step turns an article or an alias into a
``DuplicateRecord`` when it has been archived before. The last three are rows
of the datasets of the same names in ``schemas/`` (a test keeps fields and
columns in step). They live with the pipelines, the archive's core: the crawler
depends on them, and nothing in ``pipelines/`` depends on the crawler.
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
    #: the response body as received, after Content-Encoding (the extraction worker decodes it: pipelines.decode)
    body: bytes
    content_type: str | None = None  #: the Content-Type header, for the charset it may declare
    http_status: int
    fetched_at: datetime  #: UTC
    discovered_via: str  #: start, link, feed or sitemap
    source_url: str | None = None  #: the page, feed or sitemap the URL was found on
    http_etag: str | None = None
    http_last_modified: str | None = None
    revisit: bool = False  #: fetched again because it was archived more than CRAWL_REVISIT_AFTER_DAYS ago
    #: URLs requested before ``url``, in order (the first as linked), when the fetch was redirected
    redirect_urls: list[str] = field(default_factory=list)
    exchange: Exchange | None = None  #: the raw request and response, until the capture step has kept them as WARC
    warc_filename: str | None = None  #: where the capture step kept the response record (key in the archive)
    warc_record_offset: int | None = None
    warc_record_length: int | None = None
    earlier: EarlierExtraction | None = None  #: re-extraction: the row this page was extracted into before
    sitemap_news: SitemapNews | None = None  #: what the Google News sitemap entry that listed the URL states


@dataclass(frozen=True, kw_only=True, slots=True)
class SitemapNews:
    """The ``<news:news>`` block of a Google News sitemap entry, each value as stated and bounded in size."""

    title: str | None = None
    publication_date: str | None = None  #: as written (W3C datetime); parsed where the row is made
    publication: str | None = None  #: <news:publication><news:name>
    language: str | None = None  #: <news:publication><news:language>
    keywords: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()  #: older sitemaps: PressRelease, Satire, Blog, OpEd, Opinion, UserGenerated
    stock_tickers: tuple[str, ...] = ()  #: older sitemaps: NASDAQ:AMAT, ...
    access: str | None = None  #: older sitemaps: Subscription or Registration


@dataclass(frozen=True, kw_only=True, slots=True)
class SitemapNewsSeen:
    """A Google News sitemap entry for a URL this run had already requested (found first by a link or a feed): its
    fields go to that URL's article row all the same."""

    url: str  #: the entry's <loc>
    canonical_url: str  #: canonical form of the URL it leads to
    news: SitemapNews
    seen_at: datetime  #: UTC


@dataclass(frozen=True, kw_only=True, slots=True)
class EarlierExtraction:
    """The article row a re-extraction replaces: its identity is kept, its fields are what the report compares."""

    article_id: str
    version: int
    first_seen_at: datetime
    crawl_id: str  #: the run that fetched the page
    extractor_version: str
    title: str | None
    body_chars: int
    content_hash: str
    published_at: datetime | None
    authors: tuple[str, ...]

    def changes_in(self, record: ArticleRecord) -> dict[str, int]:
        """What changed between this row and the page's new row: counts to add up (a re-extraction's report)."""
        delta = len(record.body) - self.body_chars
        changes = {
            "rows": 1,
            "body_changed": int(record.content_hash != self.content_hash),
            "body_chars_added": max(delta, 0),
            "body_chars_removed": max(-delta, 0),
            "title_changed": int(record.title != self.title),
            "published_at_changed": int(record.published_at != self.published_at),
            "authors_changed": int(tuple(record.authors) != self.authors),
        }
        changes["unchanged"] = int(not any(changes[k] for k in ("body_changed", "title_changed", "published_at_changed",
                                                                   "authors_changed")))
        return changes


@dataclass(kw_only=True, slots=True)
class Exchange:
    """One request and the response to it, as the crawler saw them (what a WARC file keeps)."""

    url: str  #: the URL fetched (after redirects)
    method: str
    request_headers: list[tuple[str, str]]  #: as sent
    status: int
    protocol: str = "HTTP/1.1"
    response_headers: list[tuple[str, str]]  #: as received (before Scrapy decompressed the body)
    body: bytes  #: as Scrapy hands it on: decompressed
    fetched_at: datetime  #: UTC
    ip_address: str | None = None


@dataclass(kw_only=True, slots=True)
class WarcFileRecord:
    """A row of the ``warc_files`` dataset: a WARC file of raw pages, published and then committed here."""

    warc_filename: str  #: key in the archive: warc/dt=YYYY-MM-DD/<crawl_id>-<seq>.warc.gz
    cdxj_filename: str  #: its CDXJ index, beside it
    crawl_id: str
    records: int  #: response records (pages) in it
    bytes: int
    sha256: str  #: SHA-256 hex of the file
    first_fetched_at: datetime  #: UTC
    last_fetched_at: datetime  #: UTC


@dataclass(kw_only=True, slots=True)
class UrlAlias:
    """A URL not fetched because it leads to an article already requested: a link whose canonical URL was
    requested under another URL, or a request redirected to a URL already requested or archived."""

    url: str  #: the URL as linked
    canonical_url: str  #: canonical form of the URL it leads to (the link's own, or the redirect target's)
    discovered_via: str
    seen_at: datetime  #: UTC
    #: URLs requested before the known target, in order (the first is ``url``); empty when not requested
    redirect_urls: list[str] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class DiscoveredDocument:
    """A robots.txt, sitemap, sitemap index or feed the run read (or found unchanged): kept in the archive's
    state so the next run asks for it conditionally and, when it has not changed, still reaches its children."""

    url: str
    kind: str  #: robots, sitemapindex, urlset or feed
    fetched_at: datetime  #: UTC; when this content was last seen (a 304 confirms it again)
    etag: str | None = None
    last_modified: str | None = None  #: the Last-Modified header, as sent
    #: for robots and sitemapindex only: the sitemaps it lists, as (URL, lastmod as written or None)
    children: list[tuple[str, str | None]] = field(default_factory=list)


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
    #: URLs requested before ``url``, in order (the first as linked), when the fetch was redirected
    redirect_urls: list[str] | None = field(default_factory=list)
    warc_filename: str | None = None  #: the WARC file holding the page's response record (key in the archive)
    warc_record_offset: int | None = None  #: where the record starts in it (bytes)
    warc_record_length: int | None = None  #: its length (one gzip member)
    extracted_at: datetime | None = None  #: UTC; when this extraction was made (a re-extraction: later than fetched_at)
    sections: list[str] | None = field(default_factory=list)  #: JSON-LD articleSection, article:section, merged
    #: JSON-LD keywords, article:tag, <meta name=keywords> and the sitemap's news:keywords, merged
    keywords: list[str] | None = field(default_factory=list)
    is_accessible_for_free: bool | None = None  #: JSON-LD isAccessibleForFree; None when the page does not say
    #: True: the page marks paywalled parts (hasPart cssSelector) and the body lacks them; False: it holds them
    body_truncated_by_paywall: bool | None = None
    sitemap_news_title: str | None = None
    sitemap_news_published_at: datetime | None = None  #: UTC instant; None without an offset
    sitemap_news_published_date: date | None = None
    sitemap_news_published_at_raw: str | None = None
    sitemap_news_publication: str | None = None
    sitemap_news_language: str | None = None
    sitemap_news_keywords: list[str] | None = None
    sitemap_news_genres: list[str] | None = None
    sitemap_news_stock_tickers: list[str] | None = None
    sitemap_news_access: str | None = None


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
    #: URLs requested on the way, in order (the first as linked): to ``url`` for a fetched duplicate, to the
    #: original for a link recognised at its redirect
    redirect_urls: list[str] | None = field(default_factory=list)
    warc_filename: str | None = None  #: for a fetched duplicate: the WARC file holding its response record
    warc_record_offset: int | None = None
    warc_record_length: int | None = None
    extractor_version: str | None = None  #: for a fetched duplicate: the extractor that made the body compared
    #: the stage that recognised it: crawl, reextract, backfill (the run's ARCHIVE_JOB) or dedup (the dedup stage)
    detected_by: str | None = None


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
    source_url: str | None = None  #: the page, feed or sitemap the URL was found on
    #: URLs requested before ``url``, in order (the first as linked), when the request was redirected
    redirect_urls: list[str] | None = field(default_factory=list)
    warc_filename: str | None = None  #: for a page that was fetched: the WARC file holding its response record
    warc_record_offset: int | None = None
    warc_record_length: int | None = None
    extractor_version: str | None = None  #: for a page handed to extraction: the extractor that judged it


#: dataset name -> record type
RECORD_TYPES = {"articles": ArticleRecord, "duplicates": DuplicateRecord, "rejects": RejectRecord,
                "warc_files": WarcFileRecord}
