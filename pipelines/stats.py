"""Stat names: the monitoring contract, built in one place.

Every name the archive records is made here, so alerts, the run manifest and
tests agree on spelling. Slash-separated, prefixed ``archive/``.
"""

PREFIX = "archive"

PAGES_EXTRACTED = f"{PREFIX}/extract/pages"
ARTICLES = f"{PREFIX}/extract/articles"
EXTRACT_CPU = f"{PREFIX}/cpu/extract_seconds"  #: CPU seconds spent extracting (all workers)
DEDUP_CPU = f"{PREFIX}/cpu/dedup_seconds"
CAPTURE_CPU = f"{PREFIX}/cpu/capture_seconds"  #: CPU seconds building and gzipping WARC records (its thread)
WARC_RECORDS = f"{PREFIX}/warc/records"  #: pages kept as WARC response records
WARC_WRITE_FAILED = f"{PREFIX}/warc/write_failed"  #: pages whose exchange could not be written (a full disk)
WARC_RECORDS_READ = f"{PREFIX}/warc/records_read"  #: response records read back (re-extraction, backfill)
ARCHIVE_CPU = f"{PREFIX}/cpu/archive_seconds"  #: Parquet writing and publishing, in the crawler's process
UPLOAD_CPU = f"{PREFIX}/cpu/upload_seconds"  #: publishing, in the upload threads
EXTRACT_MAX_IN_FLIGHT = f"{PREFIX}/extract/max_in_flight"
ALIASES = f"{PREFIX}/dedup/aliases_seen"
#: an article's own canonical URL met after the article was archived from another URL of it (a tracking or AMP
#: variant): no duplicates row, which would name the article as a copy of itself
LINKS_TO_OWN_URL = f"{PREFIX}/aliases/own_url"
ARTICLES_WRITTEN = f"{PREFIX}/articles/written"
FILES_PUBLISHED = f"{PREFIX}/files/published"
BYTES_PUBLISHED = f"{PREFIX}/files/bytes"
WRITE_FAILED = f"{PREFIX}/write/failed"
UPLOAD_FAILED = f"{PREFIX}/upload/failed"
FAILURE = f"{PREFIX}/failure"  #: one line saying why the archive was not fully written
DISCOVERED = f"{PREFIX}/discovery"
CRAWL_ID = f"{PREFIX}/crawl_id"
SKIPPED_KNOWN = f"{PREFIX}/state/skipped_known"  #: article URLs archived by earlier runs, not fetched again
SKIPPED_KNOWN_DUPLICATE = f"{PREFIX}/state/skipped_known_duplicate"  #: URLs earlier runs recorded as duplicates
SKIPPED_ALIAS = f"{PREFIX}/state/skipped_alias"  #: other URLs of archived articles (redirect hops, variants)
SKIPPED_FAILED = f"{PREFIX}/state/skipped_failed"  #: URLs that failed permanently, waiting out their back-off
SKIPPED_UNCHANGED_SITEMAP = f"{PREFIX}/state/skipped_unchanged_sitemap"  #: child sitemaps whose lastmod is old
REDIRECTS_TO_KNOWN = f"{PREFIX}/state/redirects_to_known"  #: redirects not followed: the target is known
UNREACHABLE_SITES = f"{PREFIX}/unreachable_sites"  #: names of sites none of whose start URLs could be fetched
REVISITS = f"{PREFIX}/state/revisits"  #: known articles fetched again (CRAWL_REVISIT_AFTER_DAYS)
REVISIT_UNCHANGED = f"{PREFIX}/state/revisit_unchanged"
NEW_VERSIONS = f"{PREFIX}/state/new_versions"
STATE_ROWS = f"{PREFIX}/state/rows_loaded"
STATE_REFRESHES = f"{PREFIX}/state/refreshes"  #: times the run read the archive's new commits (ARCHIVE_STATE_REFRESH_SECONDS)
STATE_REFRESHED_FILES = f"{PREFIX}/state/refreshed_files"  #: data files other writers committed, read while running
STATE_REFRESHED_ROWS = f"{PREFIX}/state/refreshed_rows"  #: their article rows
STATE_REFRESH_FAILED = f"{PREFIX}/state/refresh_failed"
NOT_MODIFIED = f"{PREFIX}/state/not_modified"  #: conditional requests answered 304
STATUS = f"{PREFIX}/status"
SITEMAP_NEWS_ENTRIES = f"{PREFIX}/sitemap_news/entries"  #: Google News sitemap entries read with a news block
#: news blocks of entries for URLs this run had already requested, handed on to their rows
SITEMAP_NEWS_SEEN = f"{PREFIX}/sitemap_news/seen_after_request"
SITEMAP_NEWS_AMENDED = f"{PREFIX}/sitemap_news/rows_amended"  #: rows already written, given the fields at file close
#: news blocks that came after their row's file was closed (a run that rolls files before it reads the sitemap)
SITEMAP_NEWS_TOO_LATE = f"{PREFIX}/sitemap_news/too_late"


def dropped(reason: str) -> str:
    """Pages that did not become articles, by reason: ``archive/extract/dropped/<reason>``."""
    return f"{PREFIX}/extract/dropped/{reason}"


def refused(reason: str) -> str:
    """Requests refused before any connection, by reason (private_network, network_not_allowed,
    unsupported_scheme, robots_unavailable, robots_disallowed): ``archive/refused/<reason>``."""
    return f"{PREFIX}/refused/{reason}"


def duplicate(kind: str, *, earlier: bool = False) -> str:
    """Duplicates by kind (url, exact, near) of an article of this run, ``archive/dedup/<kind>``, or of an
    earlier run, ``archive/dedup_earlier/<kind>``."""
    return f"{PREFIX}/dedup_earlier/{kind}" if earlier else f"{PREFIX}/dedup/{kind}"


def discovered(via: str) -> str:
    """Documents read for discovery, by kind (html, feed, sitemap, robots)."""
    return f"{DISCOVERED}/{via}"


def start_url(site: str, *, reached: bool) -> str:
    """Start URLs of a site that were fetched (an answer below 500, 304 included) or could not be (DNS,
    connection, timeout, 5xx or 429): ``archive/start/reached/<site>``, ``archive/start/unreachable/<site>``."""
    return f"{PREFIX}/start/{'reached' if reached else 'unreachable'}/{site}"


def unreachable_sites(values: dict) -> list[str]:
    """Sites none of whose start URLs could be fetched, from a run's stats."""
    reached = {k.removeprefix(f"{PREFIX}/start/reached/") for k in values if k.startswith(f"{PREFIX}/start/reached/")}
    failed = {k.removeprefix(f"{PREFIX}/start/unreachable/") for k in values
              if k.startswith(f"{PREFIX}/start/unreachable/")}
    return sorted(failed - reached)


def started_sites(values: dict) -> list[str]:
    """Sites with at least one start URL tried."""
    return sorted({k.split("/", 3)[3] for k in values if k.startswith(f"{PREFIX}/start/")})


def reextracted(name: str) -> str:
    """A re-extraction's report: rows re-extracted and what changed (``pipelines/reextract.py``),
    ``archive/reextract/<name>``."""
    return f"{PREFIX}/reextract/{name}"


def backfill(name: str) -> str:
    """A backfill's counts: records passed over by reason (``skipped/<reason>``), sources out of the date range,
    already done or that could not be read: ``archive/backfill/<name>``."""
    return f"{PREFIX}/backfill/{name}"


BACKFILL_SOURCES_DONE = f"{PREFIX}/backfill_sources_done"  #: WARC files a backfill read to the end, in order
BACKFILL_SOURCES_FAILED = f"{PREFIX}/backfill/sources_failed"


def rows(dataset: str) -> str:
    """Rows written per dataset: ``archive/rows/<dataset>``."""
    return f"{PREFIX}/rows/{dataset}"


class StatsRecorder:
    """A crawl's stats collector, or nothing: a core built without a crawler (a test, a script) records no stats."""

    def __init__(self, collector=None) -> None:
        self.collector = collector

    def inc(self, name: str, count: int = 1) -> None:
        if self.collector is not None:
            self.collector.inc_value(name, count)

    def set(self, name: str, value) -> None:
        if self.collector is not None:
            self.collector.set_value(name, value)

    def max(self, name: str, value) -> None:
        if self.collector is not None:
            self.collector.max_value(name, value)

    def values(self) -> dict:
        return dict(self.collector.get_stats()) if self.collector is not None else {}
