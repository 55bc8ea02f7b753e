"""Skip what is known: the spider's requests, filtered against this run's and the archive's.

``KnownUrlFilter`` is a spider middleware in the manner of scrapy-deltafetch:
the spider yields every URL it discovers, with what it is for
(``crawler.meta.ROLE``), and this filter decides what is sent:

* an **entry** (a link, a feed or sitemap entry) is not requested when the
  archive knows its canonical URL: as an article (``skipped_known``), as another
  URL of one (``skipped_alias``: a redirect hop, a variant that declared it
  canonical, a link recognised earlier), as a page recorded as a copy
  (``skipped_known_duplicate``), or as a URL that failed permanently and is
  waiting out its back-off (``skipped_failed``). A known article due for a
  revisit (``CRAWL_REVISIT_AFTER_DAYS``) is requested again at its canonical URL,
  conditionally. Within the run, a URL whose canonical form was already
  requested is not requested again; when it is another URL, it becomes a
  ``UrlAlias`` so the archive records it. A Google News sitemap entry for a URL
  already requested becomes a ``SitemapNewsSeen``: its fields still reach the
  URL's row (``pipelines/archive.py``).
* a **discovery** document (robots.txt sitemaps, child sitemaps, feeds) is asked
  for conditionally with the validators the last complete run kept; on a 304
  the spider reaches the sitemaps the last run saw in it. A child sitemap
  whose ``<lastmod>`` in its index is not newer than the last run's fetch of it is
  not requested (``skipped_unchanged_sitemap``); what the last run knew of it is
  handed on to the next.
* a **start** URL is always requested (conditionally, when it is a feed or sitemap).

``KnownRedirectFilter`` is its downloader-side half: a redirect whose target the
archive or this run already has is not followed (``redirects_to_known``); the
hops become a ``UrlAlias`` of that target.

State lookups here are in memory (sorted arrays); the one that reads a data
file (an article's HTTP validators, for a revisit) runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from urllib.parse import urljoin

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from w3lib.url import safe_url_string

from crawler import meta as request_meta
from pipelines.records import DiscoveredDocument, SitemapNewsSeen, UrlAlias
from pipelines import stats
from pipelines.fingerprints import canonicalize_url, seen_url_key, url_without_fragment
from pipelines.state import backoff_days, lastmod_instant

logger = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: documents whose children a 304 leads to: never skipped on an index's lastmod, which says nothing of them
_WITH_CHILDREN = frozenset({"robots", "sitemapindex"})


def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


class RedirectToKnown(IgnoreRequest):
    """A redirect not followed because its target is already archived or requested in this run; ``record`` is
    the ``UrlAlias`` the spider hands on in its place."""

    reject_reason = "redirect_to_known"

    def __init__(self, message: str, record: UrlAlias) -> None:
        super().__init__(message)
        self.record = record


class KnownUrlFilter:
    """Spider middleware: requests in, the ones worth sending out (plus the aliases and carried-over discovery
    documents that stand for the others)."""

    def __init__(self, *, revisit_after_days: int = 0, retry_failed_after_days: int = 7, stats_collector=None,
                 earlier_runs=None) -> None:
        self.revisit_after_days = revisit_after_days
        self.retry_failed_after_days = retry_failed_after_days
        self.stats = stats.StatsRecorder(stats_collector)
        self._earlier_runs = earlier_runs or (lambda: None)  #: () -> EarlierRuns of earlier runs, once loaded, or None
        self._requested: dict[bytes, bytes] = {}  #: canonical URL key -> key of the URL first requested for it
        self._aliases_seen: set[bytes] = set()

    @classmethod
    def from_crawler(cls, crawler):
        from pipelines.archive import ArchivePipeline

        def earlier_runs():
            pipeline = crawler.get_item_pipeline(ArchivePipeline)
            return pipeline.earlier_runs if pipeline is not None else None

        return cls(
            revisit_after_days=crawler.settings.getint("CRAWL_REVISIT_AFTER_DAYS"),
            retry_failed_after_days=crawler.settings.getint("CRAWL_RETRY_FAILED_AFTER_DAYS"),
            stats_collector=crawler.stats,
            earlier_runs=earlier_runs,
        )

    # --- Scrapy's hooks ----------------------------------------------------------------------------------------

    async def process_start(self, start):
        async for output in start:
            if isinstance(output, Request):
                self.register(output.url)
                output = self._conditional(output, self._earlier_runs())
            yield output

    async def process_spider_output(self, response, result):
        async for output in result:
            if not isinstance(output, Request):
                yield output
                continue
            role = output.meta.get(request_meta.ROLE, request_meta.ENTRY)
            news = output.meta.get(request_meta.SITEMAP_NEWS)
            if role == request_meta.ENTRY:
                request, output = output, await self._entry(output)
                if news is not None and not isinstance(output, Request) and self.requested(request.url):
                    # requested already (found first by a link or a feed): the entry's fields go to its row
                    self.stats.inc(stats.SITEMAP_NEWS_SEEN)
                    yield SitemapNewsSeen(url=request.url, canonical_url=canonicalize_url(request.url), news=news,
                                          seen_at=datetime.now(timezone.utc))
            elif role == request_meta.DISCOVERY:
                output = self._discovery(output)
            if output is not None:
                yield output

    # --- what this run requested -------------------------------------------------------------------------------

    def register(self, url: str) -> bytes | None:
        """Record ``url`` as requested; the key of the URL first requested for its canonical form, if any."""
        key = seen_url_key(canonicalize_url(url))
        first = self._requested.get(key)
        if first is None:
            self._requested[key] = seen_url_key(url_without_fragment(url))
        return first

    def requested(self, url: str) -> bool:
        """Whether this run requested ``url``'s canonical URL (or a redirect led to it)."""
        return seen_url_key(canonicalize_url(url)) in self._requested

    def known_target(self, url: str) -> str | None:
        """Why a redirect to ``url`` need not be followed: ``archived`` (the archive knows it), ``requested``
        (this run has it), or None."""
        earlier_runs = self._earlier_runs()
        if earlier_runs is not None and earlier_runs.archived.known(canonicalize_url(url)) is not None:
            return "archived"
        return "requested" if self.requested(url) else None

    # --- entries -----------------------------------------------------------------------------------------------

    async def _entry(self, request: Request):
        canonical = canonicalize_url(request.url)
        earlier_runs = self._earlier_runs()
        if earlier_runs is not None:
            archive = earlier_runs.archived
            known = archive.known(canonical)
            if known is not None:
                if known.position is not None and self._revisit_due(archive, known.position):
                    return await self._revisit(request, archive, known.position)
                self.stats.inc({"article": stats.SKIPPED_KNOWN, "alias": stats.SKIPPED_ALIAS,
                                "duplicate": stats.SKIPPED_KNOWN_DUPLICATE}[known.kind])
                return None
            if self._backing_off(archive, canonical):
                self.stats.inc(stats.SKIPPED_FAILED)
                return None
        first = self.register(request.url)
        if first is None:
            return request
        raw = seen_url_key(url_without_fragment(request.url))
        if first != raw and raw not in self._aliases_seen:
            self._aliases_seen.add(raw)
            return UrlAlias(url=request.url, canonical_url=canonical, discovered_via=request.meta.get("discovered_via",
                            "link"), seen_at=datetime.now(timezone.utc))
        return None

    def _revisit_due(self, archive, position) -> bool:
        if self.revisit_after_days <= 0:
            return False
        today = int(datetime.now(timezone.utc).timestamp()) // 86_400
        return today - archive.fetched_day(position) >= self.revisit_after_days

    async def _revisit(self, request: Request, archive, position):
        """The known article again, at its canonical URL, asking for it only if it changed."""
        archived = await asyncio.to_thread(archive.details, position)  # reads a row group of a data file
        if self.register(archived.canonical_url) is not None:
            return None
        self.stats.inc(stats.REVISITS)
        meta = {**request.meta, "revisit": True, "handle_httpstatus_list": [304]}
        return request.replace(url=archived.canonical_url, meta=meta,
                               headers={**conditional_headers(archived.http_etag, archived.http_last_modified)})

    def _backing_off(self, archive, canonical: str) -> bool:
        failure = archive.failure(canonical)
        if failure is None:
            return False
        count, day = failure
        today = int(datetime.now(timezone.utc).timestamp()) // 86_400
        return today - day < backoff_days(count, self.retry_failed_after_days)

    # --- discovery documents -----------------------------------------------------------------------------------

    def _discovery(self, request: Request):
        earlier_runs = self._earlier_runs()
        if earlier_runs is not None:
            if self._backing_off(earlier_runs.archived, canonicalize_url(request.url)):
                self.stats.inc(stats.SKIPPED_FAILED)
                return None
            known = earlier_runs.discovery.get(request.url)
            if known is not None and self._unchanged_by_lastmod(request, known):
                if self.register(request.url) is not None:
                    return None
                self.stats.inc(stats.SKIPPED_UNCHANGED_SITEMAP)
                return carried_document(request.url, known)
        if self.register(request.url) is not None:
            return None
        return self._conditional(request, earlier_runs)

    @staticmethod
    def _unchanged_by_lastmod(request: Request, known: dict) -> bool:
        """Whether the index's <lastmod> for this child says it has not changed since the last run read it."""
        lastmod = lastmod_instant(request.meta.get(request_meta.SITEMAP_LASTMOD))
        if lastmod is None or known.get("kind") in _WITH_CHILDREN or not known.get("fetched_at"):
            return False
        return lastmod <= datetime.fromisoformat(known["fetched_at"])

    @staticmethod
    def _conditional(request: Request, earlier_runs) -> Request:
        """``request`` with the validators the last run kept for it (and what it knew of the document)."""
        known = earlier_runs.discovery.get(request.url) if earlier_runs is not None else None
        if known is None:
            return request
        headers = conditional_headers(known.get("etag"), known.get("last_modified"))
        if not headers:
            return request
        meta = {**request.meta, request_meta.KNOWN_DOCUMENT: known, "handle_httpstatus_list": [304]}
        return request.replace(meta=meta, headers={**request.headers.to_unicode_dict(), **headers})


def carried_document(url: str, known: dict) -> DiscoveredDocument:
    """What the last run recorded of a document this run did not request, handed on unchanged."""
    return DiscoveredDocument(
        url=url, kind=known["kind"], fetched_at=datetime.fromisoformat(known["fetched_at"]),
        etag=known.get("etag"), last_modified=known.get("last_modified"),
        children=[tuple(child) for child in known.get("children", [])],
    )


class KnownRedirectFilter:
    """Downloader middleware, before Scrapy's redirect middleware: a redirect of an entry to a URL the archive
    or this run already has is not followed; the hops are handed on as a ``UrlAlias`` of the target. A redirect
    to the same canonical URL (a site dropping tracking parameters) is followed, past the duplicate filter."""

    def __init__(self, crawler) -> None:
        self.crawler = crawler
        self.stats = stats.StatsRecorder(crawler.stats)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response, spider=None):
        if (response.status not in _REDIRECTS or b"Location" not in response.headers
                or request.meta.get(request_meta.ROLE, request_meta.ENTRY) != request_meta.ENTRY
                or request.meta.get("revisit") or request.meta.get("dont_redirect")
                or response.status in request.meta.get("handle_httpstatus_list", ())):
            return response
        location = safe_url_string(response.headers[b"Location"])
        target = urljoin(request.url, location)
        if canonicalize_url(target) == canonicalize_url(request.url):
            request.dont_filter = True  # the redirected request has the same fingerprint as this one
            return response
        known_filter = self.crawler.get_spider_middleware(KnownUrlFilter)
        if known_filter is None:
            return response
        why = known_filter.known_target(target)
        if why is None:
            known_filter.register(target)  # fetched through this redirect: a later link to it is known
            return response
        self.stats.inc(stats.REDIRECTS_TO_KNOWN)
        hops = [*request.meta.get("redirect_urls", []), request.url]
        alias = UrlAlias(url=hops[0], canonical_url=canonicalize_url(target), redirect_urls=hops,
                         discovered_via=request.meta.get("discovered_via", "link"), seen_at=datetime.now(timezone.utc))
        raise RedirectToKnown(f"{request.url} redirects to {target}, {why} already", alias)
