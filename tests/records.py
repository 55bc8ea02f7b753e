"""Realistic records for unit tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from pipelines.records import ArticleRecord, DuplicateRecord, RejectRecord
from pipelines.fingerprints import article_id, content_hash, simhash, to_int64

FETCHED = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)


def article(n: int = 1, *, body: str | None = None, fetched_at: datetime = FETCHED, crawl_id: str = "run1") -> ArticleRecord:
    body = body or f"Paragraph one of story {n} about the harbour.\n\nParagraph two, with more words {n}."
    url = f"https://herald.example/2026/11/25/story-{n}/"
    return ArticleRecord(
        article_id=article_id(url), url=url, canonical_url=url, domain="herald.example", host="herald.example",
        title=f"Story {n}", body=body, authors=["Ann Example", "Bo Writer"], published_at=fetched_at - timedelta(hours=2),
        published_date=date(2026, 11, 25), published_at_raw="2026-11-25T08:30:00Z", published_at_source="meta",
        modified_at=None, modified_at_raw=None, language="en", description="A story.", site_name="Herald",
        tags=["harbour"], categories=["Local"], image_url=None, word_count=len(body.split()), fetched_at=fetched_at,
        first_seen_at=fetched_at, http_status=200, discovered_via="link", source_url="https://herald.example/",
        crawl_id=crawl_id, content_hash=content_hash(body), simhash=to_int64(simhash(body)),
        extractor_version="trafilatura/x news-archive/y",
    )


def duplicate(n: int = 1, *, kind: str = "exact") -> DuplicateRecord:
    original = article(n)
    return DuplicateRecord(
        url=f"https://herald.example/copy/{n}/", canonical_url=f"https://herald.example/copy/{n}/", domain="herald.example",
        kind=kind, duplicate_of_id=original.article_id, duplicate_of_url=original.canonical_url, duplicate_of_crawl_id="run1",
        distance=3 if kind == "near" else None, title="Copy", content_hash=original.content_hash, simhash=original.simhash,
        fetched=True, http_status=200, discovered_via="link", detected_at=FETCHED, crawl_id="run1",
    )


def reject(n: int = 1) -> RejectRecord:
    return RejectRecord(url=f"https://herald.example/section/{n}/", domain="herald.example", reason="not_article",
                        detail="url:listing(-3)", http_status=200, discovered_via="link", fetched_at=FETCHED, crawl_id="run1")


class Stats(dict):
    """The part of Scrapy's stats collector the pipelines use, for cores built without a crawler."""

    def inc_value(self, name, count=1):
        self[name] = self.get(name, 0) + count

    def set_value(self, name, value):
        self[name] = value

    def max_value(self, name, value):
        self[name] = max(self.get(name, value), value)

    def get_stats(self):
        return self
