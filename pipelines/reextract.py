"""Re-extraction: the archive's own WARC records extracted again by the current extractor; nothing is fetched.

``plan_warc_files`` and ``planned_records`` say what to do, one WARC file of the archive at a time (memory
holds one file's rows, whatever the archive's size): the ``articles`` rows whose page is a record of that file,
limited by fetch dates, domains or the extractor version that made them, less the records the current extractor
has already judged. A record counts as judged when a row of ``articles``, ``duplicates`` or ``rejects`` has its
pointer and the current ``extractor_version``: a crawl made with this extractor, or a re-extraction, finished or
killed, whose rows were committed. So a rerun goes on where a killed one stopped and redoes nothing committed,
and each record ends with one row by this extractor.

``EarlierExtraction.changes_in`` (pipelines/records.py) compares a new row with the one it replaces: the counts
of the run's report (``counts.reextract`` in its manifest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipelines.publisher import SITEMAP_NEWS_STATED
from pipelines.records import EarlierExtraction

#: what a re-extracted page keeps from the row it replaces, besides its identity (EarlierExtraction)
_CAPTURE_COLUMNS = ["url", "fetched_at", "http_status", "discovered_via", "source_url", "http_etag",
                    "http_last_modified", "redirect_urls", "warc_filename", "warc_record_offset", "warc_record_length",
                    # what the Google News sitemap said of the URL when it was fetched: not in the WARC record
                    *SITEMAP_NEWS_STATED]
_EARLIER_COLUMNS = ["article_id", "version", "first_seen_at", "crawl_id", "extractor_version", "title",
                    "content_hash", "published_at", "authors"]
JUDGED_BY = ("articles", "duplicates", "rejects")  #: the tables whose rows say a record was judged


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows to re-extract: fetched from ``since`` to ``until`` (UTC days, both included), of these
    registered domains, made by this extractor version, in these WARC files (keys in the archive); None or
    empty: no limit."""

    since: date | None = None
    until: date | None = None
    domains: frozenset[str] = frozenset()
    extractor_version: str | None = None
    warc_files: frozenset[str] = frozenset()  #: one task of a batch run (pipelines/ray_tasks.py) reads one file


@dataclass(frozen=True, slots=True)
class PlannedRecord:
    """One response record to extract again, with the capture context its new row keeps."""

    warc_filename: str
    offset: int
    length: int
    capture: dict  #: the _CAPTURE_COLUMNS of the row
    earlier: EarlierExtraction


def plan_warc_files(tables: dict, selection: Selection) -> list[str]:
    """The archive's WARC files that may hold selected records, oldest first (from the ``warc_files`` table:
    one row per file)."""
    table = tables["warc_files"].delta().to_pyarrow_table(
        columns=["warc_filename", "first_fetched_at", "last_fetched_at"])
    names = []
    for row in sorted(table.to_pylist(), key=lambda r: (r["first_fetched_at"], r["warc_filename"])):
        if selection.since and row["last_fetched_at"].date() < selection.since:
            continue
        if selection.until and row["first_fetched_at"].date() > selection.until:
            continue
        if selection.warc_files and row["warc_filename"] not in selection.warc_files:
            continue
        names.append(row["warc_filename"])
    return names


def planned_records(tables: dict, warc_filename: str, selection: Selection, *,
                    current_version: str) -> list[PlannedRecord]:
    """The selected article rows of one WARC file that the current extractor has not judged yet, by offset."""
    where = (pc.field("warc_filename") == warc_filename) & (pc.field("extractor_version") != current_version)
    if selection.since:
        where &= pc.field("dt") >= selection.since.isoformat()
    if selection.until:
        where &= pc.field("dt") < (selection.until + timedelta(days=1)).isoformat()
    if selection.domains:
        where &= pc.field("domain").isin(sorted(selection.domains))
    if selection.extractor_version:
        where &= pc.field("extractor_version") == selection.extractor_version
    columns = {name: pc.field(name) for name in _CAPTURE_COLUMNS + _EARLIER_COLUMNS + ["extracted_at"]}
    columns["body_chars"] = pc.utf8_length(pc.field("body"))  # the length is all the report needs of the body
    rows = _dataset(tables["articles"]).to_table(filter=where, columns=columns).to_pylist()
    judged = judged_offsets(tables, warc_filename, current_version)
    planned = {}
    # a record extracted more than once already: the newest extraction is the one the new row replaces
    for row in sorted(rows, key=lambda r: (r["version"], r["extracted_at"] or r["fetched_at"])):
        offset = row["warc_record_offset"]
        if offset in judged or offset is None or row["warc_record_length"] is None:
            continue
        earlier = EarlierExtraction(
            article_id=row["article_id"], version=row["version"], first_seen_at=row["first_seen_at"],
            crawl_id=row["crawl_id"], extractor_version=row["extractor_version"], title=row["title"],
            body_chars=row["body_chars"], content_hash=row["content_hash"], published_at=row["published_at"],
            authors=tuple(row["authors"] or ()))
        planned[offset] = PlannedRecord(warc_filename, offset, row["warc_record_length"],
                                        {c: row[c] for c in _CAPTURE_COLUMNS}, earlier)
    return [planned[offset] for offset in sorted(planned)]


def judged_offsets(tables: dict, warc_filename: str, current_version: str | None) -> set[int]:
    """Offsets of the records of ``warc_filename`` that have a row by ``current_version`` (None: by any) in any
    table."""
    judged: set[int] = set()
    for dataset in JUDGED_BY:
        where = pc.field("warc_filename") == warc_filename
        if current_version is not None:
            where &= pc.field("extractor_version") == current_version
        column = _dataset(tables[dataset]).to_table(filter=where, columns=["warc_record_offset"]).column(0)
        judged.update(offset for offset in column.to_pylist() if offset is not None)
    return judged


def _dataset(table) -> ds.Dataset:
    return table.delta().to_pyarrow_dataset()


