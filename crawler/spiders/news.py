"""The ``news`` spider: discovery only. Pages, feeds and sitemaps in; fetched HTML pages out.

``scrapy crawl news -a start_urls=URL[,URL...]`` or ``-a sites=FILE``. Each
start URL may be a home or section page, an RSS/Atom feed, a sitemap, sitemap
index or Google News sitemap, or a robots.txt; the response says which.
Links are followed within the start sites, up to ``CRAWL_MAX_LINK_DEPTH`` HTML
hops; feed and sitemap entries are fetched but not followed further. A Google
News sitemap entry's ``news:`` fields travel with its request (``crawler.meta.SITEMAP_NEWS``)
to the page's row.

The spider does not decide what is worth fetching: each request says what it
is for (``crawler.meta.ROLE``) and the known-URL filter (``crawler/known.py``)
drops what this run or the archive already has. Every robots.txt, sitemap and
feed read is handed on as a ``DiscoveredDocument`` for the next run; one that
answers 304 leads to the sitemaps the last run saw in it.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timezone
from urllib.parse import urljoin, urlsplit

import scrapy
from scrapy.linkextractors import LinkExtractor

from crawler import documents
from crawler import meta as request_meta
from crawler.failures import classify_failure, is_unreachable
from crawler.received import RECEIVED_HEADERS, header_pairs
from crawler.shards import shard_from_settings
from crawler.sites import Site, load_sites_file, sites_from_start_urls
from pipelines import stats
from pipelines.exceptions import ArchiveConfigError
from pipelines.fingerprints import canonicalize_url, registered_domain
from pipelines.pagetype import url_shape
from pipelines.records import DiscoveredDocument, Exchange, FetchedPage, RejectRecord, SitemapNews, SitemapNewsSeen

logger = logging.getLogger(__name__)

_FEED_TYPES = re.compile(r"application/(rss|atom|rdf)\+xml", re.I)
_LINKS_XPATH = "//a[@href] | //area[@href]"


def new_crawl_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261125T143800Z-3f9a1c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _header(response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1")[:500] if value else None


def sites_from_args(start_urls: str | None, sites: str | None) -> list[Site]:
    """The sites of ``-a start_urls=...`` and ``-a sites=FILE``; ArchiveConfigError when neither is usable."""
    if not start_urls and not sites:
        raise ArchiveConfigError("give -a start_urls=URL[,URL...] or -a sites=FILE")
    result = load_sites_file(sites) if sites else []
    if start_urls:
        result.extend(sites_from_start_urls(start_urls))
    return result


class NewsSpider(scrapy.Spider):
    name = "news"

    def __init__(self, start_urls: str | None = None, sites: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.archive_args = {"start_urls": start_urls, "sites": sites}
        self._keep_sites(sites_from_args(start_urls, sites))

    def _keep_sites(self, sites: list[Site]) -> None:
        self.sites: list[Site] = sites
        self.allowed_domains = sorted({host for site in self.sites for host in site.hosts}
                                      | {domain for site in self.sites for domain in site.domains})
        self._site_by_domain = {domain: site for site in self.sites for domain in site.domains | site.hosts}

    @classmethod
    def update_settings(cls, settings) -> None:
        super().update_settings(settings)
        if not settings.get("ARCHIVE_CRAWL_ID"):
            settings.set("ARCHIVE_CRAWL_ID", new_crawl_id(), priority="spider")
        contact = settings.get("CRAWL_CONTACT")
        if contact and settings.getpriority("USER_AGENT") <= settings.getpriority("CRAWL_CONTACT"):
            settings.set("USER_AGENT", f"{settings['USER_AGENT']} (+{contact})", priority="cmdline")

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.max_link_depth = crawler.settings.getint("CRAWL_MAX_LINK_DEPTH")
        spider.max_links = crawler.settings.getint("CRAWL_MAX_LINKS_PER_PAGE")
        # only the first links are even looked at: extracting 50,000 would hold the reactor for seconds
        spider.link_extractor = LinkExtractor(tags=("a", "area"), attrs=("href",), unique=True, canonicalize=False,
                                      restrict_xpaths=f"({_LINKS_XPATH})[position() <= {spider.max_links}]")
        spider.crawl_id = crawler.settings["ARCHIVE_CRAWL_ID"]
        spider.xml_max_size = crawler.settings.getint("DOWNLOAD_MAXSIZE")
        spider.capture = crawler.settings.getbool("ARCHIVE_WARC_ENABLED")
        shard = shard_from_settings(crawler.settings)
        if shard is not None:
            selected = [site for site in spider.sites if shard.holds(site.shard_key)]
            logger.info("shard %s: %d of %d sites (%s)", shard, len(selected), len(spider.sites),
                        ", ".join(site.name for site in selected) or "none")
            spider.archive_args["shard"] = str(shard)
            spider.archive_args["shard_sites"] = [site.name for site in selected]
            spider._keep_sites(selected)
        if not crawler.settings.get("CRAWL_CONTACT"):
            logger.warning("CRAWL_CONTACT is not set: site owners cannot reach you; set it to a URL or e-mail")
        return spider

    async def start(self):
        for site in self.sites:
            for url in site.start_urls:
                request = self._request(url, role=request_meta.START, via="start", source=None, depth=0)
                if request is not None:
                    request.meta[request_meta.SITE] = site.name
                    yield request

    # --- requests ------------------------------------------------------------------------------------------

    def _site_for(self, url: str) -> Site | None:
        host = (urlsplit(url).hostname or "").lower()
        return self._site_by_domain.get(host) or self._site_by_domain.get(registered_domain(url))

    def _request(self, url: str, *, role: str, via: str, source: str | None, depth: int,
                 lastmod: str | None = None, news: SitemapNews | None = None) -> scrapy.Request | None:
        """A request for ``url`` unless it is off-site or, for an entry, refused by the site's rules."""
        if urlsplit(url).scheme not in ("http", "https"):
            return None
        site = self._site_for(url)
        if site is None or (role == request_meta.ENTRY and not site.allows(url)):
            return None
        meta = {"discovered_via": via, "source_url": source, "link_depth": depth, request_meta.ROLE: role}
        if lastmod:
            meta[request_meta.SITEMAP_LASTMOD] = lastmod
        if news is not None:
            meta[request_meta.SITEMAP_NEWS] = news
        return scrapy.Request(url, callback=self.parse, errback=self.failed, meta=meta)

    # --- responses -----------------------------------------------------------------------------------------

    def failed(self, failure):
        """A request that ended without a page (download error, size limit, error status, refused by a
        middleware): counted and kept in ``rejects`` with its reason, never lost silently. An exception that
        stands for a record of its own (a redirect to a URL already known) hands that record on instead."""
        request = failure.request
        record = getattr(failure.value, "record", None)
        if record is not None:
            yield record
            news = request.meta.get(request_meta.SITEMAP_NEWS)
            if news is not None:  # a news entry redirected to a URL this run has: its fields go to that URL's row
                yield SitemapNewsSeen(url=request.url, canonical_url=record.canonical_url, news=news,
                                      seen_at=datetime.now(timezone.utc))
            return
        outcome = classify_failure(failure.value)
        if is_unreachable(outcome):  # (crawler/reachability.py counts the start URLs that were answered)
            self._count_start(request, reached=False)
        detail = outcome.detail
        if request.meta.get("redirect_urls"):
            detail = f"{detail} (redirected from {request.meta['redirect_urls'][0]})"
        logger.info("Dropped %s: %s (%s)", request.url, outcome.reason, detail)
        self.crawler.stats.inc_value(stats.dropped(outcome.reason))
        yield RejectRecord(
            url=request.url,
            domain=registered_domain(request.url),
            reason=outcome.reason,
            detail=detail[:1000],
            http_status=outcome.http_status,
            discovered_via=request.meta.get("discovered_via", "start"),
            fetched_at=datetime.now(timezone.utc),
            crawl_id=self.crawl_id,
            source_url=request.meta.get("source_url"),
            redirect_urls=list(request.meta.get("redirect_urls", [])),
        )

    def _count_start(self, request, *, reached: bool) -> None:
        site = request.meta.get(request_meta.SITE)
        if site is not None and request.meta.get(request_meta.ROLE) == request_meta.START:
            self.crawler.stats.inc_value(stats.start_url(site, reached=reached))

    def _reject(self, response, reason: str, detail: str | None) -> RejectRecord:
        return RejectRecord(
            url=response.url,
            domain=registered_domain(response.url),
            reason=reason,
            detail=detail,
            http_status=response.status,
            discovered_via=response.meta.get("discovered_via", "start"),
            fetched_at=datetime.now(timezone.utc),
            crawl_id=self.crawl_id,
            source_url=response.meta.get("source_url"),
            redirect_urls=list(response.meta.get("redirect_urls", [])),
        )

    def parse(self, response):
        if response.request is not None and response.status < 500:  # (also counted by crawler/reachability.py)
            self._count_start(response.request, reached=True)
        yield from (output for output in self._parse(response) if output is not None)

    def _parse(self, response):
        via = response.meta.get("discovered_via", "start")
        depth = response.meta.get("link_depth", 0)
        if response.status == 304:
            self.crawler.stats.inc_value(stats.NOT_MODIFIED)
            known = response.meta.get(request_meta.KNOWN_DOCUMENT)
            if known is not None:  # unchanged since the last run: the sitemaps it listed then, each asked anew
                children = [tuple(child) for child in known.get("children", [])]
                yield self._document(response, known["kind"], children, etag=known.get("etag"),
                                     last_modified=known.get("last_modified"))
                yield from self._child_sitemaps(response.url, children, depth)
            return
        try:
            body = documents.xml_body(response, self.xml_max_size)
        except documents.DocumentTooLarge as exc:  # a gzip bomb: counted and recorded, the crawl goes on
            self.crawler.stats.inc_value(stats.dropped("too_large"))
            yield self._reject(response, "too_large", str(exc))
            return
        kind = documents.document_kind(response, body)
        self.crawler.stats.inc_value(stats.discovered(kind))
        if kind == "robots":
            children = [(url, None) for url in documents.robots_sitemaps(body, response.url)]
            yield self._document(response, "robots", children)
            yield from self._child_sitemaps(response.url, children, depth)
        elif kind == "sitemap":
            sitemap_type, entries = documents.sitemap_entries(body)
            if sitemap_type == "sitemapindex":
                children = [(urljoin(response.url, entry.loc), entry.lastmod) for entry in entries]
                yield self._document(response, "sitemapindex", children)
                yield from self._child_sitemaps(response.url, children, depth)
            else:
                yield self._document(response, "urlset", [])
                for entry in entries:
                    url = urljoin(response.url, entry.loc)
                    if entry.news is not None:
                        self.crawler.stats.inc_value(stats.SITEMAP_NEWS_ENTRIES)
                    yield self._request(url, role=request_meta.ENTRY, via="sitemap", source=response.url,
                                        depth=self._entry_depth(url), news=entry.news)
        elif kind == "feed":
            yield self._document(response, "feed", [])
            for url in documents.feed_entries(body):
                url = urljoin(response.url, url)
                yield self._request(url, role=request_meta.ENTRY, via="feed", source=response.url,
                                    depth=self._entry_depth(url))
        elif kind == "html":
            yield self._page(response, via)
            if depth < self.max_link_depth:
                yield from self._follow_links(response, depth + 1)
        else:
            reason = "not_html" if body.strip() else "empty"
            self.crawler.stats.inc_value(stats.dropped(reason))
            content_type = response.headers.get(b"Content-Type", b"").decode("latin-1")[:200] or None
            yield self._reject(response, reason, content_type)

    def _child_sitemaps(self, source: str, children: list[tuple[str, str | None]], depth: int):
        for url, lastmod in children:
            yield self._request(url, role=request_meta.DISCOVERY, via="sitemap", source=source, depth=depth,
                                lastmod=lastmod)

    def _entry_depth(self, url: str) -> int:
        """Feed and sitemap entries are fetched, not followed; a listing page among them gets one hop."""
        return self.max_link_depth - 1 if url_shape(url) == "listing" else self.max_link_depth

    def _document(self, response, kind: str, children, *, etag: str | None = None,
                  last_modified: str | None = None) -> DiscoveredDocument:
        """What the next run needs of this robots.txt, sitemap or feed: validators, and the sitemaps it lists."""
        return DiscoveredDocument(
            url=response.url,
            kind=kind,
            fetched_at=datetime.now(timezone.utc),
            etag=_header(response, b"ETag") or etag,
            last_modified=_header(response, b"Last-Modified") or last_modified,
            children=list(children),
        )

    def _page(self, response, via: str) -> FetchedPage:
        return FetchedPage(
            exchange=self._exchange(response) if self.capture else None,
            url=response.url,
            request_url=response.request.url if response.request else response.url,
            canonical_url=canonicalize_url(response.url),
            body=response.body,
            content_type=_header(response, b"Content-Type"),
            http_status=response.status,
            fetched_at=datetime.now(timezone.utc),
            discovered_via=via,
            source_url=response.meta.get("source_url"),
            http_etag=_header(response, b"ETag"),
            http_last_modified=_header(response, b"Last-Modified"),
            revisit=bool(response.meta.get("revisit")),
            redirect_urls=list(response.meta.get("redirect_urls", [])),
            sitemap_news=response.meta.get(request_meta.SITEMAP_NEWS),
        )

    @staticmethod
    def _exchange(response) -> Exchange:
        """The request as sent and the response as received (headers before decompression), for raw capture."""
        request = response.request
        return Exchange(
            url=response.url,
            method=request.method if request is not None else "GET",
            request_headers=header_pairs(request.headers) if request is not None else [],
            status=response.status,
            protocol=response.protocol or "HTTP/1.1",
            response_headers=response.meta.get(RECEIVED_HEADERS) or header_pairs(response.headers),
            body=response.body,
            fetched_at=datetime.now(timezone.utc),
            ip_address=str(response.ip_address) if response.ip_address is not None else None,
        )

    def _follow_links(self, response, depth: int):
        if float(response.xpath(f"count({_LINKS_XPATH})").get()) > self.max_links:
            self.crawler.stats.inc_value(stats.discovered("links_capped"))
        for link in self.link_extractor.extract_links(response):
            yield self._request(link.url, role=request_meta.ENTRY, via="link", source=response.url, depth=depth)
        for element in response.xpath('//head/link[@rel="alternate"][@href]'):
            if _FEED_TYPES.search(element.attrib.get("type", "")):
                yield self._request(response.urljoin(element.attrib["href"]), role=request_meta.DISCOVERY,
                                    via="feed", source=response.url, depth=depth)
