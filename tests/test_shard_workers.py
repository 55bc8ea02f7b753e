"""Crawl workers side by side on one archive: a worker reads what the others commit while it runs
(ARCHIVE_STATE_REFRESH_SECONDS), so their articles are duplicates there, not second rows."""

from __future__ import annotations

import threading

import pytest

from conftest import RunningCrawl, crawl_command, crawl_env, read_delta, run_crawl
from crawler.localsite import LocalSite, Page
from newssite import corpus_page, select_corpus_articles

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]


def front_page(paths: list[str]) -> Page:
    links = "".join(f'<li><a href="{path}">story</a></li>' for path in paths)
    return Page(body=f"<html><body><h1>Front page</h1><ul>{links}</ul></body></html>".encode())


@pytest.mark.parametrize("refresh", [True, False], ids=["refreshed", "read-once"])
def test_a_worker_sees_what_another_committed_while_it_runs(tmp_path, refresh):
    """Worker B is fetching a copy of a story when worker A commits the original: with the refresh, B reads A's
    commit before its page is answered and records the copy as an exact duplicate of A's row; reading the
    archive only at start, it writes a second row (what the dedup stage is then for)."""
    story = select_corpus_articles(1, 0)[0]
    held = threading.Event()
    site_a, site_b = LocalSite(host="127.0.0.8"), LocalSite(host="127.0.0.9")
    base_a, base_b = site_a.start(), site_b.start()
    site_a.pages.update({"/": front_page(["/news/original/"]), "/news/original/": corpus_page(story)})
    copy = corpus_page(story)
    copy.hold = held
    site_b.pages.update({"/": front_page(["/wire/copy/"]), "/wire/copy/": copy})
    archive = tmp_path / "archive"
    settings = {"ARCHIVE_STATE_REFRESH_SECONDS": "0.2" if refresh else "0"}
    worker_b = RunningCrawl(crawl_command(archive, [site_b.base_url + "/"],
                                          settings={**settings, "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool-b")}),
                            crawl_env())
    try:
        assert site_b.wait_for(lambda site: site.requests["/wire/copy/"] >= 1, timeout=120), worker_b.stderr[-3000:]
        worker_a = run_crawl(archive, [site_a.base_url + "/"], settings={"ARCHIVE_SPOOL_DIR": str(tmp_path / "spool-a")})
        assert worker_a.returncode == 0, worker_a.stderr[-3000:]
        if refresh:
            line = worker_b.wait_for_line("state: read ")
            assert "1 article rows" in line, line
        held.set()
        stderr = worker_b.finish()
        assert worker_b.process.returncode == 0, stderr[-3000:]
    finally:
        held.set()
        worker_b.kill()
        site_a.stop(), site_b.stop()
    articles = read_delta(str(archive / "articles")).to_pylist()
    duplicates = read_delta(str(archive / "duplicates"))
    original = f"{base_a}/news/original/"
    if refresh:
        assert [row["canonical_url"] for row in articles] == [original]
        assert [(row["url"], row["kind"], row["duplicate_of_url"]) for row in duplicates.to_pylist()] == \
            [(f"{base_b}/wire/copy/", "exact", original)]
    else:
        assert sorted(row["canonical_url"] for row in articles) == sorted([original, f"{base_b}/wire/copy/"])
        assert duplicates is None or duplicates.num_rows == 0
