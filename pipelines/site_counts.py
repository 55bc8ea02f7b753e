"""Per-site counts of a run, for its manifest (``sites``) and the site health that reads them (``pipelines/health.py``).

A site is a registered domain, as the rows' ``domain`` column has it. The counts are made from the rows the run
wrote, so they say what the tables say: pages fetched (rows of a fetched page: articles, fetched duplicates,
rejects with an HTTP status), articles and new articles (version 1), duplicates by kind, rejects by reason, and
what health watches in the article rows: the median body length and how many rows have a title, an author and
a publication date.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from pipelines.records import ArticleRecord, DuplicateRecord, RejectRecord


@dataclass(slots=True)
class SiteCount:
    fetched: int = 0
    articles: int = 0
    new_articles: int = 0
    duplicates: Counter = field(default_factory=Counter)
    rejects: Counter = field(default_factory=Counter)
    body_chars: list[int] = field(default_factory=list)  #: of the article rows, for their median
    with_title: int = 0
    with_authors: int = 0
    with_date: int = 0

    def as_dict(self) -> dict:
        return {
            "fetched": self.fetched,
            "articles": self.articles,
            "new_articles": self.new_articles,
            "duplicates": dict(sorted(self.duplicates.items())),
            "rejects": dict(sorted(self.rejects.items())),
            "body_chars_median": int(statistics.median(self.body_chars)) if self.body_chars else None,
            "with_title": self.with_title,
            "with_authors": self.with_authors,
            "with_date": self.with_date,
        }


class SiteCounts:
    """The rows of one run, counted per site."""

    def __init__(self) -> None:
        self.sites: dict[str, SiteCount] = {}

    def add(self, record) -> None:
        site = self.sites.get(record.domain)
        if site is None:
            site = self.sites[record.domain] = SiteCount()
        if isinstance(record, ArticleRecord):
            site.fetched += 1
            site.articles += 1
            site.new_articles += record.version == 1
            site.body_chars.append(len(record.body))
            site.with_title += bool(record.title)
            site.with_authors += bool(record.authors)
            site.with_date += record.published_date is not None or record.published_at is not None
        elif isinstance(record, DuplicateRecord):
            site.fetched += record.fetched
            site.duplicates[record.kind] += 1
        elif isinstance(record, RejectRecord):
            site.fetched += record.http_status is not None
            site.rejects[record.reason] += 1

    def as_dict(self) -> dict:
        return {domain: count.as_dict() for domain, count in sorted(self.sites.items())}
