"""The offline demo, run as a newcomer runs it: ``python -m crawler.demo --archive PATH``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import read_delta
from crawler.demo import build_site, load_articles, load_site_config

REPO = Path(__file__).resolve().parents[1]


def _read(archive: Path, dataset: str):
    table = read_delta(str(archive / dataset))
    assert table is not None, f"no {dataset} table under {archive}"
    return table


def test_demo_site_is_complete():
    """The bundled sources give six articles, their copies and the discovery files, with the live base URL."""
    base = "http://127.0.0.1:8123"
    site = build_site(base)
    config = load_site_config()
    assert len(site.articles) == 6
    for article in site.articles:
        assert 300 <= sum(len(p.split()) for p in article.paragraphs) <= 600, article.slug
        assert article.path in site.pages
    listings = ["/", config["section"]["path"], "/about/"]
    for path in [*listings, "/feed/", "/sitemap.xml", "/robots.txt", *site.copies]:
        assert path in site.pages, path
    robots = site.pages["/robots.txt"].body.decode()
    assert "Disallow: /private/" in robots and f"Sitemap: {base}/sitemap.xml" in robots
    assert f"<loc>{base}/" in site.pages["/sitemap.xml"].body.decode()
    assert "{base}" not in b"".join(page.body for page in site.pages.values()).decode()
    tracked = [path for path in site.pages if "?utm_source=" in path]
    assert tracked and all(site.pages[path] is site.pages[path.split("?")[0]] for path in tracked)


@pytest.mark.slow
def test_demo_crawls_the_sample_site_into_an_archive(tmp_path):
    archive = tmp_path / "archive"
    result = subprocess.run(
        [sys.executable, "-m", "crawler.demo", "--archive", str(archive)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    out = result.stdout
    query = "SELECT domain, count(*) AS articles, min(published_at), max(published_at) FROM delta_scan("
    assert query in out
    assert "/archive/articles') GROUP BY ALL" in out
    articles = load_articles()
    for article in articles:
        assert article.title in out

    table = _read(archive, "articles")
    assert table.num_rows == len(articles)
    assert sorted(table.column("title").to_pylist()) == sorted(a.title for a in articles)
    by_title = {row["title"]: row for row in table.to_pylist()}
    for article in articles:
        row = by_title[article.title]
        assert row["authors"] == article.authors
        assert row["published_at"] == article.published_at

    duplicates = _read(archive, "duplicates").to_pylist()
    kinds = sorted(row["kind"] for row in duplicates)
    assert kinds.count("exact") == 1 and kinds.count("near") == 1
    # each story linked with tracking parameters is linked without them too: one of the two URLs is fetched (the
    # article row's url says which); the tracked one, when it is the other, is a url duplicate, never fetched;
    # the clean one, when it is the other, is the article's own canonical URL: no row
    tracked = sorted(path for path in build_site("http://127.0.0.1:1").pages if "?utm_source=" in path)
    fetched_as = {row["canonical_url"].split("/", 3)[3]: row["url"].split("/", 3)[3] for row in table.to_pylist()}
    expected = sorted(path[1:] for path in tracked if fetched_as[path[1:].split("?")[0]] != path[1:])
    url_rows = [row for row in duplicates if row["kind"] == "url"]
    assert sorted(row["url"].split("/", 3)[3] for row in url_rows) == expected
    assert not [row for row in url_rows if row["fetched"]]
    own_url_links = len(tracked) - len(expected)
    manifest = json.loads(next((archive / "runs").glob("*.json")).read_text())
    assert manifest["counts"]["links_to_own_url"] == own_url_links
    near = next(row for row in duplicates if row["kind"] == "near")
    assert 0 < near["distance"] <= 7

    rejected = {row["url"].split("/", 3)[3] for row in _read(archive, "rejects").to_pylist()}
    assert {"", "about/", "section/local-news/"} <= rejected
    assert len(list((archive / "runs").glob("*.json"))) == 1
