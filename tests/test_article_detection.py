"""Articles recognised from the page itself, whatever the URL looks like: the corpus served under neutral URLs
(``/p/<n>.html``, ``/?p=<n>``, a UUID path) beside listing pages with long text and the corpus' two news index pages
(tests/neutralsite.py), crawled
with ``scrapy crawl news``, against the same corpus crawled under its dated and slug URLs (conftest's
``corpus_crawl``)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from conftest import run_crawl
from crawler.localsite import LocalSite
from neutralsite import LISTINGS, build_neutral_site

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]

MIN_RECALL = 0.99


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def recognised(result, ids: dict[str, str]) -> set[str]:
    """Corpus ids whose page became an article row, or a duplicate of one (two captures of one story)."""
    paths = {_path(row["url"]) for row in result.rows("articles")}
    paths |= {_path(row["url"]) for row in result.rows("duplicates") if row["fetched"]}
    return {ids[path] for path in paths if path in ids}


@pytest.fixture(scope="module")
def neutral_crawl(tmp_path_factory):
    site = LocalSite()
    base = site.start()
    pages, ids, listings = build_neutral_site(base)
    site.pages.update(pages)
    archive = tmp_path_factory.mktemp("neutral") / "archive"
    try:
        result = run_crawl(archive, [base + "/robots.txt", base + "/"], settings={"CONCURRENT_REQUESTS_PER_DOMAIN": "16"})
    finally:
        site.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    return ids, listings, result


def test_article_recall_under_neutral_urls(neutral_crawl, corpus_crawl):
    ids, _, result = neutral_crawl
    neutral = recognised(result, ids)
    _, dated_ids, dated_result = corpus_crawl
    dated = recognised(dated_result, dated_ids)
    print(f"\narticles: neutral URLs {len(neutral)}/{len(ids)}, dated URLs {len(dated)}/{len(dated_ids)}; "
          f"only under dated URLs: {sorted(dated - neutral)}")
    assert len(ids) == len(dated_ids) == 334
    assert len(neutral) >= MIN_RECALL * len(ids)
    assert neutral - dated == set(), "a page the neutral URL made an article is one under its own URL too"


def test_no_listing_page_is_accepted_however_long_its_text(neutral_crawl):
    _, listings, result = neutral_crawl
    rejects = {_path(row["url"]): row for row in result.rows("rejects")}
    assert len(listings) == 9  # the corpus' two news index pages and the seven of LISTINGS
    assert {path: rejects[path]["reason"] for path in listings} == dict.fromkeys(listings, "not_article")
    made = [path for path, _, _ in LISTINGS]
    assert all(int(rejects[path]["detail"].rsplit("chars=", 1)[1]) > 5000 for path in made), \
        "each made listing's text is long: length alone would have made it an article"
    assert "structured:article(+3)" in rejects["/p/index-nytimes-5.html"]["detail"], "it claims NewsArticle"
    archived = {_path(row["url"]) for row in result.rows("articles")}
    assert archived.isdisjoint(listings)
