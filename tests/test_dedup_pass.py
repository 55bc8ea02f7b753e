"""The dedup stage's core (pipelines/dedup_pass.py) on rows built here: the crawl's rule, in order of first capture."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

from pipelines.dedup_pass import COLUMNS, find_copies, latest_rows
from pipelines.fingerprints import to_int64
from schemas import ARTICLES

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def row(article_id: str, *, simhash: int, content_hash: str | None = None, minutes: int = 0, domain: str = "a.example",
        version: int = 1, fetched_minutes: int | None = None, extracted_minutes: int | None = None) -> dict:
    fetched = T0 + timedelta(minutes=fetched_minutes if fetched_minutes is not None else minutes)
    return {"article_id": article_id, "version": version, "url": f"https://{domain}/{article_id}",
            "canonical_url": f"https://{domain}/{article_id}", "domain": domain, "title": article_id,
            "content_hash": content_hash or f"hash-{article_id}", "simhash": to_int64(simhash),
            "first_seen_at": T0 + timedelta(minutes=minutes), "fetched_at": fetched,
            "extracted_at": None if extracted_minutes is None else T0 + timedelta(minutes=extracted_minutes),
            "crawl_id": "20261201T080000Z-aaaaaa", "http_status": 200, "discovered_via": "link", "redirect_urls": [],
            "warc_filename": None, "warc_record_offset": None, "warc_record_length": None,
            "extractor_version": "x"}


def test_the_first_archived_is_kept_and_later_copies_point_to_it():
    base = 0x0F0F_0F0F_0F0F_0F0F
    rows = [
        row("late-near", simhash=base ^ 0b111, minutes=9, domain="c.example"),  # 3 bits from the original
        row("original", simhash=base, minutes=1, domain="a.example"),
        row("exact", simhash=base ^ 0xFFFF_0000_0000_0000, content_hash="hash-original", minutes=5,
            domain="b.example"),  # same body, whatever its SimHash
        row("unrelated", simhash=~base & (2**64 - 1), minutes=2, domain="b.example"),
        row("far", simhash=base ^ 0xFF, minutes=3, domain="d.example"),  # 8 bits: beyond 7
    ]
    copies = find_copies(rows, near_distance=7)
    assert [(c.row["article_id"], c.kind, c.distance, c.original["article_id"]) for c in copies] == [
        ("exact", "exact", 0, "original"), ("late-near", "near", 3, "original")]


def test_a_copy_of_a_copy_points_to_the_kept_article_only():
    base = 0x1234_5678_9ABC_DEF0
    rows = [row("first", simhash=base, minutes=0), row("second", simhash=base ^ 0x7F, minutes=1, domain="b.example"),
            row("third", simhash=base ^ 0x7F ^ 0x7F00, minutes=2, domain="c.example")]  # 7 from second, 14 from first
    copies = find_copies(rows, near_distance=7)
    assert [(c.row["article_id"], c.original["article_id"], c.distance) for c in copies] == [("second", "first", 7)]


def test_ties_on_first_capture_keep_the_smallest_article_id():
    rows = [row("bbb", simhash=5, minutes=0, domain="b.example"), row("aaa", simhash=5, minutes=0)]
    assert [(c.row["article_id"], c.original["article_id"]) for c in find_copies(rows, near_distance=7)] == [("bbb", "aaa")]


def test_latest_rows_keeps_the_newest_version_of_each_article():
    schema = pa.schema([ARTICLES.field(name) for name in COLUMNS])
    rows = [row("one", simhash=1, version=1), row("one", simhash=2, version=2, fetched_minutes=30),
            row("two", simhash=3, version=1, extracted_minutes=5), row("two", simhash=4, version=1, extracted_minutes=50)]
    latest = latest_rows(pa.Table.from_pylist(rows, schema=schema)).to_pylist()
    assert sorted((r["article_id"], r["simhash"]) for r in latest) == [("one", 2), ("two", 4)]
