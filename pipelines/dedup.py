"""Dedup step: an article already archived under another URL, with the same body, or a near copy of one,
becomes a ``DuplicateRecord`` instead of a second row.

``ArchiveIndex`` is the core: what has been archived (this run so far; later
runs will load earlier runs into it), looked up by canonical URL, by content
hash and by SimHash within a Hamming distance. ``SimhashIndex`` answers the
last in sub-linear time with the pigeonhole trick: two 64-bit hashes within
distance k agree exactly on at least one of k+1 bit blocks, so each block is
a dictionary key. ``DedupPipeline`` is the Scrapy shell.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from scrapy import signals
from scrapy.exceptions import DropItem

from crawler.items import ArticleRecord, DuplicateRecord, UrlAlias
from crawler.signals import archive_records
from pipelines import fingerprints, stats
from pipelines.exceptions import ArchiveConfigError
from pipelines.state import hash_key64, url_key64

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArchivedRef:
    """Enough of an archived article to name it as the original of a duplicate."""

    article_id: str
    canonical_url: str
    crawl_id: str


class SimhashIndex:
    """64-bit SimHashes searchable by Hamming distance <= ``max_distance``."""

    def __init__(self, max_distance: int) -> None:
        if not 0 <= max_distance < 32:
            raise ArchiveConfigError(f"near-duplicate distance must be within 0..31, got {max_distance}")
        self.max_distance = max_distance
        blocks = max_distance + 1
        edges = [round(i * 64 / blocks) for i in range(blocks + 1)]
        self._masks = [(edges[i], ((1 << (edges[i + 1] - edges[i])) - 1)) for i in range(blocks)]
        self._tables: list[dict[int, list[int]]] = [{} for _ in range(blocks)]
        self._hashes: list[int] = []
        self._refs: list[ArchivedRef] = []

    def __len__(self) -> int:
        return len(self._hashes)

    def _keys(self, value: int):
        for table, (shift, mask) in zip(self._tables, self._masks):
            yield table, (value >> shift) & mask

    def add(self, value: int, ref: ArchivedRef) -> None:
        position = len(self._hashes)
        self._hashes.append(value)
        self._refs.append(ref)
        for table, key in self._keys(value):
            table.setdefault(key, []).append(position)

    def nearest(self, value: int) -> tuple[ArchivedRef, int] | None:
        """The closest stored hash within ``max_distance`` (first added wins a tie), with its distance."""
        best: tuple[int, int] | None = None
        for table, key in self._keys(value):
            for position in table.get(key, ()):
                distance = fingerprints.hamming(value, self._hashes[position])
                if distance <= self.max_distance and (best is None or (distance, position) < best):
                    best = (distance, position)
        if best is None:
            return None
        return self._refs[best[1]], best[0]


class ArchiveIndex:
    """Everything archived so far, by canonical URL, content hash and SimHash."""

    def __init__(self, *, near_distance: int) -> None:
        self._by_url: dict[bytes, ArchivedRef] = {}
        self._by_hash: dict[bytes, ArchivedRef] = {}
        self._near = SimhashIndex(near_distance)

    def __len__(self) -> int:
        return len(self._by_url)

    def match_url(self, canonical_url: str) -> ArchivedRef | None:
        return self._by_url.get(fingerprints.url_key(canonical_url))

    def match_exact(self, content_hash: str) -> ArchivedRef | None:
        return self._by_hash.get(bytes.fromhex(content_hash))

    def match_near(self, simhash: int) -> tuple[ArchivedRef, int] | None:
        return self._near.nearest(simhash)

    def add(self, ref: ArchivedRef, *, content_hash: str, simhash: int) -> None:
        self._by_url.setdefault(fingerprints.url_key(ref.canonical_url), ref)
        self._by_hash.setdefault(bytes.fromhex(content_hash), ref)
        self._near.add(simhash, ref)


def find_duplicate(index: ArchiveIndex, article: ArticleRecord) -> tuple[str, ArchivedRef, int | None] | None:
    """(kind, original, distance) when ``article`` duplicates an archived one, checked url, exact, near."""
    ref = index.match_url(article.canonical_url)
    if ref is not None:
        return "url", ref, None
    ref = index.match_exact(article.content_hash)
    if ref is not None:
        return "exact", ref, None
    near = index.match_near(fingerprints.from_int64(article.simhash))
    if near is not None:
        return "near", near[0], near[1]
    return None


def find_earlier_duplicate(state, article: ArticleRecord) -> tuple[str, ArchivedRef, int | None] | None:
    """(kind, original, distance) when ``article`` duplicates what an earlier run archived: exact, then near.
    The article's own earlier versions do not count."""
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


class DedupPipeline:
    """ArticleRecord -> itself when new (and remembered), or a DuplicateRecord; UrlAlias -> DuplicateRecord.

    Aliases (links recognised as an already-requested canonical URL before
    fetching) wait until that canonical URL has been archived; those whose
    page turned out not to be an article are dropped at the end with a count.
    """

    def __init__(
        self,
        *,
        crawl_id: str,
        near_distance: int,
        max_pending_aliases: int = 100_000,
        stats_collector=None,
        signal_manager=None,
        earlier_state=None,
    ):
        self.crawl_id = crawl_id
        self.signals = signal_manager
        self.earlier_state = earlier_state or (lambda: None)  #: () -> RunState of earlier runs, once loaded
        self.cpu_seconds = 0.0
        self.index = ArchiveIndex(near_distance=near_distance)
        self.max_pending_aliases = max_pending_aliases
        self.pending_aliases: dict[bytes, list[UrlAlias]] = {}
        self._pending_count = 0
        self.stats = stats.StatsRecorder(stats_collector)

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        pipeline = cls(
            crawl_id=settings["ARCHIVE_CRAWL_ID"],
            near_distance=settings.getint("DEDUP_NEAR_DISTANCE"),
            max_pending_aliases=settings.getint("DEDUP_MAX_PENDING_ALIASES"),
            stats_collector=crawler.stats,
            signal_manager=crawler.signals,
            earlier_state=lambda: getattr(crawler, "archive_state", None),
        )
        crawler.signals.connect(pipeline.flush_aliases, signal=signals.spider_idle)
        return pipeline

    def flush_aliases(self) -> None:
        """When nothing is in flight (spider idle) and at close: write the aliases that can be resolved."""
        records = self.resolve_pending()
        if records and self.signals is not None:
            self.signals.send_catch_log(archive_records, records=records)

    def process_item(self, item):
        started = time.thread_time()
        try:
            return self._process(item)
        finally:
            self.cpu_seconds += time.thread_time() - started

    def close_spider(self) -> None:
        self.flush_aliases()
        self.stats.set(stats.DEDUP_CPU, round(self.cpu_seconds, 3))

    def _process(self, item):
        if isinstance(item, UrlAlias):
            return self._alias(item)
        if not isinstance(item, ArticleRecord):
            return item
        match = find_duplicate(self.index, item)
        earlier = False
        if match is None:
            state = self.earlier_state()
            if state is not None:
                if self._known_version(state, item):
                    raise DropItem(f"known article, body unchanged: {item.url}", log_level="DEBUG")
                match = find_earlier_duplicate(state.articles, item)
                earlier = match is not None
        if match is None:
            self.index.add(
                ArchivedRef(item.article_id, item.canonical_url, item.crawl_id),
                content_hash=item.content_hash,
                simhash=fingerprints.from_int64(item.simhash),
            )
            return item
        kind, ref, distance = match
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
        )

    def _known_version(self, state, item: ArticleRecord) -> bool:
        """A page whose canonical URL an earlier run archived: True when its body is unchanged (not archived
        again); otherwise ``item`` becomes the next version of that article (same id, first_seen_at kept)."""
        position = state.articles.find_url(url_key64(item.canonical_url))
        if position is None:
            return False
        archived = state.articles.details(position)
        if archived.content_hash == item.content_hash:
            self.stats.inc(stats.REVISIT_UNCHANGED)
            return True
        item.version = archived.version + 1
        item.first_seen_at = archived.first_seen_at
        self.stats.inc(stats.NEW_VERSIONS)
        return False

    def _alias(self, alias: UrlAlias):
        ref = self.index.match_url(alias.canonical_url)
        if ref is not None:
            return self._alias_record(alias, ref)
        if self._pending_count >= self.max_pending_aliases:
            self.stats.inc(stats.duplicate("alias_unresolved"))
            raise DropItem(f"URL alias not resolved (pending limit reached): {alias.url}", log_level="DEBUG")
        self.pending_aliases.setdefault(fingerprints.url_key(alias.canonical_url), []).append(alias)
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
                    records.append(self._alias_record(alias, ref))
        self.pending_aliases.clear()
        self._pending_count = 0
        return records

    def _alias_record(self, alias: UrlAlias, ref: ArchivedRef) -> DuplicateRecord:
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
        )


