"""Extract step: an HTML page -> article fields, or the reason it is not an article.

The core, ``extract_page``, is a pure function over the decoded HTML and its
URL with trafilatura options built once (``build_options``); the same function
serves a backfill script or a benchmark. ``ExtractPipeline`` adapts it to
Scrapy: a ``FetchedPage`` goes in (its body as received: a worker decodes it,
``pipelines.decode``), an ``ArticleRecord`` or ``RejectRecord`` comes out, and
every outcome is counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import logging
import multiprocessing
import re
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from importlib.metadata import version
from urllib.parse import urljoin

from lxml.html import HtmlElement
from pebble import ProcessExpired, ProcessPool
from trafilatura.settings import Extractor, set_date_params
from trafilatura.utils import load_html
from trafilatura.xml import xmltotxt

from pipelines.records import ArticleRecord, FetchedPage, RejectRecord
from pipelines import fingerprints, stats
from pipelines.cpus import usable_cpus
from pipelines.dates import parse_date_statement
from pipelines.decode import page_text
from pipelines.exceptions import ArchiveConfigError
from pipelines.glibc import trim_freed_memory
from pipelines.pagemeta import PageMeta, read_page_meta
from pipelines.pagetype import classify_page
from pipelines.trafilatura_document import trafilatura_document
from pipelines.publisher import body_truncated_by_paywall, paywalled_texts, sitemap_news_columns

logger = logging.getLogger(__name__)

EXTRACTOR_VERSION = f"trafilatura/{version('trafilatura')} news-archive/{version('news-archive')}"


def extractor_version(*, favor_precision: bool = False) -> str:
    """What a row's ``extractor_version`` says: the versions, and the options that change the output."""
    return EXTRACTOR_VERSION + (" favor_precision" if favor_precision else "")

_LANG = re.compile(r"^([a-zA-Z]{2,3})(?:[-_].*)?$")
_SPACES = re.compile(r"[ \t\u00a0]+")
_TITLE_SUFFIX = re.compile(r"^(.{12,}?)\s+[|\-–—·:]\s+([^|\-–—·]{2,60})$")
#: libxml2 (without XML_PARSE_HUGE) stops parsing at this nesting depth and drops the rest of the page
PARSER_MAX_DEPTH = 255


def build_options(*, favor_precision: bool = False, favor_recall: bool = False) -> Extractor:
    """trafilatura options, built once per crawl.

    Extensive date search is off: it turns a "(c) 2019" footer into 2019-01-01.
    Comments are left out of the body; tables are kept.
    """
    date_params = set_date_params(extensive=False)
    date_params["max_date"] = "2999-12-31"  # plausibility is checked against the fetch time by pipelines.dates
    return Extractor(
        output_format="txt",
        with_metadata=True,
        comments=False,
        tables=True,
        precision=favor_precision,
        recall=favor_recall,
        date_params=date_params,
    )


#: left out of the body before trafilatura reads it: a photo's caption and credit (``<figcaption>``), which
#: trafilatura keeps as body text; measured on the corpus (benchmarks/article_quality.py), it pays
PRUNE_XPATH = ["//figcaption"]


@dataclass(kw_only=True, slots=True)
class ExtractedArticle:
    """The page's article fields, before identity and crawl context are added."""

    canonical_url: str
    title: str | None
    body: str  #: paragraphs separated by a blank line
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    published_date: date | None = None
    published_at_raw: str | None = None
    published_at_source: str | None = None
    modified_at: datetime | None = None
    modified_at_raw: str | None = None
    language: str | None = None
    description: str | None = None
    site_name: str | None = None
    tags: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    image_url: str | None = None
    sections: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)  #: the page's own; the sitemap's are merged in by to_record
    is_accessible_for_free: bool | None = None
    body_truncated_by_paywall: bool | None = None
    content_hash: str = ""  #: SHA-256 hex of the normalised body
    simhash: int = 0  #: 64-bit SimHash of the body, unsigned


@dataclass(frozen=True, slots=True)
class Extraction:
    """The outcome for one page: an article, or a reason (and detail) why not."""

    article: ExtractedArticle | None
    #: "article", or why not: not_article, too_short, paywalled, empty, too_deep, extraction_failed,
    #: extract_timeout, too_large, worker_crashed
    reason: str
    detail: str = ""
    cpu_seconds: float = 0.0  #: CPU time the extraction took (in whichever process ran it)


def extract_page(html: str, url: str, options: Extractor, *, min_chars: int, now: datetime) -> Extraction:
    """Extract ``html`` (already decoded) fetched from ``url``; ``now`` bounds plausible dates."""
    tree = load_html(html)
    if tree is None:
        return Extraction(None, "empty", "no HTML tree could be parsed")
    if tree.xpath(f"boolean(//*[count(ancestor::*) >= {PARSER_MAX_DEPTH}])"):
        return Extraction(None, "too_deep", f"elements nested {PARSER_MAX_DEPTH} deep: the HTML parser stops there, "
                                            "the rest of the page is lost")
    meta = read_page_meta(tree)
    paywalled = paywalled_texts(tree, meta.paywalled_selectors) if meta.paywalled_selectors else None
    try:
        document = trafilatura_document(tree, options, prune_xpath=PRUNE_XPATH,
                                        date_stated=meta.published_raw is not None)
    except Exception as exc:  # trafilatura has no exception contract; one bad page must not stop the crawl
        return Extraction(None, "extraction_failed", f"{type(exc).__name__}: {exc}"[:500])
    if document is None or document.body is None:
        return Extraction(None, "empty", "trafilatura found no main text")
    title = article_title(meta.jsonld_headline or document.title, document.sitename, url)
    body = body_text(document.body, title)
    if not body:
        return Extraction(None, "empty", "trafilatura found no main text")
    verdict = classify_page(url, meta, body, min_chars=min_chars)
    truncated = body_truncated_by_paywall(paywalled, body)
    if verdict.reason == "too_short" and (meta.is_accessible_for_free is False or truncated):
        # a teaser: the page says the article is not free, and what it served is short
        return Extraction(None, "paywalled", f"isAccessibleForFree {meta.is_accessible_for_free}, "
                                             f"body truncated by paywall {truncated}; {verdict.detail}")
    if not verdict.is_article:
        return Extraction(None, verdict.reason, verdict.detail)
    published = parse_date_statement(meta.published_raw, now=now)
    published_raw, published_source = meta.published_raw, meta.published_source
    if published_raw is None and document.date:
        # only when the page states no date of its own: trafilatura's (htmldate, extensive search off), a
        # calendar date, never an instant. A statement too ambiguous (03/04/2021) or implausible (the future)
        # to read gives no date, its raw string kept: htmldate would guess one from it.
        published = parse_date_statement(document.date, now=now)
        published_raw, published_source = document.date, "htmldate"
        published = type(published)(None, published.day)
    modified = parse_date_statement(meta.modified_raw, now=now)
    content_hash, simhash = fingerprints.body_hashes(body)
    article = ExtractedArticle(
        canonical_url=page_canonical_url(url, meta),
        title=title,
        body=body,
        authors=_authors(document.author, meta),
        published_at=published.instant,
        published_date=published.day,
        published_at_raw=published_raw,
        published_at_source=published_source if published_raw else None,
        modified_at=modified.instant,
        modified_at_raw=meta.modified_raw,
        language=_language(meta.html_lang, document.language),
        description=_clean_line(document.description),
        site_name=_clean_line(document.sitename),
        tags=_clean_list(document.tags),
        categories=_clean_list(document.categories),
        image_url=document.image or None,
        sections=meta.sections,
        keywords=meta.keywords,
        is_accessible_for_free=meta.is_accessible_for_free,
        body_truncated_by_paywall=truncated,
        content_hash=content_hash,
        simhash=simhash,
    )
    return Extraction(article, "article", verdict.detail)


def article_title(title: str | None, site_name: str | None, url: str) -> str | None:
    """The headline without a trailing site name ("Headline | Site", "Headline – Site")."""
    title = _clean_line(html.unescape(title or ""))
    if not title:
        return None
    names = {_name_key(site_name or ""), _name_key(fingerprints.registered_domain(url).split(".")[0])} - {""}
    match = _TITLE_SUFFIX.match(title)
    if match and _name_key(match.group(2)) and any(
        name in _name_key(match.group(2)) or _name_key(match.group(2)) in name for name in names
    ):
        return match.group(1).strip()
    return title


def _name_key(name: str) -> str:
    return re.sub(r"\W+|\.(com|de|org|net|co|uk|at|ch|fr|es|it)\b", "", name.casefold())


def body_text(body: HtmlElement, title: str | None = None) -> str:
    """trafilatura's body tree as text: one paragraph per block, separated by a blank line.

    A leading heading that repeats the title is left out: the title has its own column.
    """
    paragraphs = []
    for block in body:
        text = xmltotxt(block, include_formatting=False).strip()
        text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines() if line.strip())
        if text:
            paragraphs.append(text)
    if paragraphs and title and fingerprints.normalize_body(paragraphs[0]) == fingerprints.normalize_body(title):
        paragraphs.pop(0)
    return "\n\n".join(paragraphs)


def page_canonical_url(url: str, meta: PageMeta) -> str:
    """The canonical URL: rel=canonical, then og:url, when on the same site as ``url``; else ``url`` itself."""
    for declared in (meta.canonical, meta.og_url):
        if not declared:
            continue
        absolute = urljoin(url, declared)
        if absolute.startswith(("http://", "https://")) and fingerprints.same_site(absolute, url):
            return fingerprints.canonicalize_url(absolute)
    return fingerprints.canonicalize_url(url)


def _authors(joined: str | None, meta: PageMeta) -> list[str]:
    """trafilatura's author string split into names (JSON-LD's when it found none); the same name spelt
    twice ("Chuck Ross", "Chuck-Ross") is kept once."""
    names = joined.split(";") if joined else list(meta.jsonld_authors)
    result: list[str] = []
    seen: set[str] = set()
    for name in names:
        name = " ".join(name.split())
        key = re.sub(r"[\W_]+", "", name.casefold())
        if name and key not in seen:
            seen.add(key)
            result.append(name)
    return result


def _language(html_lang: str | None, detected: str | None) -> str | None:
    for candidate in (html_lang, detected):
        match = _LANG.match(candidate or "")
        if match:
            return match.group(1).lower()
    return None


def _clean_line(value: str | None) -> str | None:
    value = " ".join((value or "").split())
    return value or None


def _clean_list(values: list[str] | None) -> list[str]:
    result: list[str] = []
    for value in values or []:
        value = " ".join(value.split())
        if value and value not in result:
            result.append(value)
    return result


# --- worker processes -------------------------------------------------------------------------------------------

#: what the fork server imports once; every worker is forked from it with these already loaded
WORKER_PRELOAD = ["pipelines.extract_preload"]


def worker_context():
    """Workers are forked from a fork server: a clean process started for the purpose (the crawler has
    threads, which a plain fork would copy in an unknown state) that imports this module and nothing of
    Scrapy. Spawned workers would each re-import the crawler's ``__main__`` (Scrapy, Twisted: ~25 MB
    apiece) and start in ~1 s instead of ~10 ms; forked ones share the server's pages of code."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context

#: the options of this worker process, built once by ``init_worker`` (worker processes only)
_worker_options: Extractor | None = None


def init_worker(favor_precision: bool) -> None:
    """Runs once in each worker process: build trafilatura's options there, not per page."""
    global _worker_options  # noqa: PLW0603 (per-process, set before any task)
    _worker_options = build_options(favor_precision=favor_precision)


#: every this many pages a worker gives back to the system the pages glibc kept after freeing them (malloc_trim):
#: a forked worker's private memory after 100 pages +18 MB instead of +44 MB (``python benchmarks/worker_memory.py``)
WORKER_TRIM_EVERY = 10
_worker_pages = 0  #: pages this worker process has extracted


def extract_task(body: bytes, content_type: str | None, url: str, min_chars: int, now: datetime) -> Extraction:
    """One page as received, in a worker process: decoded there (``pipelines.decode``), then extracted; the CPU
    time it took is returned with the outcome."""
    global _worker_pages  # noqa: PLW0603 (per-process)
    extraction = _timed_extraction(body, content_type, url, _worker_options, min_chars, now)
    _worker_pages += 1
    if _worker_pages % WORKER_TRIM_EVERY == 0:
        trim_freed_memory()
    return extraction


def _timed_extraction(body: bytes, content_type: str | None, url: str, options: Extractor, min_chars: int,
                      now: datetime) -> Extraction:
    started = time.process_time()
    extraction = extract_page(page_text(body, content_type), url, options, min_chars=min_chars, now=now)
    return dataclasses.replace(extraction, cpu_seconds=time.process_time() - started)


class ExtractPipeline:
    """Scrapy shell around ``extract_page``: FetchedPage -> ArticleRecord or RejectRecord.

    Pages are extracted in a pool of worker processes (``EXTRACT_WORKERS``, default the CPUs the process may use:
    its CPU affinity and its container's CPU limit, ``pipelines/cpus.py``;
    0 extracts in the crawler's own process), awaited without blocking the reactor, so Scrapy keeps
    downloading while every core extracts. In flight is bounded by Scrapy itself: a response counts
    against ``SCRAPER_SLOT_MAX_ACTIVE_SIZE`` until its item is processed, and downloading pauses when the
    workers fall behind. A page larger than ``EXTRACT_MAX_HTML_BYTES`` is not extracted; one that takes
    longer than ``EXTRACT_TIMEOUT`` seconds has its worker killed and replaced (pebble), as has a worker
    that crashes; each is dropped with its reason, and the other pages in flight are not lost.
    """

    def __init__(self, *, crawl_id: str, min_chars: int, favor_precision: bool = False, workers: int = 0,
                 timeout: float = 30.0, max_html_bytes: int = 5 * 2**20, stats_collector=None, task=None,
                 max_tasks_per_worker: int = 0, published_since: date | None = None,
                 published_until: date | None = None) -> None:
        self.crawl_id = crawl_id
        self.published_since, self.published_until = published_since, published_until
        self.min_chars = min_chars
        self.favor_precision = favor_precision
        self.options = build_options(favor_precision=favor_precision)
        self.extractor_version = extractor_version(favor_precision=favor_precision)
        self.workers = workers
        self.timeout = timeout
        self.max_html_bytes = max_html_bytes
        self.stats = stats.StatsRecorder(stats_collector)
        self.pool: ProcessPool | None = None
        self.task = task or extract_task  #: what a worker runs per page (a module-level function)
        self.max_tasks_per_worker = max_tasks_per_worker
        self.in_flight = 0
        self.cpu_seconds = 0.0

    @property
    def busy_workers(self) -> int:
        """Extraction workers holding a page now (pages in flight past ``workers`` wait in the pool's queue);
        0 when pages are extracted in the crawler's own process."""
        return min(self.in_flight, self.workers) if self.pool is not None else 0

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        workers = settings.getint("EXTRACT_WORKERS", -1)
        return cls(
            crawl_id=settings["ARCHIVE_CRAWL_ID"],
            min_chars=settings.getint("EXTRACT_MIN_CHARS"),
            favor_precision=settings.getbool("EXTRACT_FAVOR_PRECISION"),
            workers=usable_cpus() if workers < 0 else workers,
            timeout=settings.getfloat("EXTRACT_TIMEOUT"),
            max_html_bytes=settings.getint("EXTRACT_MAX_HTML_BYTES"),
            stats_collector=crawler.stats,
            max_tasks_per_worker=settings.getint("EXTRACT_MAX_TASKS_PER_WORKER"),
            published_since=_day_setting(settings, "EXTRACT_PUBLISHED_SINCE"),
            published_until=_day_setting(settings, "EXTRACT_PUBLISHED_UNTIL"),
        )

    def open_spider(self, spider=None) -> None:
        if self.workers > 0:
            self.pool = ProcessPool(max_workers=self.workers, max_tasks=self.max_tasks_per_worker, initializer=init_worker,
                                    initargs=(self.favor_precision,), context=worker_context())

    def close_spider(self, spider=None) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join(timeout=self.timeout + 5)
            self.pool.stop()
        self.stats.set(stats.EXTRACT_CPU, round(self.cpu_seconds, 3))

    async def process_item(self, item):
        if not isinstance(item, FetchedPage):
            return item
        self.stats.inc(stats.PAGES_EXTRACTED)
        now = datetime.now(timezone.utc)
        size = len(item.body)
        if size > self.max_html_bytes:
            extraction = Extraction(None, "too_large", f"{size} bytes of HTML, over EXTRACT_MAX_HTML_BYTES")
        elif self.pool is None:
            extraction = _timed_extraction(item.body, item.content_type, item.url, self.options, self.min_chars, now)
        else:
            extraction = await self._extract_in_pool(item, now)
        self.cpu_seconds += extraction.cpu_seconds
        if extraction.article is not None and not self._published_in_range(extraction.article):
            extraction = Extraction(None, "published_out_of_range",
                                    f"published {extraction.article.published_date}, outside "
                                    f"{self.published_since or '...'} to {self.published_until or '...'}")
        if extraction.article is None:
            self.stats.inc(stats.dropped(extraction.reason))
            return RejectRecord(
                url=item.url,
                domain=fingerprints.registered_domain(item.url),
                reason=extraction.reason,
                detail=extraction.detail,
                http_status=item.http_status,
                discovered_via=item.discovered_via,
                fetched_at=item.fetched_at,
                crawl_id=self.crawl_id,
                source_url=item.source_url,
                redirect_urls=list(item.redirect_urls),
                warc_filename=item.warc_filename,
                warc_record_offset=item.warc_record_offset,
                warc_record_length=item.warc_record_length,
                extractor_version=self.extractor_version,
            )
        self.stats.inc(stats.ARTICLES)
        record = self.to_record(item, extraction.article, extracted_at=now)
        if item.earlier is not None:
            for name, count in item.earlier.changes_in(record).items():
                self.stats.inc(stats.reextracted(name), count)
        return record

    async def _extract_in_pool(self, item: FetchedPage, now: datetime) -> Extraction:
        future = self.pool.schedule(self.task, args=(item.body, item.content_type, item.url, self.min_chars, now), timeout=self.timeout)
        self.in_flight += 1
        self.stats.max(stats.EXTRACT_MAX_IN_FLIGHT, self.in_flight)
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout:
            return Extraction(None, "extract_timeout", f"extraction took over {self.timeout:g} s; its worker was replaced")
        except ProcessExpired as exc:
            return Extraction(None, "worker_crashed", f"the worker process died (exit code {exc.exitcode})")
        except Exception as exc:  # anything the page made the extractor raise
            return Extraction(None, "extraction_failed", f"{type(exc).__name__}: {exc}"[:500])
        finally:
            self.in_flight -= 1

    def _published_in_range(self, article: ExtractedArticle) -> bool:
        """Whether the article's stated publication day is within EXTRACT_PUBLISHED_SINCE/UNTIL (one without a
        date is)."""
        day = article.published_date or (article.published_at.date() if article.published_at else None)
        if day is None:
            return True
        return not ((self.published_since and day < self.published_since)
                    or (self.published_until and day > self.published_until))

    def to_record(self, page: FetchedPage, article: ExtractedArticle, *, extracted_at: datetime) -> ArticleRecord:
        """Add identity and crawl context to the extracted fields, field by field. A re-extracted page keeps the
        identity of the row it was extracted into before (article id, version, first capture)."""
        earlier = page.earlier
        return ArticleRecord(
            article_id=earlier.article_id if earlier else fingerprints.article_id(article.canonical_url),
            version=earlier.version if earlier else 1,
            url=page.url,
            canonical_url=article.canonical_url,
            domain=fingerprints.registered_domain(article.canonical_url),
            host=fingerprints.host_of(article.canonical_url),
            title=article.title,
            body=article.body,
            authors=article.authors,
            published_at=article.published_at,
            published_date=article.published_date,
            published_at_raw=article.published_at_raw,
            published_at_source=article.published_at_source,
            modified_at=article.modified_at,
            modified_at_raw=article.modified_at_raw,
            language=article.language,
            description=article.description,
            site_name=article.site_name,
            tags=article.tags,
            categories=article.categories,
            image_url=article.image_url,
            word_count=len(article.body.split()),
            fetched_at=page.fetched_at,
            first_seen_at=earlier.first_seen_at if earlier else page.fetched_at,
            http_status=page.http_status,
            http_etag=page.http_etag,
            http_last_modified=page.http_last_modified,
            discovered_via=page.discovered_via,
            source_url=page.source_url,
            crawl_id=self.crawl_id,
            content_hash=article.content_hash,
            simhash=fingerprints.to_int64(article.simhash),
            extractor_version=self.extractor_version,
            redirect_urls=list(page.redirect_urls),
            warc_filename=page.warc_filename,
            warc_record_offset=page.warc_record_offset,
            warc_record_length=page.warc_record_length,
            extracted_at=extracted_at,
            sections=article.sections,
            is_accessible_for_free=article.is_accessible_for_free,
            body_truncated_by_paywall=article.body_truncated_by_paywall,
            **sitemap_news_columns(page.sitemap_news, article.keywords, now=extracted_at),
        )





def _day_setting(settings, name: str) -> date | None:
    value = settings.get(name)
    if not value:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ArchiveConfigError(f"{name} must be a day, YYYY-MM-DD, not {value!r}") from None
