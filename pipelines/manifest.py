"""The run manifest: ``<ARCHIVE_URI>/runs/<crawl_id>.json``, written last.

Its presence means every file it lists was published before it. It says when
the run started and ended, how it ended, the settings that shaped it, what it
counted (pages fetched, articles written, duplicates by kind, pages dropped by
reason, errors) and every published file with its rows, bytes and SHA-256.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from pipelines import stats
from pipelines.storage import PublishedFile

MANIFEST_VERSION = 1

#: settings recorded in the manifest (values masked where they could hold a secret)
RECORDED_SETTINGS = (
    "ARCHIVE_JOB", "ARCHIVE_URI", "ARCHIVE_WARC_ENABLED", "ARCHIVE_MAX_FILE_ROWS", "ARCHIVE_MAX_FILE_BYTES", "ARCHIVE_ROW_GROUP_ROWS",
    "ARCHIVE_COMPRESSION", "EXTRACT_MIN_CHARS", "EXTRACT_FAVOR_PRECISION", "DEDUP_NEAR_DISTANCE",
    "CRAWL_MAX_LINK_DEPTH", "DEPTH_LIMIT", "ROBOTSTXT_OBEY", "DOWNLOAD_DELAY", "AUTOTHROTTLE_ENABLED",
    "CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "DOWNLOAD_MAXSIZE", "USER_AGENT", "ALLOW_PRIVATE_NETWORKS",
    "CRAWL_ALLOWED_NETWORKS",
)
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|KEY_ID|ACCESS_KEY|CREDENTIAL)", re.I)


def mask_uri(uri: str) -> str:
    """``uri`` without user info (``s3://key:secret@host/...`` -> ``s3://***@host/...``)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit((parts.scheme, "***@" + parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, ""))


def recorded_settings(settings) -> dict:
    result = {}
    for name in RECORDED_SETTINGS:
        value = settings.get(name)
        if _SECRET_NAME.search(name):
            value = "***"
        elif isinstance(value, str):
            value = mask_uri(value)
        result[name] = value
    return result


def build_manifest(
    *,
    crawl_id: str,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    finish_reason: str | None,
    settings: dict,
    spider_args: dict,
    stat_values: dict,
    files: list[tuple[str, PublishedFile]],
    errors: list[str],
) -> dict:
    """The manifest as a JSON-ready dict. ``files`` is (dataset, published file) in publication order."""
    prefix_dropped = stats.dropped("")
    prefix_dup = stats.duplicate("")
    prefix_earlier = stats.duplicate("", earlier=True)
    prefix_refused = stats.refused("")
    prefix_reextract = stats.reextracted("")
    prefix_backfill = stats.backfill("")
    counts = {
        "pages_fetched": stat_values.get("response_received_count", 0),
        "requests": stat_values.get("downloader/request_count", 0),
        "pages_extracted": stat_values.get(stats.PAGES_EXTRACTED, 0),
        "articles_written": stat_values.get(stats.rows("articles"), 0),
        "duplicates_written": stat_values.get(stats.rows("duplicates"), 0),
        "rejects_written": stat_values.get(stats.rows("rejects"), 0),
        "duplicates": {k[len(prefix_dup):]: v for k, v in sorted(stat_values.items()) if k.startswith(prefix_dup)},
        "duplicates_of_earlier_runs": {
            k[len(prefix_earlier):]: v for k, v in sorted(stat_values.items()) if k.startswith(prefix_earlier)
        },
        "state_rows_loaded": stat_values.get(stats.STATE_ROWS, 0),
        "skipped_known": stat_values.get(stats.SKIPPED_KNOWN, 0),
        "skipped_known_duplicates": stat_values.get(stats.SKIPPED_KNOWN_DUPLICATE, 0),
        "skipped_alias": stat_values.get(stats.SKIPPED_ALIAS, 0),
        "skipped_failed": stat_values.get(stats.SKIPPED_FAILED, 0),
        "skipped_unchanged_sitemaps": stat_values.get(stats.SKIPPED_UNCHANGED_SITEMAP, 0),
        "redirects_to_known": stat_values.get(stats.REDIRECTS_TO_KNOWN, 0),
        "links_to_own_url": stat_values.get(stats.LINKS_TO_OWN_URL, 0),
        "new_articles": stat_values.get(stats.rows("articles"), 0) - stat_values.get(stats.NEW_VERSIONS, 0)
        - stat_values.get(stats.reextracted("rows"), 0),
        "new_versions": stat_values.get(stats.NEW_VERSIONS, 0),
        "revisits": stat_values.get(stats.REVISITS, 0),
        "known_unchanged": stat_values.get(stats.REVISIT_UNCHANGED, 0),
        "not_modified": stat_values.get(stats.NOT_MODIFIED, 0),
        "dropped": {k[len(prefix_dropped):]: v for k, v in sorted(stat_values.items()) if k.startswith(prefix_dropped)},
        "discovery": {
            k[len(stats.DISCOVERED) + 1:]: v for k, v in sorted(stat_values.items()) if k.startswith(stats.DISCOVERED + "/")
        },
        "robots_disallowed": stat_values.get("robotstxt/forbidden", 0),
        "refused": {k[len(prefix_refused):]: v for k, v in sorted(stat_values.items()) if k.startswith(prefix_refused)},
        "offsite_filtered": stat_values.get("offsite/filtered", 0),
        "http_errors": {
            k.rsplit("/", 1)[1]: v for k, v in sorted(stat_values.items())
            if k.startswith("downloader/response_status_count/") and not k.endswith(("/200", "/301", "/302", "/304"))
        },
        "download_errors": stat_values.get("downloader/exception_count", 0)
        - stat_values.get("downloader/exception_type_count/scrapy.exceptions.IgnoreRequest", 0)
        - sum(v for k, v in stat_values.items() if k.startswith(prefix_refused)),  # refused before any download
        "spider_exceptions": sum(v for k, v in stat_values.items() if k.startswith("spider_exceptions/")),
        "log_errors": stat_values.get("log_count/ERROR", 0),
        "cpu_seconds": {k.rsplit("/", 1)[1].removesuffix("_seconds"): v for k, v in sorted(stat_values.items())
                        if k.startswith(f"{stats.PREFIX}/cpu/")},
        "extract_max_in_flight": stat_values.get(stats.EXTRACT_MAX_IN_FLIGHT, 0),
        "warc_records": stat_values.get(stats.WARC_RECORDS, 0),
        "warc_records_read": stat_values.get(stats.WARC_RECORDS_READ, 0),
        "reextract": {k[len(prefix_reextract):]: v for k, v in sorted(stat_values.items())
                      if k.startswith(prefix_reextract)},
        "backfill": {k[len(prefix_backfill):]: v for k, v in sorted(stat_values.items())
                     if k.startswith(prefix_backfill)},
        "sitemap_news": {
            "entries": stat_values.get(stats.SITEMAP_NEWS_ENTRIES, 0),
            "seen_after_request": stat_values.get(stats.SITEMAP_NEWS_SEEN, 0),
            "rows_amended": stat_values.get(stats.SITEMAP_NEWS_AMENDED, 0),
            "too_late": stat_values.get(stats.SITEMAP_NEWS_TOO_LATE, 0),
        },
    }
    return {
        "manifest_version": MANIFEST_VERSION,
        "crawl_id": crawl_id,
        "status": status,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat(),
        "finish_reason": finish_reason,
        "settings": settings,
        "spider_args": spider_args,
        "counts": counts,
        "unreachable_sites": stats.unreachable_sites(stat_values),
        "errors": errors,
        "sources_done": list(stat_values.get(stats.BACKFILL_SOURCES_DONE) or []),
        "files": [{"dataset": dataset, **asdict(published)} for dataset, published in files],
    }


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n").encode()
