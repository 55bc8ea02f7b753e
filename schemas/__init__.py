"""One explicit pyarrow schema per archive dataset.

Parquet files outlive the code that wrote them, so each schema carries a
version in its metadata and a one-line description per column
(``field.metadata[b"description"]``); ``schemas/README.md`` documents the same
columns for people, and ``tests/test_schemas.py`` keeps the two and the record
types in step.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION_KEY = b"news_archive.schema_version"
DATASET_KEY = b"news_archive.dataset"

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _field(name: str, type_: pa.DataType, description: str, *, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={b"description": description.encode()})


def _schema(dataset: str, version: int, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={DATASET_KEY: dataset.encode(), SCHEMA_VERSION_KEY: str(version).encode()})


ARTICLES = _schema(
    "articles",
    5,
    [
        _field("article_id", pa.string(), "Stable id: first 32 hex digits of SHA-256 of canonical_url", nullable=False),
        _field("version", pa.int32(), "1 for the first capture; higher when a revisit found a changed body", nullable=False),
        _field("url", pa.string(), "URL the page was fetched from, after redirects", nullable=False),
        _field("canonical_url", pa.string(), "Canonical URL: rel=canonical/og:url on the same site, tracking parameters and fragment removed", nullable=False),
        _field("domain", pa.string(), "Registered domain of canonical_url (host when none), lower case", nullable=False),
        _field("host", pa.string(), "Host name of canonical_url, lower case", nullable=False),
        _field("title", pa.string(), "Headline, without a trailing site name"),
        _field("body", pa.string(), "Main text without boilerplate; paragraphs separated by a blank line", nullable=False),
        _field("authors", pa.list_(pa.string()), "Author names, one per element; empty when none is stated", nullable=False),
        _field("published_at", UTC_TIMESTAMP, "Publication instant in UTC, from the page's own statement with its offset; null when unknown or without offset"),
        _field("published_date", pa.date32(), "Publication calendar date as the page states it (its own time zone); null when unknown"),
        _field("published_at_raw", pa.string(), "The publication date string exactly as the page gives it"),
        _field("published_at_source", pa.string(), "Where the date came from: jsonld, meta, time, htmldate"),
        _field("modified_at", UTC_TIMESTAMP, "Last-modified instant in UTC, from the page's own statement with its offset; null when unknown"),
        _field("modified_at_raw", pa.string(), "The modification date string exactly as the page gives it"),
        _field("language", pa.string(), "Language, ISO 639-1 code (from <html lang> or content detection); null when unknown"),
        _field("description", pa.string(), "Summary from the page's description metadata"),
        _field("site_name", pa.string(), "Publisher or site name"),
        _field("tags", pa.list_(pa.string()), "Tags or keywords stated by the page", nullable=False),
        _field("categories", pa.list_(pa.string()), "Sections or categories stated by the page", nullable=False),
        _field("image_url", pa.string(), "Lead image URL (og:image or equivalent)"),
        _field("word_count", pa.int32(), "Number of whitespace-separated words in body", nullable=False),
        _field("fetched_at", UTC_TIMESTAMP, "When the page was fetched, UTC", nullable=False),
        _field("first_seen_at", UTC_TIMESTAMP, "When this article_id was first archived, UTC", nullable=False),
        _field("http_status", pa.int16(), "HTTP status of the fetched page", nullable=False),
        _field("http_etag", pa.string(), "ETag response header of the page, for conditional revisits"),
        _field("http_last_modified", pa.string(), "Last-Modified response header of the page, for conditional revisits"),
        _field("discovered_via", pa.string(), "How the URL was found: start, link, feed, sitemap, or backfill (read from another crawl's WARC file)", nullable=False),
        _field("source_url", pa.string(), "The page, feed or sitemap the URL was found on; null for start URLs"),
        _field("crawl_id", pa.string(), "Id of the run that archived the row (runs/<crawl_id>.json)", nullable=False),
        _field("content_hash", pa.string(), "SHA-256 hex of the normalised body (NFKC, case-folded, whitespace collapsed)", nullable=False),
        _field("simhash", pa.int64(), "64-bit SimHash of the body (trafilatura's), stored as a signed int64", nullable=False),
        _field("extractor_version", pa.string(), "Versions of the extractor and this project, e.g. trafilatura/2.3.1 news-archive/0.1.0", nullable=False),
        _field("redirect_urls", pa.list_(pa.string()), "URLs requested before url when the fetch was redirected, in order, the first as linked; empty when not redirected; null in files of schema version 1"),
        _field("warc_filename", pa.string(), "The WARC file that holds the page's response record, as a key in the archive (warc/dt=.../<crawl_id>-<seq>.warc.gz); for a backfilled row, the path or URI of the WARC file it was read from; null when the page was not kept or in files of schema versions 1 and 2"),
        _field("warc_record_offset", pa.int64(), "Where that record starts in the file, in bytes (one gzip member): with warc_record_length, one ranged read fetches it"),
        _field("warc_record_length", pa.int64(), "The record's length in bytes"),
        _field("extracted_at", UTC_TIMESTAMP, "When this extraction was made, UTC: a re-extraction (news-archive reextract) of the same capture is later; null in files of schema versions 1 to 3"),
        _field("sections", pa.list_(pa.string()), "Sections the publisher files the article under: JSON-LD articleSection, then <meta property=article:section>; each once (case as stated, the first spelling kept); empty when none; null in files of schema versions 1 to 4"),
        _field("keywords", pa.list_(pa.string()), "Keywords the publisher states: JSON-LD keywords, <meta property=article:tag>, <meta name=keywords> and <meta name=news_keywords>, then the Google News sitemap's news:keywords; each once (case as stated, the first spelling kept), at most 50; empty when none; null in files of schema versions 1 to 4"),
        _field("is_accessible_for_free", pa.bool_(), "JSON-LD isAccessibleForFree (the article's, else its page's): false for a paywalled article; null when the page does not say"),
        _field("body_truncated_by_paywall", pa.bool_(), "For a page that marks paywalled parts (JSON-LD hasPart with isAccessibleForFree false and a cssSelector): true when body lacks their text (only the free part was served), false when it holds it; null when the page marks none"),
        _field("sitemap_news_title", pa.string(), "news:title of the Google News sitemap entry that listed the URL in the run that fetched it; null when none did"),
        _field("sitemap_news_published_at", UTC_TIMESTAMP, "news:publication_date as a UTC instant: only when it has a time and an offset (the published_at rule); null otherwise"),
        _field("sitemap_news_published_date", pa.date32(), "news:publication_date's calendar date as stated; null when none or unreadable"),
        _field("sitemap_news_published_at_raw", pa.string(), "news:publication_date exactly as the sitemap gives it"),
        _field("sitemap_news_publication", pa.string(), "news:publication/news:name: the publication's name"),
        _field("sitemap_news_language", pa.string(), "news:publication/news:language, as stated (ISO 639 code)"),
        _field("sitemap_news_keywords", pa.list_(pa.string()), "news:keywords split at commas, in order, at most 50; null when no sitemap entry"),
        _field("sitemap_news_genres", pa.list_(pa.string()), "news:genres split at commas (older sitemaps: PressRelease, Satire, Blog, OpEd, Opinion, UserGenerated); null when no sitemap entry"),
        _field("sitemap_news_stock_tickers", pa.list_(pa.string()), "news:stock_tickers split at commas (older sitemaps), e.g. NASDAQ:AMAT; null when no sitemap entry"),
        _field("sitemap_news_access", pa.string(), "news:access (older sitemaps): Subscription or Registration; null when not stated"),
    ],
)

DUPLICATES = _schema(
    "duplicates",
    5,
    [
        _field("url", pa.string(), "URL of the duplicate page (or of the link, for kind url found before fetching)", nullable=False),
        _field("canonical_url", pa.string(), "Canonical URL of the duplicate", nullable=False),
        _field("domain", pa.string(), "Registered domain of url, lower case", nullable=False),
        _field("kind", pa.string(), "url: same canonical URL; exact: same content_hash; near: SimHash within the threshold", nullable=False),
        _field("duplicate_of_id", pa.string(), "article_id of the archived article it duplicates", nullable=False),
        _field("duplicate_of_url", pa.string(), "canonical_url of the archived article it duplicates", nullable=False),
        _field("duplicate_of_crawl_id", pa.string(), "crawl_id of the run that archived the original", nullable=False),
        _field("distance", pa.int16(), "Hamming distance between the SimHashes, for kind near; null otherwise"),
        _field("title", pa.string(), "Headline of the duplicate page, when it was fetched"),
        _field("content_hash", pa.string(), "content_hash of the duplicate's body, when it was fetched"),
        _field("simhash", pa.int64(), "SimHash of the duplicate's body, when it was fetched"),
        _field("fetched", pa.bool_(), "Whether the duplicate was fetched (false: recognised from its URL alone)", nullable=False),
        _field("http_status", pa.int16(), "HTTP status when fetched"),
        _field("discovered_via", pa.string(), "How the duplicate URL was found: start, link, feed, sitemap, or backfill (read from another crawl's WARC file)", nullable=False),
        _field("detected_at", UTC_TIMESTAMP, "When the duplicate was recognised, UTC", nullable=False),
        _field("crawl_id", pa.string(), "Id of the run that recognised it", nullable=False),
        _field("redirect_urls", pa.list_(pa.string()), "URLs requested on the way, in order, the first as linked: to url for a fetched duplicate, to the original for a link recognised at its redirect; empty when none; null in files of schema version 1"),
        _field("warc_filename", pa.string(), "The WARC file that holds the duplicate's response record, when it was fetched, as a key in the archive (warc/dt=.../<crawl_id>-<seq>.warc.gz); for a backfilled row, the path or URI of the WARC file it was read from; null when the page was not kept or in files of schema versions 1 and 2"),
        _field("warc_record_offset", pa.int64(), "Where that record starts in the file, in bytes (one gzip member): with warc_record_length, one ranged read fetches it"),
        _field("warc_record_length", pa.int64(), "The record's length in bytes"),
        _field("extractor_version", pa.string(), "For a fetched duplicate: extractor_version of the extraction whose body was compared; null otherwise and in files of schema versions 1 to 3"),
        _field("detected_by", pa.string(), "Which stage recognised it: crawl, reextract, backfill (the run's ARCHIVE_JOB) or dedup (news-archive dedup, over the committed articles); null in files of schema versions 1 to 4"),
    ],
)

REJECTS = _schema(
    "rejects",
    4,
    [
        _field("url", pa.string(), "URL of the page that did not become an article row", nullable=False),
        _field("domain", pa.string(), "Registered domain of url, lower case", nullable=False),
        _field("reason", pa.string(), "Why: not_article, empty, extraction_failed, not_html, ...", nullable=False),
        _field("detail", pa.string(), "Human-readable detail of the reason (the signals, the error)"),
        _field("http_status", pa.int16(), "HTTP status of the response"),
        _field("discovered_via", pa.string(), "How the URL was found: start, link, feed, sitemap, or backfill (read from another crawl's WARC file)", nullable=False),
        _field("fetched_at", UTC_TIMESTAMP, "When the page was fetched, UTC", nullable=False),
        _field("crawl_id", pa.string(), "Id of the run", nullable=False),
        _field("source_url", pa.string(), "The page, feed or sitemap the URL was found on; null for start URLs and in files of schema version 1"),
        _field("redirect_urls", pa.list_(pa.string()), "URLs requested before url when the request was redirected, in order, the first as linked; empty when not redirected; null in files of schema version 1"),
        _field("warc_filename", pa.string(), "The WARC file that holds the page's response record, when it was fetched, as a key in the archive (warc/dt=.../<crawl_id>-<seq>.warc.gz); for a backfilled row, the path or URI of the WARC file it was read from; null when the page was not kept or in files of schema versions 1 and 2"),
        _field("warc_record_offset", pa.int64(), "Where that record starts in the file, in bytes (one gzip member): with warc_record_length, one ranged read fetches it"),
        _field("warc_record_length", pa.int64(), "The record's length in bytes"),
        _field("extractor_version", pa.string(), "For a page handed to extraction: extractor_version of the extractor that judged it; null for pages refused before extraction and in files of schema versions 1 to 3"),
    ],
)

WARC_FILES = _schema(
    "warc_files",
    1,
    [
        _field("warc_filename", pa.string(), "Key of the WARC file in the archive: warc/dt=YYYY-MM-DD/<crawl_id>-<seq>.warc.gz", nullable=False),
        _field("cdxj_filename", pa.string(), "Key of its CDXJ index (cdxj-indexer), beside it", nullable=False),
        _field("crawl_id", pa.string(), "Id of the run that wrote it", nullable=False),
        _field("records", pa.int32(), "Response records (pages) in it; each has a request record beside it", nullable=False),
        _field("bytes", pa.int64(), "Size of the file", nullable=False),
        _field("sha256", pa.string(), "SHA-256 hex of the file", nullable=False),
        _field("first_fetched_at", UTC_TIMESTAMP, "When its first page was fetched, UTC", nullable=False),
        _field("last_fetched_at", UTC_TIMESTAMP, "When its last page was fetched, UTC", nullable=False),
    ],
)

DATASETS: dict[str, pa.Schema] = {"articles": ARTICLES, "duplicates": DUPLICATES, "rejects": REJECTS,
                                   "warc_files": WARC_FILES}


#: Columns with a value of their own on (nearly) every row: written without dictionary encoding, which would only
#: hash every value and hold pages back until it gives up (see dictionary_columns).
UNIQUE_PER_ROW = frozenset({
    "article_id", "url", "canonical_url", "title", "body", "description", "image_url", "published_at_raw",
    "modified_at_raw", "http_etag", "http_last_modified", "content_hash", "simhash", "duplicate_of_id",
    "duplicate_of_url", "warc_record_offset", "warc_record_length", "sha256",
})


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns worth dictionary-encoding in Parquet: those whose values repeat (domain, language, crawl_id...)."""
    return [name for name in schema.names if name not in UNIQUE_PER_ROW]


def schema_version(schema: pa.Schema) -> int:
    """The version stored in a dataset schema's metadata."""
    return int(schema.metadata[SCHEMA_VERSION_KEY])


def description(schema: pa.Schema, name: str) -> str:
    """The one-line description of a column."""
    return schema.field(name).metadata[b"description"].decode()
