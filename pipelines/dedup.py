"""Dedup step: an article already archived under another URL, with the same body, or a near copy of one,
becomes a ``DuplicateRecord`` instead of a second row.

``RunIndex`` is the core: what this run has archived so far, looked up by
canonical URL (and the other URLs that led to each article), by content hash
and by SimHash within a Hamming distance (``simhash_index.SimhashIndex``, the
same index the archive state uses for earlier runs). ``DedupPipeline`` is the
Scrapy shell; it asks the archive state (``pipelines/state.py``) about earlier
runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, DropItem

from pipelines.records import ArticleRecord, DuplicateRecord, UrlAlias
from pipelines import fingerprints, stats
from pipelines.simhash_index import SimhashIndex
from pipelines.state import aliases_of, hash_key64

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArchivedRef:
    """Enough of an archived article to name it as the original of a duplicate."""

    article_id: str
    canonical_url: str
    crawl_id: str


class RunIndex:
    """Everything archived so far, by canonical URL, content hash and SimHash."""

    def __init__(self, *, near_distance: int) -> None:
        self._by_url: dict[bytes, ArchivedRef] = {}
        self._by_hash: dict[bytes, ArchivedRef] = {}
        self._near = SimhashIndex(near_distance)
        self._refs: list[ArchivedRef] = []  #: by row of the SimHash index

    def __len__(self) -> int:
        return len(self._by_url)

    def match_url(self, canonical_url: str) -> ArchivedRef | None:
        return self._by_url.get(fingerprints.seen_url_key(canonical_url))

    def match_exact(self, content_hash: str) -> ArchivedRef | None:
        return self._by_hash.get(bytes.fromhex(content_hash))

    def match_near(self, simhash: int) -> tuple[ArchivedRef, int] | None:
        """The closest archived article within the near distance (the first archived among equals)."""
        found = self._near.nearest(simhash)
        return None if found is None else (self._refs[found[0]], found[1])

    def add(self, ref: ArchivedRef, *, content_hash: str, simhash: int, aliases=()) -> None:
        """Remember an archived article under its canonical URL and ``aliases`` (other canonical URLs that led
        to it: the URL it was fetched from, its redirect hops)."""
        self._by_url.setdefault(fingerprints.seen_url_key(ref.canonical_url), ref)
        for alias in aliases:
            self._by_url.setdefault(fingerprints.seen_url_key(alias), ref)
        self._by_hash.setdefault(bytes.fromhex(content_hash), ref)
        self._refs.append(ref)
        self._near.add(simhash, len(self._refs) - 1)


def find_duplicate(index: RunIndex, article: ArticleRecord, *,
                   other_article: bool = False) -> tuple[str, ArchivedRef, int | None] | None:
    """(kind, original, distance) when ``article`` duplicates an archived one, checked url, exact, near;
    ``other_article``: the article's own rows (re-extracted versions of it) do not count."""
    def other(ref):
        return ref is not None and not (other_article and ref.article_id == article.article_id)

    ref = index.match_url(article.canonical_url)
    if other(ref):
        return "url", ref, None
    ref = index.match_exact(article.content_hash)
    if other(ref):
        return "exact", ref, None
    near = index.match_near(fingerprints.from_int64(article.simhash))
    if near is not None and other(near[0]):
        return "near", near[0], near[1]
    return None


def find_reextracted_duplicate(state, article: ArticleRecord) -> tuple[str, ArchivedRef, int | None] | None:
    """For a re-extracted row: (kind, original, distance) when its new body duplicates another article that was
    archived before it (first captured earlier): exact, then near. Reads data files: call it in a thread."""
    candidates = []
    position = state.find_hash(hash_key64(article.content_hash))
    if position is not None:
        candidates.append(("exact", position, None))
    near = state.find_near(fingerprints.from_int64(article.simhash))
    if near is not None:
        candidates.append(("near", near[0], near[1]))
    for kind, position, distance in candidates:
        archived = state.details(position)
        if archived.article_id != article.article_id and archived.first_seen_at < article.first_seen_at:
            return kind, ArchivedRef(archived.article_id, archived.canonical_url, archived.crawl_id), distance
    return None


def find_earlier_duplicate(state, article: ArticleRecord) -> tuple[str, ArchivedRef, int | None] | None:
    """(kind, original, distance) when ``article`` duplicates what an earlier run archived: exact, then near.
    The article's own earlier versions do not count. Reads data files: call it in a thread."""
    position = state.find_hash(hash_key64(article.content_hash))
    if position is not None:
        archived = state.details(position)
        if archived.article_id != article.article_id:
            return "exact", ArchivedRef(archived.article_id, archived.canonical_url, archived.crawl_id), None
    near = state.find_near(fingerprints.from_int64(article.simhash))
    if near is not None:
        archived = state.details(near[0])
        if archived.article_id != article.article_id:
            return "near", ArchivedRef(archived.article_id, archived.canonical_url, archived.crawl_id), near[1]
    return None


def earlier_article(state, canonical_url: str) -> tuple[str, object] | None:
    """What an earlier run archived under ``canonical_url`` (or under a URL it is an alias of): (kind, the
    archived row). Reads a data file: call it in a thread."""
    known = state.known(canonical_url)
    if known is None or known.position is None:
        return None
    return known.kind, state.details(known.position)


class DedupPipeline:
    """ArticleRecord -> itself when new (and remembered), or a DuplicateRecord; UrlAlias -> DuplicateRecord.

    Aliases (links recognised as an already-requested canonical URL before
    fetching, redirects to a known URL) wait until that canonical URL has been
    archived, unless an earlier run archived it; those whose page turned out
    not to be an article are dropped at the end with a count. Lookups that read
    the archive's data files run in a thread; the in-run index is only touched
    on the reactor thread, and checked again after each wait.
    """

    def __init__(
        self,
        *,
        crawl_id: str,
        near_distance: int,
        max_pending_aliases: int = 100_000,
        stats_collector=None,
        earlier_state=None,
        reextraction: bool = False,
        backfill: bool = False,
        job: str = "crawl",
    ):
        self.crawl_id = crawl_id
        self.job = job  #: ARCHIVE_JOB: recorded as each duplicate's detected_by
        self.reextraction = reextraction  #: every article is a re-extraction of an archived row (ARCHIVE_JOB)
        self.backfill = backfill  #: pages of other crawls: an archived article met again is a duplicate, no revisit
        self.scraper = None  #: () -> Scrapy's scraper, which sends records down the item pipelines
        self.earlier_state = earlier_state or (lambda: None)  #: () -> EarlierRuns of earlier runs, once loaded
        self.cpu_seconds = 0.0
        self.index = RunIndex(near_distance=near_distance)
        self.max_pending_aliases = max_pending_aliases
        self.pending_aliases: dict[bytes, list[UrlAlias]] = {}
        self._pending_count = 0
        self.stats = stats.StatsRecorder(stats_collector)

    @classmethod
    def from_crawler(cls, crawler):
        from pipelines.archive import ArchivePipeline

        def earlier_state():
            pipeline = crawler.get_item_pipeline(ArchivePipeline)
            return pipeline.earlier_runs if pipeline is not None else None

        settings = crawler.settings
        pipeline = cls(
            crawl_id=settings["ARCHIVE_CRAWL_ID"],
            near_distance=settings.getint("DEDUP_NEAR_DISTANCE"),
            max_pending_aliases=settings.getint("DEDUP_MAX_PENDING_ALIASES"),
            stats_collector=crawler.stats,
            earlier_state=earlier_state,
            reextraction=settings.get("ARCHIVE_JOB") == "reextract",
            backfill=settings.get("ARCHIVE_JOB") == "backfill",
            job=settings.get("ARCHIVE_JOB") or "crawl",
        )
        pipeline.scraper = lambda: crawler.engine.scraper
        crawler.signals.connect(pipeline.flush_aliases, signal=signals.spider_idle)
        return pipeline

    def flush_aliases(self) -> None:
        """When nothing is in flight (spider idle): the aliases that can be resolved become records, sent down the
        item pipelines like any item (``Scraper.start_itemproc_async``); the spider is kept open until they are
        written."""
        records = self.resolve_pending()
        if not records or self.scraper is None:
            return
        scraper = self.scraper()
        for record in records:
            asyncio.ensure_future(scraper.start_itemproc_async(record, response=None))
        raise DontCloseSpider("resolved URL aliases are on their way to the archive")

    async def process_item(self, item):
        if isinstance(item, UrlAlias):
            return await self._alias(item)
        if not isinstance(item, ArticleRecord):
            return item
        if self.reextraction:
            return await self._reextracted(item)
        started = time.thread_time()
        match = find_duplicate(self.index, item)
        self.cpu_seconds += time.thread_time() - started
        earlier = False
        state = self.earlier_state()
        if match is None and state is not None:
            known = await asyncio.to_thread(earlier_article, state.archived, item.canonical_url)
            if known is not None:
                kind, archived = known
                ref = ArchivedRef(archived.article_id, archived.canonical_url, archived.crawl_id)
                if kind == "article" and not self.backfill and \
                        fingerprints.canonicalize_url(item.url) == item.canonical_url:
                    if archived.content_hash == item.content_hash:  # a revisit found it unchanged
                        self.stats.inc(stats.REVISIT_UNCHANGED)
                        raise DropItem(f"known article, body unchanged: {item.url}", log_level="DEBUG")
                    item.version = archived.version + 1  # a revisit found it changed: its next version
                    item.first_seen_at = archived.first_seen_at
                    self.stats.inc(stats.NEW_VERSIONS)
                else:  # another URL of an archived article (a variant naming it canonical), or a backfill's copy
                    # of an archived page: recorded, not archived again
                    match, earlier = ("url", ref, None), True
            if match is None:
                match = await asyncio.to_thread(find_earlier_duplicate, state.archived, item)
                earlier = match is not None
        if match is None:
            match = find_duplicate(self.index, item)  # an article of this run may have been added meanwhile
        if match is None:
            self.index.add(
                ArchivedRef(item.article_id, item.canonical_url, item.crawl_id),
                content_hash=item.content_hash,
                simhash=fingerprints.from_int64(item.simhash),
                aliases=aliases_of(item.canonical_url, [item.url, *(item.redirect_urls or [])]),
            )
            return item
        return self._duplicate(item, match, earlier=earlier)

    async def _reextracted(self, item: ArticleRecord):
        """A re-extracted row keeps its identity; it is a duplicate when its new body is that of another article
        archived before it, or of another article this re-extraction has already written."""
        match = find_duplicate(self.index, item, other_article=True)
        earlier = False
        state = self.earlier_state()
        if match is None and state is not None:
            match = await asyncio.to_thread(find_reextracted_duplicate, state.archived, item)
            earlier = match is not None
        if match is None:
            match = find_duplicate(self.index, item, other_article=True)
        if match is None:
            self.index.add(ArchivedRef(item.article_id, item.canonical_url, item.crawl_id),
                           content_hash=item.content_hash, simhash=fingerprints.from_int64(item.simhash))
            return item
        return self._duplicate(item, match, earlier=earlier)

    def _duplicate(self, item: ArticleRecord, match, *, earlier: bool) -> DuplicateRecord:
        kind, ref, distance = match
        if kind == "url" and fingerprints.canonicalize_url(item.url) == ref.canonical_url and not \
                (self.backfill and earlier):  # (a backfill's capture of an archived page is its duplicate)
            # the original's own canonical URL, fetched after a variant of it (AMP...) was archived: the article
            # row already names it; a duplicate of itself would say nothing true
            self.stats.inc(stats.LINKS_TO_OWN_URL)
            raise DropItem(f"canonical URL of an article archived from a variant: {item.url}", log_level="DEBUG")
        self.stats.inc(stats.duplicate(kind, earlier=earlier))
        return DuplicateRecord(
            url=item.url,
            canonical_url=item.canonical_url,
            domain=item.domain,
            kind=kind,
            duplicate_of_id=ref.article_id,
            duplicate_of_url=ref.canonical_url,
            duplicate_of_crawl_id=ref.crawl_id,
            distance=distance,
            title=item.title,
            content_hash=item.content_hash,
            simhash=item.simhash,
            fetched=True,
            http_status=item.http_status,
            discovered_via=item.discovered_via,
            detected_at=datetime.now(timezone.utc),
            crawl_id=self.crawl_id,
            redirect_urls=list(item.redirect_urls or []),
            warc_filename=item.warc_filename,
            warc_record_offset=item.warc_record_offset,
            warc_record_length=item.warc_record_length,
            extractor_version=item.extractor_version,
            detected_by=self.job,
        )

    def close_spider(self) -> None:
        """Aliases still pending at close (a run stopped before it went idle) are counted, not written: their
        links are found again by the next run."""
        for aliases in self.pending_aliases.values():
            self.stats.inc(stats.duplicate("alias_unresolved"), len(aliases))
        self.pending_aliases.clear()
        self.stats.set(stats.DEDUP_CPU, round(self.cpu_seconds, 3))

    async def _alias(self, alias: UrlAlias):
        ref = self.index.match_url(alias.canonical_url)
        state = self.earlier_state()
        if ref is None and state is not None:
            known = await asyncio.to_thread(earlier_article, state.archived, alias.canonical_url)
            ref = self.index.match_url(alias.canonical_url)  # this run may have archived it meanwhile
            if ref is None and known is not None:
                archived = known[1]
                ref = ArchivedRef(archived.article_id, archived.canonical_url, archived.crawl_id)
        if ref is not None:
            record = self._alias_record(alias, ref)
            if record is None:
                raise DropItem(f"link to the canonical URL of an archived article: {alias.url}", log_level="DEBUG")
            return record
        if self._pending_count >= self.max_pending_aliases:
            self.stats.inc(stats.duplicate("alias_unresolved"))
            raise DropItem(f"URL alias not resolved (pending limit reached): {alias.url}", log_level="DEBUG")
        self.pending_aliases.setdefault(fingerprints.seen_url_key(alias.canonical_url), []).append(alias)
        self._pending_count += 1
        raise DropItem(f"URL alias pending until {alias.canonical_url} is archived: {alias.url}", log_level="DEBUG")

    def resolve_pending(self) -> list[DuplicateRecord]:
        """At the end of the crawl: url duplicates for every pending alias whose canonical URL was archived."""
        records = []
        for aliases in self.pending_aliases.values():
            ref = self.index.match_url(aliases[0].canonical_url)
            for alias in aliases:
                if ref is None:
                    self.stats.inc(stats.duplicate("alias_unresolved"))
                else:
                    record = self._alias_record(alias, ref)
                    if record is not None:
                        records.append(record)
        self.pending_aliases.clear()
        self._pending_count = 0
        return records

    def _alias_record(self, alias: UrlAlias, ref: ArchivedRef) -> DuplicateRecord | None:
        """The url duplicate an alias stands for; None when the link is the original's own canonical URL (the
        article was fetched under another URL first: its row says which), which is no duplicate of anything."""
        if fingerprints.url_without_fragment(alias.url) == ref.canonical_url:
            self.stats.inc(stats.LINKS_TO_OWN_URL)
            return None
        self.stats.inc(stats.duplicate("url"))
        return DuplicateRecord(
            url=alias.url,
            canonical_url=alias.canonical_url,
            domain=fingerprints.registered_domain(alias.canonical_url),
            kind="url",
            duplicate_of_id=ref.article_id,
            duplicate_of_url=ref.canonical_url,
            duplicate_of_crawl_id=ref.crawl_id,
            fetched=False,
            discovered_via=alias.discovered_via,
            detected_at=alias.seen_at,
            crawl_id=self.crawl_id,
            redirect_urls=list(alias.redirect_urls),
            detected_by=self.job,
        )
