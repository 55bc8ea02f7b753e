"""What publishers state about their articles, kept in the rows: the Google News sitemap's fields, the paywall,
sections and keywords (tests/metadatasite.py is the publisher)."""

from __future__ import annotations

import json
import re
import threading
from datetime import date, datetime, timezone

import pytest

from conftest import CORPUS_DIR, REPO, RunningCrawl, crawl_command, crawl_env, duckdb_with_delta, read_delta
from crawler.localsite import LocalSite
from healthsite import corpus_texts
from metadatasite import MetadataSite

pytestmark = pytest.mark.needs_corpus

SITEMAP_COLUMNS = ("sitemap_news_title", "sitemap_news_published_at", "sitemap_news_published_date",
                   "sitemap_news_published_at_raw", "sitemap_news_publication", "sitemap_news_language",
                   "sitemap_news_keywords", "sitemap_news_genres", "sitemap_news_stock_tickers", "sitemap_news_access")
NO_SITEMAP = dict.fromkeys(SITEMAP_COLUMNS)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def sitemap(title, published_at, published_date, raw, publication, language, keywords, genres=(), tickers=(),
            access=None) -> dict:
    return dict(zip(SITEMAP_COLUMNS, (title, published_at, published_date, raw, publication, language,
                                      list(keywords), list(genres), list(tickers), access)))


#: per story: what its row must hold, exactly
EXPECTED = {
    "free": {
        "sections": ["Politics", "US News"],
        "keywords": ["Senate", "Budget", "Congress", "Fiscal policy", "Taxes", "Appropriations"],
        "is_accessible_for_free": True, "body_truncated_by_paywall": None, "discovered_via": "sitemap",
        **sitemap("Senate passes the budget, at last", utc(2026, 11, 20, 5, 7), date(2026, 11, 20),
                  "2026-11-20T06:07:00+01:00", "The Ledger", "en", ["Budget", "Taxes", "senate", "Appropriations"],
                  ["Blog", "OpEd"], ["NYSE:GS", "NASDAQ:AMAT"], "Registration"),
    },
    "paywalled": {
        "sections": ["Business", "Labour"], "keywords": ["Labour", "Shipping"],
        "is_accessible_for_free": False, "body_truncated_by_paywall": False, "discovered_via": "link",
        **sitemap("Port strike talks resume", None, date(2026, 11, 20), "2026-11-20", "The Ledger", "en",
                  ["Labour", "Shipping"]),
    },
    "lead_only": {
        "sections": [], "keywords": [], "is_accessible_for_free": False, "body_truncated_by_paywall": True,
        "discovered_via": "link", **NO_SITEMAP,
    },
    "late": {
        "sections": [], "keywords": ["Weather", "Coast"], "is_accessible_for_free": None,
        "body_truncated_by_paywall": None, "discovered_via": "link",
        **sitemap("Storm warning for the coast", utc(2026, 11, 21, 10, 45), date(2026, 11, 21),
                  "2026-11-21T05:45:00-05:00", "The Ledger Weekend", "en-GB", ["Weather", "Coast"]),
    },
    "redirected": {
        "sections": [], "keywords": ["Education"], "is_accessible_for_free": None, "body_truncated_by_paywall": None,
        "discovered_via": "sitemap",
        **sitemap("School funding formula changes", utc(2026, 11, 21, 7), date(2026, 11, 21),
                  "2026-11-21T07:00:00+00:00", "The Ledger", "en", ["Education"]),
    },
    "unlisted": {
        "sections": [], "keywords": [], "is_accessible_for_free": None, "body_truncated_by_paywall": None,
        "discovered_via": "link", **NO_SITEMAP,
    },
}


@pytest.fixture(scope="module")
def metadata_crawl(tmp_path_factory):
    """One crawl of The Ledger. Its news sitemap is held until the rows of two stories the home page links are
    written (the crawl's log says so), so the sitemap entries of those reach rows already written; the other
    entries are fetched from the sitemap, their fields travelling with the request."""
    site = MetadataSite(corpus_texts(CORPUS_DIR, 7))
    server = LocalSite()
    site.base_url = server.start()
    release = threading.Event()
    pages = site.pages()
    pages["/sitemap-news.xml"].hold = release
    server.pages = pages
    archive = tmp_path_factory.mktemp("metadata") / "archive"
    crawl = RunningCrawl(crawl_command(archive, [site.base_url + "/", site.base_url + "/robots.txt"],
                                       settings={"LOG_LEVEL": "DEBUG", "PROGRESS_BAR": "off"}), crawl_env())
    try:
        for role in ("late", "paywalled"):
            crawl.wait_for_line(f"Scraped from <200 {site.url(role)}")
        release.set()
        log = crawl.finish(timeout=300)
    finally:
        release.set()
        crawl.kill()
        server.stop()
    assert crawl.process.returncode == 0, log[-3000:]
    yield site, archive, server, log


def _rows(archive, dataset):
    return read_delta(str(archive / dataset)).to_pylist()


def test_rows_hold_exactly_what_the_publisher_states(metadata_crawl):
    site, archive, _, _ = metadata_crawl
    rows = {row["canonical_url"]: row for row in _rows(archive, "articles")}
    assert sorted(rows) == sorted(site.url(role) for role in EXPECTED)
    for role, expected in EXPECTED.items():
        row = rows[site.url(role)]
        assert {name: row[name] for name in expected} == expected, role


def test_paywalled_parts_in_the_html_are_kept_and_said_so(metadata_crawl):
    site, archive, _, _ = metadata_crawl
    rows = {row["canonical_url"]: row for row in _rows(archive, "articles")}
    story = site.stories["paywalled"]
    body = rows[site.url("paywalled")]["body"]
    assert all(paragraph in body for paragraph in story.paragraphs)  # the free lead and the marked rest
    lead = site.stories["lead_only"]
    assert rows[site.url("lead_only")]["body"] == "\n\n".join(lead.paragraphs)


def test_a_paywalled_teaser_is_rejected_as_paywalled(metadata_crawl):
    site, archive, _, _ = metadata_crawl
    rejects = {row["url"]: row for row in _rows(archive, "rejects")}
    teaser = rejects[site.url("teaser")]
    assert teaser["reason"] == "paywalled"
    assert teaser["detail"].startswith("isAccessibleForFree False, body truncated by paywall True;")
    base = site.base_url
    assert {url: row["reason"] for url, row in rejects.items()} == {
        site.url("teaser"): "paywalled", base + "/": "not_article", base + "/about/": "http_error",
        base + "/subscribe/": "http_error", base + "/2026/11/01/withdrawn-story.html": "http_error"}


def test_entries_read_after_their_rows_were_written_amend_them(metadata_crawl):
    site, archive, server, log = metadata_crawl
    (manifest,) = [json.loads(p.read_text()) for p in (archive / "runs").glob("*.json")]
    # paywalled and late: requested by their links before the sitemap came, their rows written, then amended
    assert manifest["counts"]["sitemap_news"] == {"entries": 5, "seen_after_request": 2, "rows_amended": 2,
                                                  "too_late": 0}
    # nothing fetched twice: every story once, the linked variant of the paywalled one instead of its own URL
    story_requests = {path: count for path, count in server.requests.items()
                      if path.split("?")[0] in {s.path for s in site.stories.values()}}
    assert story_requests == {**{story.path: 1 for role, story in site.stories.items() if role != "paywalled"},
                              site.stories["paywalled"].path + "?utm_source=home&utm_medium=web": 1}


def test_the_readme_query_over_the_new_columns(metadata_crawl, monkeypatch):
    """The README's example query, as written, from the folder that holds the crawl's ``archive/``."""
    _, archive, _, _ = metadata_crawl
    title = "-- articles per Google News keyword per day, and how many of them are paywalled"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (query,) = [block for block in re.findall(r"^```sql\n(.*?)^```", readme, flags=re.S | re.M)
                if block.startswith(title)]
    monkeypatch.chdir(archive.parent)
    with duckdb_with_delta() as connection:
        rows = connection.execute(query).fetchall()
    assert rows == [
        (date(2026, 11, 20), "Appropriations", 1, 0), (date(2026, 11, 20), "Budget", 1, 0),
        (date(2026, 11, 20), "Labour", 1, 1), (date(2026, 11, 20), "Shipping", 1, 1),
        (date(2026, 11, 20), "Taxes", 1, 0), (date(2026, 11, 20), "senate", 1, 0),
        (date(2026, 11, 21), "Coast", 1, 0), (date(2026, 11, 21), "Education", 1, 0),
        (date(2026, 11, 21), "Weather", 1, 0),
    ]
