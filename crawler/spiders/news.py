"""The ``news`` spider: discovery only. Pages, feeds and sitemaps in; fetched HTML pages out.

``scrapy crawl news -a start_urls=URL[,URL...]`` or ``-a sites=FILE``. Each
start URL may be a home or section page, an RSS/Atom feed, a sitemap, sitemap
index or Google News sitemap, or a robots.txt; the response says which.
Links are followed within the start sites, up to ``CRAWL_MAX_LINK_DEPTH`` HTML
hops; feed and sitemap entries are fetched but not followed further. A link
whose canonical URL was already requested is not fetched again; it is handed
on as a ``UrlAlias`` so the archive records it.
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
from crawler.failures import classify_failure
from crawler.items import FetchedPage, RejectRecord, UrlAlias
from crawler.sites import Site, load_sites_file, sites_from_start_urls
from pipelines import stats
from pipelines.exceptions import ArchiveConfigError
from pipelines.pagetype import url_shape
from pipelines.state import url_key64
from pipelines.fingerprints import canonicalize_url, registered_domain, url_key, url_without_fragment

logger = logging.getLogger(__name__)

_FEED_TYPES = re.compile(r"application/(rss|atom|rdf)\+xml", re.I)
_LINKS_XPATH = "//a[@href] | //area[@href]"


def new_crawl_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261125T143800Z-3f9a1c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


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
        self.sites: list[Site] = sites_from_args(start_urls, sites)
        self.archive_args = {"start_urls": start_urls, "sites": sites}
        self.allowed_domains = sorted({host for site in self.sites for host in site.hosts}
                                      | {domain for site in self.sites for domain in site.domains})
        self._site_by_domain = {domain: site for site in self.sites for domain in site.domains | site.hosts}
        self._requested: dict[bytes, bytes] = {}  # canonical URL key -> key of the URL first requested for it
        self._aliases_seen: set[bytes] = set()
        self.discovery_validators: dict[str, dict] = {}  #: published by the archive pipeline for the next run

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
        spider.revisit_after_days = crawler.settings.getint("CRAWL_REVISIT_AFTER_DAYS")
        if not crawler.settings.get("CRAWL_CONTACT"):
            logger.warning("CRAWL_CONTACT is not set: site owners cannot reach you; set it to a URL or e-mail")
        return spider

    async def start(self):
        for site in self.sites:
            for url in site.start_urls:
                request = self._request(url, via="start", source=None, depth=0, rules=False)
                if isinstance(request, scrapy.Request):
                    yield request

    # --- requests ------------------------------------------------------------------------------------------

    def _site_for(self, url: str) -> Site | None:
        host = (urlsplit(url).hostname or "").lower()
        return self._site_by_domain.get(host) or self._site_by_domain.get(registered_domain(url))

    def _request(self, url: str, *, via: str, source: str | None, depth: int, rules: bool = True):
        """A request for ``url`` unless it is off-site, refused by the site's rules, or already requested
        (then a ``UrlAlias`` when it is another URL of the same canonical URL)."""
        if urlsplit(url).scheme not in ("http", "https"):
            return None
        site = self._site_for(url)
        if site is None or (rules and not site.allows(url)):
            return None
        canonical = canonicalize_url(url)
        meta = {"discovered_via": via, "source_url": source, "link_depth": depth}
        headers = {}
        state = self._state()
        if rules and state is not None:
            known = state.articles.find_url(url_key64(canonical))
            if known is None and state.articles.is_known_duplicate(url_key64(canonical)):
                self.crawler.stats.inc_value(stats.SKIPPED_KNOWN_DUPLICATE)
                return None
            if known is not None:
                if not self._revisit_due(state, known):
                    self.crawler.stats.inc_value(stats.SKIPPED_KNOWN)
                    return None
                archived = state.articles.details(known)
                headers = conditional_headers(archived.http_etag, archived.http_last_modified)
                meta.update(revisit=True, handle_httpstatus_list=[304])
        key = url_key(canonical)
        raw = url_key(url_without_fragment(url))
        first = self._requested.get(key)
        if first is not None:
            if first != raw and raw not in self._aliases_seen:
                self._aliases_seen.add(raw)
                return UrlAlias(url=url, canonical_url=canonical, discovered_via=via, seen_at=datetime.now(timezone.utc))
            return None
        self._requested[key] = raw
        if meta.get("revisit"):
            self.crawler.stats.inc_value(stats.REVISITS)
        if not rules and state is not None and url in state.validators:
            headers = conditional_headers(state.validators[url].get("etag"), state.validators[url].get("last_modified"))
            meta["handle_httpstatus_list"] = [304]
        return scrapy.Request(url, callback=self.parse, errback=self.failed, meta=meta, headers=headers or None)

    def _state(self):
        """What earlier runs archived (loaded by the archive pipeline before the first request), or None."""
        return getattr(self.crawler, "archive_state", None)

    def _revisit_due(self, state, position: int) -> bool:
        if self.revisit_after_days <= 0:
            return False
        today = int(datetime.now(timezone.utc).timestamp()) // 86_400
        return today - state.articles.fetched_day(position) >= self.revisit_after_days

    # --- responses -----------------------------------------------------------------------------------------

    def failed(self, failure):
        """A request that ended without a page (download error, size limit, error status, refused by a
        middleware): counted and kept in ``rejects`` with its reason, never lost silently."""
        request = failure.request
        outcome = classify_failure(failure.value)
        detail = outcome.detail
        if request.meta.get("redirect_urls"):
            detail = f"{detail} (redirected from {request.meta['redirect_urls'][0]})"
        logger.info("Dropped %s: %s (%s)", request.url, outcome.reason, detail)
        self.crawler.stats.inc_value(stats.dropped(outcome.reason))
        yield self._reject(request.url, outcome.reason, detail[:1000], outcome.http_status,
                           request.meta.get("discovered_via", "start"))

    def _reject(self, url: str, reason: str, detail: str | None, http_status: int | None, via: str) -> RejectRecord:
        return RejectRecord(
            url=url,
            domain=registered_domain(url),
            reason=reason,
            detail=detail,
            http_status=http_status,
            discovered_via=via,
            fetched_at=datetime.now(timezone.utc),
            crawl_id=self.crawl_id,
        )

    def parse(self, response):
        yield from (output for output in self._parse(response) if output is not None)

    def _parse(self, response):
        via = response.meta.get("discovered_via", "start")
        depth = response.meta.get("link_depth", 0)
        if response.status == 304:
            self.crawler.stats.inc_value(stats.NOT_MODIFIED)
            return
        try:
            body = documents.xml_body(response, self.xml_max_size)
        except documents.DocumentTooLarge as exc:  # a gzip bomb: counted and recorded, the crawl goes on
            self.crawler.stats.inc_value(stats.dropped("too_large"))
            yield self._reject(response.url, "too_large", str(exc), response.status, via)
            return
        kind = documents.document_kind(response, body)
        self.crawler.stats.inc_value(stats.discovered(kind))
        if kind == "robots":
            for url in documents.robots_sitemaps(body, response.url):
                yield self._request(url, via="sitemap", source=response.url, depth=depth, rules=False)
        elif kind == "sitemap":
            self._remember_validators(response)
            yield from self._parse_sitemap(response, body, depth)
        elif kind == "feed":
            self._remember_validators(response)
            for url in documents.feed_entries(body):
                url = urljoin(response.url, url)
                yield self._request(url, via="feed", source=response.url, depth=self._entry_depth(url))
        elif kind == "html":
            yield self._page(response, via)
            if depth < self.max_link_depth:
                yield from self._follow_links(response, depth + 1)
        else:
            reason = "not_html" if body.strip() else "empty"
            self.crawler.stats.inc_value(stats.dropped(reason))
            content_type = response.headers.get(b"Content-Type", b"").decode("latin-1")[:200] or None
            yield self._reject(response.url, reason, content_type, response.status, via)

    def _parse_sitemap(self, response, body: bytes, depth: int):
        sitemap_type, urls = documents.sitemap_entries(body)
        for url in urls:
            url = urljoin(response.url, url)
            if sitemap_type == "sitemapindex":
                yield self._request(url, via="sitemap", source=response.url, depth=depth, rules=False)
            else:
                yield self._request(url, via="sitemap", source=response.url, depth=self._entry_depth(url))

    def _entry_depth(self, url: str) -> int:
        """Feed and sitemap entries are fetched, not followed; a listing page among them gets one hop."""
        return self.max_link_depth - 1 if url_shape(url) == "listing" else self.max_link_depth

    def _remember_validators(self, response) -> None:
        """ETag / Last-Modified of a feed or sitemap, for the next run's conditional request."""
        etag = response.headers.get(b"ETag")
        modified = response.headers.get(b"Last-Modified")
        if etag or modified:
            self.discovery_validators[response.url] = {
                "etag": etag.decode("latin-1") if etag else None,
                "last_modified": modified.decode("latin-1") if modified else None,
            }

    def _page(self, response, via: str) -> FetchedPage:
        return FetchedPage(
            url=response.url,
            request_url=response.request.url if response.request else response.url,
            canonical_url=canonicalize_url(response.url),
            html=documents.page_text(response),
            body_bytes=len(response.body),
            http_status=response.status,
            fetched_at=datetime.now(timezone.utc),
            discovered_via=via,
            source_url=response.meta.get("source_url"),
            http_etag=_header(response, b"ETag"),
            http_last_modified=_header(response, b"Last-Modified"),
            revisit=bool(response.meta.get("revisit")),
        )

    def _follow_links(self, response, depth: int):
        if float(response.xpath(f"count({_LINKS_XPATH})").get()) > self.max_links:
            self.crawler.stats.inc_value(stats.discovered("links_capped"))
        for link in self.link_extractor.extract_links(response):
            yield self._request(link.url, via="link", source=response.url, depth=depth)
        for element in response.xpath('//head/link[@rel="alternate"][@href]'):
            if _FEED_TYPES.search(element.attrib.get("type", "")):
                yield self._request(
                    response.urljoin(element.attrib["href"]), via="feed", source=response.url, depth=depth, rules=False
                )
