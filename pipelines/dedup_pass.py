"""The dedup stage: copies that crawl workers archived at the same time, found over the committed articles.

A crawl worker recognises an article other workers committed before it fetched its copy (its state, refreshed
every ``ARCHIVE_STATE_REFRESH_SECONDS``); two workers that find one syndicated story within the same minutes
each archive it. This pass reads the articles table's latest view (one row per article, its newest version) of
a time window (``since`` .. ``until``, days of first capture), orders it by first capture (``first_seen_at``,
then ``article_id``), and applies the crawl's own rule to each article in turn: a copy when an article kept
before it has the same normalised body (``exact``) or a SimHash within ``near_distance`` (``near``, the closest,
the first archived among equals). The first archived is kept; each copy is

1. recorded in ``duplicates`` (its kind, the distance, ``detected_by = "dedup"``), one file committed to the
   table under the pass's id; then
2. removed from the ``articles`` table (every row of its ``article_id``), in one delete commit.

Idempotent: a copy already recorded by an earlier pass is not recorded again, and one already removed is not
found again; a pass killed between its two commits is completed by the next. Removed rows stay readable in the
table's earlier versions until vacuum.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import fingerprints
from pipelines.parquet import ClosedFile, DatasetWriter
from pipelines.records import DuplicateRecord
from pipelines.table import PARTITION, DatasetTable, table_file
from pipelines.simhash_index import SimhashIndex
from schemas import DATASETS

logger = logging.getLogger(__name__)

#: the articles columns the pass reads
COLUMNS = ["article_id", "version", "url", "canonical_url", "domain", "title", "content_hash", "simhash",
           "first_seen_at", "fetched_at", "extracted_at", "crawl_id", "http_status", "discovered_via", "redirect_urls",
           "warc_filename", "warc_record_offset", "warc_record_length", "extractor_version"]
DETECTED_BY = "dedup"


@dataclass(frozen=True, slots=True)
class Copy:
    """One article found to copy one archived before it."""

    row: dict  #: the copy's latest row (COLUMNS)
    original: dict  #: the kept article's latest row
    kind: str  #: exact or near
    distance: int


@dataclass(slots=True)
class DedupReport:
    articles: int = 0  #: articles (latest rows) of the window read
    partitions: int = 0  #: dt partitions of the articles table read
    copies: list[Copy] = field(default_factory=list)
    recorded: int = 0  #: duplicates rows committed by this pass (copies an earlier pass recorded are not again)
    removed_rows: int = 0  #: articles rows deleted (every version of each copy)
    duplicates_version: int | None = None  #: the duplicates table's version after this pass's commit
    articles_version: int | None = None  #: the articles table's version after the delete

    def line(self) -> str:
        kinds = {kind: sum(c.kind == kind for c in self.copies) for kind in ("exact", "near")}
        return (f"dedup: {self.articles} articles read, {len(self.copies)} copies found ({kinds['exact']} exact, "
                f"{kinds['near']} near), {self.recorded} recorded in duplicates, {self.removed_rows} article rows "
                f"removed")


def latest_rows(table: pa.Table) -> pa.Table:
    """One row per article_id: its newest version (as the ``articles_latest`` view: version, fetched_at, then
    extracted_at, each descending)."""
    if table.num_rows == 0:
        return table
    extracted = pc.coalesce(table["extracted_at"], table["fetched_at"])
    order = pa.table({"article_id": table["article_id"], "version": table["version"], "fetched_at": table["fetched_at"],
                      "extracted": extracted, "row": pa.array(np.arange(table.num_rows))})
    order = order.sort_by([("article_id", "ascending"), ("version", "descending"), ("fetched_at", "descending"),
                           ("extracted", "descending")])
    ids = order["article_id"].to_pylist()
    rows = order["row"].to_numpy()
    first = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]]
    return table.take(pa.array(rows[first]))


def find_copies(rows: list[dict], *, near_distance: int) -> list[Copy]:
    """The copies among ``rows`` (one per article), the crawl's rule applied in order of first capture."""
    ordered = sorted(rows, key=lambda row: (row["first_seen_at"], row["article_id"]))
    kept: list[dict] = []
    by_hash: dict[str, int] = {}
    index = SimhashIndex(near_distance)
    copies = []
    for row in ordered:
        exact = by_hash.get(row["content_hash"])
        if exact is not None:
            copies.append(Copy(row, kept[exact], "exact", 0))
            continue
        near = index.nearest(fingerprints.from_int64(row["simhash"]))
        if near is not None:
            position, distance = near
            copies.append(Copy(row, kept[position], "near", distance))
            continue
        by_hash[row["content_hash"]] = len(kept)
        index.add(fingerprints.from_int64(row["simhash"]), len(kept))
        kept.append(row)
    return copies


def duplicate_record(copy: Copy, *, pass_id: str, now: datetime) -> DuplicateRecord:
    row, original = copy.row, copy.original
    return DuplicateRecord(
        url=row["url"], canonical_url=row["canonical_url"], domain=row["domain"], kind=copy.kind,
        duplicate_of_id=original["article_id"], duplicate_of_url=original["canonical_url"],
        duplicate_of_crawl_id=original["crawl_id"], distance=copy.distance if copy.kind == "near" else None,
        title=row["title"], content_hash=row["content_hash"], simhash=row["simhash"], fetched=True,
        http_status=row["http_status"], discovered_via=row["discovered_via"], detected_at=now, crawl_id=pass_id,
        redirect_urls=list(row["redirect_urls"] or []), warc_filename=row["warc_filename"],
        warc_record_offset=row["warc_record_offset"], warc_record_length=row["warc_record_length"],
        extractor_version=row["extractor_version"], detected_by=DETECTED_BY,
    )


def window_partitions(articles: DatasetTable, since: date | None, until: date | None) -> list[str]:
    """The ``dt`` partitions of the articles table the window reads (one task each on Ray): ``dt`` is the day of
    the fetch, at or after the first capture, so these hold every article first captured in the window (selected
    then by ``first_seen_at``), and every later version of them up to ``until``."""
    days = set(articles.delta().get_add_actions(flatten=True).column(f"partition.{PARTITION}").to_pylist())
    return sorted(day for day in days if (since is None or day >= since.isoformat())
                  and (until is None or day <= until.isoformat()))


def read_partition(articles: DatasetTable, dt: str) -> pa.Table:
    """The COLUMNS of one partition's rows (every version)."""
    return articles.delta().to_pyarrow_table(columns=COLUMNS, filters=[(PARTITION, "=", dt)])


def dedup_pass(store, tables: dict[str, DatasetTable], *, pass_id: str, near_distance: int,
               since: date | None = None, until: date | None = None, now: datetime | None = None,
               read_partitions=None) -> DedupReport:
    """Find the copies of the window, record them in ``duplicates`` and remove them from ``articles``.
    ``read_partitions(days) -> [pa.Table]``: how the partitions are read (default: here, one after another; on
    Ray: one task each, ``pipelines/ray_tasks.py``)."""
    now = now or datetime.now(timezone.utc)
    days = window_partitions(tables["articles"], since, until)
    parts = (read_partitions or (lambda days: [read_partition(tables["articles"], day) for day in days]))(days)
    table = pa.concat_tables(parts) if parts else pa.Table.from_pylist([], schema=_columns_schema())
    rows = [row for row in latest_rows(table).to_pylist() if _in_window(row["first_seen_at"], since, until)]
    report = DedupReport(articles=len(rows), partitions=len(days))
    report.copies = find_copies(rows, near_distance=near_distance)
    if not report.copies:
        return report
    recorded = _recorded(tables["duplicates"])
    new = [copy for copy in report.copies
           if (copy.row["canonical_url"], copy.original["article_id"]) not in recorded]
    if new:
        report.duplicates_version = _commit_duplicates(store, tables["duplicates"], new, pass_id=pass_id, now=now)
        report.recorded = len(new)
    ids = sorted({copy.row["article_id"] for copy in report.copies})
    report.removed_rows, report.articles_version = _remove(tables["articles"], ids, pass_id=pass_id)
    return report


def _columns_schema() -> pa.Schema:
    return pa.schema([DATASETS["articles"].field(name) for name in COLUMNS])


def _in_window(first_seen: datetime, since: date | None, until: date | None) -> bool:
    day = first_seen.astimezone(timezone.utc).date()
    return (since is None or day >= since) and (until is None or day <= until)


def _recorded(duplicates: DatasetTable) -> set[tuple[str, str]]:
    """(canonical_url, duplicate_of_id) of the copies earlier passes recorded."""
    table = duplicates.delta().to_pyarrow_table(columns=["canonical_url", "duplicate_of_id", "detected_by"])
    table = table.filter(pc.equal(table["detected_by"], DETECTED_BY))
    return set(zip(table["canonical_url"].to_pylist(), table["duplicate_of_id"].to_pylist()))


def _commit_duplicates(store, duplicates: DatasetTable, copies: list[Copy], *, pass_id: str, now: datetime) -> int:
    """Write the copies' duplicates rows (one file per day), publish them and commit them in one commit."""
    closed: list[ClosedFile] = []
    with tempfile.TemporaryDirectory(prefix="news-archive-dedup-") as scratch:
        writer = DatasetWriter(dataset="duplicates", schema=DATASETS["duplicates"], spool_dir=Path(scratch),
                               file_prefix=pass_id, on_closed=closed.append)
        for copy in copies:
            writer.write(duplicate_record(copy, pass_id=pass_id, now=now), dt=now.strftime("%Y-%m-%d"))
        writer.close()
        entries = []
        for file in closed:
            entries.append(table_file(file.path, file.key, size=file.path.stat().st_size, rows=file.rows))
            store.publish(file.path, file.key, rows=file.rows, sha256=file.sha256)
    number = duplicates.transaction_version(pass_id) + 1
    duplicates.commit(entries, app_id=pass_id, version=number,
                      metadata={"news_archive.operation": "dedup", "news_archive.copies": len(copies)})
    return duplicates.delta().version()


def _remove(articles: DatasetTable, article_ids: list[str], *, pass_id: str) -> tuple[int, int]:
    """Delete every row of these articles, in one commit; (rows deleted, the table's version after)."""
    from deltalake import CommitProperties

    quoted = ", ".join("'" + article_id.replace("'", "''") + "'" for article_id in article_ids)
    table = articles.delta()
    metrics = table.delete(f"article_id IN ({quoted})", commit_properties=CommitProperties(
        custom_metadata={"news_archive.operation": "dedup", "news_archive.crawl_id": pass_id,
                         "news_archive.articles_removed": len(article_ids)}))
    return int(metrics.get("num_deleted_rows", 0)), articles.delta().version()
