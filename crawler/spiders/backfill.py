"""The ``backfill`` spider: WARC files of other crawls in (CC-NEWS, or any), the sites' pages out; nothing fetched.

``news-archive backfill SOURCE... [--cc-news YYYY/MM] (--sites FILE | --start-urls URL,...) [--since DAY]
[--until DAY]`` runs it. Each WARC file (``pipelines/backfill.py`` lists and cuts them) is streamed, never
downloaded whole, from a local path, an ``s3://`` URI (boto3) or an ``http(s)://`` URL (the private-network
guard of the crawl, ``ALLOW_PRIVATE_NETWORKS`` and ``CRAWL_ALLOWED_NETWORKS``, applies to the host and to every
redirect); robots.txt and the crawl's site rules do not apply to reading files. A record is kept when its host is
one of the sites' (exact host or registered domain, never a substring) and its WARC-Date within the range; it
goes on as a ``FetchedPage`` (``discovered_via`` = backfill, its WARC file and offset kept as the row's pointer)
through the crawl's own steps; a bad record becomes a ``rejects`` row with its reason, file and offset, and the
rest of the file goes on.

Resumable: a file a complete backfill read to the end (``state/backfill/<crawl_id>.json``, beside the manifest's
``sources_done``) is not read again; in any other,
the records that already have a row (``articles``, ``duplicates`` or ``rejects`` with that file and offset) are
passed over, so a killed backfill goes on where it stopped, and loses and repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from crawler.containment import LOOK_UP, AddressPolicy
from crawler.spiders.news import sites_from_args
from crawler.spiders.warcpages import WarcPagesSpider, content_type, day_arg, replay_response
from pipelines import stats
from pipelines.archive import BACKFILL_PREFIX, dataset_tables, open_store
from pipelines.backfill import (BadRecord, SkippedRecord, SourceError, SourceRecord, file_day, records,
                                warc_sources)
from pipelines.exceptions import ArchiveConfigError
from pipelines.fingerprints import canonicalize_url, registered_domain
from pipelines.records import FetchedPage, RejectRecord
from pipelines.reextract import judged_offsets

logger = logging.getLogger(__name__)


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, check) -> None:
        super().__init__()
        self.check = check

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.check(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def guard_url(url: str, policy: AddressPolicy) -> None:
    """SourceError when ``url``'s host is, or resolves to, an address the crawl may not connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"not an http(s) URL: {url}")
    refusal = policy.host_refusal(parts.hostname)
    if refusal == LOOK_UP:  # a name: decided on every address it resolves to
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
        except OSError as exc:
            raise SourceError(f"{url}: cannot resolve {parts.hostname}: {exc}") from None
        refused = sorted(address for address in addresses if policy.refuses(address))
        if refused:
            raise SourceError(f"{url}: {parts.hostname} resolves to {refused[0]}, an address the crawl may not "
                              f"connect to (ALLOW_PRIVATE_NETWORKS, CRAWL_ALLOWED_NETWORKS)")
    elif refusal is not None:
        raise SourceError(f"{url}: {parts.hostname} is an address the crawl may not connect to "
                          f"(ALLOW_PRIVATE_NETWORKS, CRAWL_ALLOWED_NETWORKS)")


def source_list(sources: str | None) -> list[str]:
    """``-a sources=``: a JSON list (what ``news-archive backfill`` passes: a URL may hold a comma) or
    comma-separated paths and URIs."""
    if not sources:
        return []
    if sources.lstrip().startswith("["):
        try:
            listed = json.loads(sources)
        except ValueError:
            raise ArchiveConfigError(f"-a sources is not a JSON list: {sources[:200]!r}") from None
        return [str(source) for source in listed if str(source).strip()]
    return [source.strip() for source in sources.split(",") if source.strip()]


def open_source(uri: str, settings):
    """A binary stream of the WARC file at ``uri``, read as it comes (an http(s) URL only where the crawl's address
    policy allows, redirects included)."""
    if uri.startswith("s3://"):
        import boto3
        from botocore.config import Config

        parts = urlsplit(uri)
        client = boto3.client("s3", config=Config(request_checksum_calculation="when_required",
                                                  response_checksum_validation="when_required"))
        try:
            return client.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"]
        except Exception as exc:
            raise SourceError(f"cannot read {uri}: {exc}") from None
    if uri.startswith(("http://", "https://")):
        policy = AddressPolicy.from_settings(settings)
        guard_url(uri, policy)
        opener = urllib.request.build_opener(_CheckedRedirects(lambda url: guard_url(url, policy)))
        try:
            return opener.open(urllib.request.Request(uri, headers={"User-Agent": settings["USER_AGENT"]}),
                               timeout=settings.getfloat("DOWNLOAD_TIMEOUT"))
        except OSError as exc:
            raise SourceError(f"cannot read {uri}: {exc}") from None
    try:
        return open(uri.removeprefix("file://"), "rb")  # noqa: SIM115 (closed when read)
    except OSError as exc:
        raise SourceError(f"cannot read {uri}: {exc.strerror or exc}") from None


def read_bytes(uri: str, settings) -> bytes:
    with open_source(uri, settings) as source:
        return source.read()


def done_sources(store) -> set[str]:
    """Files a complete backfill read to the end (``state/backfill/<crawl_id>.json``, written with its manifest
    once all its rows were committed). An unreadable one is passed over: its files are read again, and their
    records that have a row are skipped."""
    done = set()
    for key in store.list(BACKFILL_PREFIX):
        try:
            done.update(json.loads(store.get_bytes(key))["sources_done"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("backfill: %s is unreadable (%s); the files it names are read again", key, exc)
    return done


class BackfillSpider(WarcPagesSpider):
    name = "backfill"
    custom_settings = {"ARCHIVE_WARC_ENABLED": False, "ARCHIVE_JOB": "backfill"}

    def __init__(self, sources: str | None = None, cc_news: str | None = None, sites: str | None = None,
                 start_urls: str | None = None, since: str | None = None, until: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sources = source_list(sources)
        self.cc_news = cc_news or None
        if not self.sources and not self.cc_news:
            raise ArchiveConfigError("give WARC files to read (-a sources=PATH,URI,...) or a CC-NEWS month (-a cc_news=YYYY/MM)")
        self.sites = sites_from_args(start_urls, sites)
        self.hosts = {host for site in self.sites for host in site.hosts}
        self.domains = {domain for site in self.sites for domain in site.domains}
        self.since, self.until = day_arg("since", since), day_arg("until", until)
        if self.since and self.until and self.since > self.until:
            raise ArchiveConfigError(f"since ({self.since}) is after until ({self.until})")
        self.archive_args = {"sources": sources, "cc_news": cc_news, "sites": sites, "start_urls": start_urls,
                             "since": since, "until": until}
        self.sources_done: list[str] = []
        self.sources_failed: set[str] = set()

    def keep(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        return host in self.hosts or registered_domain(url) in self.domains

    # --- reading sources ---------------------------------------------------------------------------------------

    def open_source(self, uri: str):
        return open_source(uri, self.settings)

    def read_bytes(self, uri: str) -> bytes:
        return read_bytes(uri, self.settings)

    def done_sources(self, store) -> set[str]:
        return done_sources(store)

    # --- the run -----------------------------------------------------------------------------------------------

    async def start(self):
        store = await asyncio.to_thread(open_store, self.settings)
        tables = dataset_tables(store)
        try:
            sources = await asyncio.to_thread(
                warc_sources, self.sources, cc_news=self.cc_news,
                cc_news_base=self.settings["BACKFILL_CC_NEWS_BASE"], read_bytes=self.read_bytes)
        except SourceError as exc:
            logger.error("backfill: %s", exc)
            self.crawler.stats.inc_value(stats.BACKFILL_SOURCES_FAILED)
            return
        done = await asyncio.to_thread(self.done_sources, store)
        logger.info("backfill: %d WARC file(s), %d done by earlier backfills", len(sources), len(done & set(sources)))
        for uri in sources:
            if uri in done:
                self.crawler.stats.inc_value(stats.backfill("sources_already_done"))
                continue
            day = file_day(uri)
            if day and ((self.since and day < self.since - timedelta(days=1))
                        or (self.until and day > self.until + timedelta(days=1))):
                self.crawler.stats.inc_value(stats.backfill("sources_out_of_range"))
                continue
            async for item in self._source(uri, tables):
                yield item
            await self._drained()  # every page of the file is written (not yet committed: the manifest says so)
            if uri in self.sources_failed:  # not read to the end: a rerun reads it again
                continue
            self.sources_done.append(uri)
            self.crawler.stats.set_value(stats.BACKFILL_SOURCES_DONE, list(self.sources_done))

    async def _source(self, uri: str, tables):
        judged = await asyncio.to_thread(judged_offsets, tables, uri, None)
        try:
            stream = await asyncio.to_thread(self.open_source, uri)
        except SourceError as exc:
            logger.error("backfill: %s", exc)
            self._failed(uri)
            return
        logger.info("backfill: reading %s (%d record(s) already archived)", uri, len(judged))
        outcomes = records(stream.read, keep=self.keep, max_bytes=self.settings.getint("EXTRACT_MAX_HTML_BYTES"),
                           since=self.since, until=self.until, skip=judged.__contains__)
        try:
            while True:
                outcome = await asyncio.to_thread(next, outcomes, None)  # reading and inflating off the reactor
                if outcome is None:
                    break
                if isinstance(outcome, SkippedRecord):
                    self.crawler.stats.inc_value(stats.backfill(f"skipped/{outcome.reason}"))
                    continue
                await self._wait_for_room()
                self.in_flight += 1
                if isinstance(outcome, BadRecord):
                    yield self._bad(uri, outcome)
                else:
                    self.crawler.stats.inc_value(stats.WARC_RECORDS_READ)
                    yield self._page(uri, outcome)
        except (OSError, ValueError) as exc:  # the stream itself failed: the file's other records wait for a rerun
            logger.error("backfill: reading %s failed: %s", uri, exc)
            self._failed(uri)
        finally:
            stream.close()

    def _failed(self, uri: str) -> None:
        self.sources_failed.add(uri)
        self.crawler.stats.inc_value(stats.BACKFILL_SOURCES_FAILED)

    def _page(self, uri: str, record: SourceRecord) -> FetchedPage:
        response = replay_response(record.url, record.status, record.headers, record.body)
        return FetchedPage(
            url=record.url, request_url=record.url, canonical_url=canonicalize_url(record.url),
            body=record.body, content_type=content_type(record.headers),
            http_status=record.status,
            fetched_at=record.warc_date, discovered_via="backfill", source_url=None,
            http_etag=response.headers.get(b"ETag", b"").decode("latin-1")[:500] or None,
            http_last_modified=response.headers.get(b"Last-Modified", b"").decode("latin-1")[:500] or None,
            warc_filename=uri, warc_record_offset=record.offset, warc_record_length=record.length,
        )

    def _bad(self, uri: str, record: BadRecord) -> RejectRecord:
        url = record.url or f"{uri}#offset={record.offset}"
        self.crawler.stats.inc_value(stats.dropped(record.reason))
        logger.warning("backfill: %s at %d: %s (%s)", uri, record.offset, record.reason, record.detail)
        return RejectRecord(
            url=url, domain=registered_domain(url) if record.url else urlsplit(uri).hostname or "local",
            reason=record.reason, detail=record.detail[:1000], discovered_via="backfill",
            fetched_at=record.warc_date or datetime.now(timezone.utc), crawl_id=self.crawl_id,
            warc_filename=uri, warc_record_offset=record.offset, warc_record_length=record.length,
        )
