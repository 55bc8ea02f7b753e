"""Scheduled re-crawls: the second run knows, from the archive alone, what the first archived."""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from conftest import REPO, CrawlResult, crawl_command, crawl_env, published_rows, run_crawl
from schemas import DATASETS
from crawler.localsite import LocalSite
from newssite import START_PATHS, build_news_site
from pipelines.fingerprints import canonicalize_url

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]


def canonical_path(path_or_url: str) -> str:
    return urlsplit(canonicalize_url("http://h" + path_or_url if path_or_url.startswith("/") else path_or_url)).path


def fetched_paths(requests: Counter) -> Counter:
    counts: Counter = Counter()
    for path, count in requests.items():
        counts[canonical_path(path)] += count
    return counts


def crawl(site: LocalSite, archive, tmp_path, **settings) -> CrawlResult:
    """A run as a scheduler starts it: a fresh process and nothing on local disk but the archive."""
    before = Counter(site.requests)
    cache = tmp_path / f"cache-{time.monotonic_ns()}"
    result = run_crawl(archive, [site.base_url + p for p in START_PATHS], settings=settings,
                       env={"XDG_CACHE_HOME": str(cache)})
    result.requests = Counter(site.requests) - before
    return result


def without_links_to(page, paths):
    """``page`` without the listing items that link ``paths`` (pages the site does not have yet)."""
    body = page.body
    for path in paths:
        body = re.sub(rb'<li class="post-summary">(?:(?!</li>).)*?' + re.escape(path.encode()) + rb'.*?</li>', b"",
                      body, flags=re.S)
    return dataclasses.replace(page, body=body)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("state")
    site = LocalSite()
    spec = build_news_site(site.start())
    all_pages = dict(spec.pages)
    site.pages.update({path: without_links_to(page, spec.near_copies) for path, page in all_pages.items()
                       if path not in spec.near_copies})
    archive = tmp_path / "archive"
    first = crawl(site, archive, tmp_path)
    first.crawl_id = first.manifests()[-1]["crawl_id"]
    site.pages.update(all_pages)  # a syndicated copy appears, and the politics page links it
    statuses_before = Counter(site.statuses)
    second = crawl(site, archive, tmp_path)
    second.statuses = Counter(site.statuses) - statuses_before
    second.crawl_id = next(m["crawl_id"] for m in second.manifests() if m["crawl_id"] != first.crawl_id)
    yield spec, first, second
    site.stop()


def test_second_run_fetches_no_known_article_and_adds_no_row(two_runs):
    spec, first, second = two_runs
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-3000:]
    first_id, second_id = first.crawl_id, second.crawl_id
    articles = first.rows("articles")
    assert {row["crawl_id"] for row in articles} == {first_id}, "the second run added no article row"
    fetched = fetched_paths(second.requests)
    for row in articles:
        assert fetched[urlsplit(row["canonical_url"]).path] == 0, row["url"]
    manifest = next(m for m in second.manifests() if m["crawl_id"] == second_id)
    assert manifest["counts"]["skipped_known"] > 0
    assert manifest["counts"]["new_articles"] == manifest["counts"]["articles_written"] == 0
    assert manifest["counts"]["state_rows_loaded"] == len(articles)


def test_near_copy_appearing_later_is_a_duplicate_of_the_earlier_article(two_runs):
    spec, first, second = two_runs
    first_id, second_id = first.crawl_id, second.crawl_id
    [(copy, original)] = spec.near_copies.items()
    later = [d for d in second.rows("duplicates") if d["crawl_id"] == second_id]
    assert [(urlsplit(d["url"]).path, d["kind"]) for d in later] == [(copy, "near")]
    assert urlsplit(later[0]["duplicate_of_url"]).path == original
    assert later[0]["duplicate_of_crawl_id"] == first_id and 0 < later[0]["distance"] <= 7
    manifest = next(m for m in second.manifests() if m["crawl_id"] == second_id)
    assert manifest["counts"]["duplicates_of_earlier_runs"] == {"near": 1}
    assert manifest["counts"]["duplicates"] == {}


def test_feeds_and_sitemaps_are_fetched_conditionally(two_runs):
    _, _, second = two_runs
    assert second.statuses[("/feed/", 304)] == 1
    assert second.statuses[("/atom.xml", 304)] == 1
    assert second.statuses[("/", 200)] == 1, "listing pages are always fetched again"


def assert_every_article_once(spec, rows: list[dict]):
    archived = Counter(urlsplit(r["canonical_url"]).path for r in rows)
    for original, members in spec.story_groups().items():
        assert sum(archived[m] for m in members) == 1, (original, {m: archived[m] for m in members})
    assert sum(archived.values()) == len(spec.articles)


def test_run_killed_midway_then_run_again_archives_every_article_once(tmp_path):
    site = LocalSite()
    spec = build_news_site(site.start())
    site.pages.update(spec.pages)
    site.delay = 0.25
    archive = tmp_path / "archive"
    command = crawl_command(archive, [site.base_url + p for p in START_PATHS], settings={
        "ARCHIVE_MAX_FILE_ROWS": 1, "ARCHIVE_ROW_GROUP_ROWS": 1, "CONCURRENT_REQUESTS_PER_DOMAIN": 2})
    env = crawl_env({"XDG_CACHE_HOME": str(tmp_path / "cache1")})
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(archive.glob("articles/dt=*/*.parquet"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the crawl ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_files = list(archive.glob("articles/dt=*/*.parquet"))
    assert 3 <= len(killed_files) < len(spec.articles)
    assert not list(archive.glob("runs/*.json")), "the killed run wrote no manifest"
    site.delay = 0
    again = crawl(site, archive, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = again.rows("articles")
    assert len({r["crawl_id"] for r in rows}) == 2
    assert_every_article_once(spec, rows)
    manifests = {m["crawl_id"]: m for m in again.manifests()}
    [manifest] = [m for m in manifests.values() if "counts" in m and m["status"] == "complete"]
    assert manifest["counts"]["skipped_known"] >= 3
    for other in manifests.values():  # the killed run has a manifest only if it left complete files in the spool
        if other is not manifest:
            assert other["status"] == "incomplete" and other["recovered_by"] == manifest["crawl_id"]


def test_two_runs_at_once_lose_nothing_of_each_other(tmp_path):
    site = LocalSite()
    spec = build_news_site(site.start())
    site.pages.update(spec.pages)
    archive = tmp_path / "archive"
    processes = []
    for number in (1, 2):
        command = crawl_command(archive, [site.base_url + p for p in START_PATHS])
        env = crawl_env({"XDG_CACHE_HOME": str(tmp_path / f"cache{number}")})
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    manifests = CrawlResult(0, "", "", archive).manifests()
    assert len(manifests) == 2
    for manifest in manifests:  # each run's files are there, whole
        for entry in manifest["files"]:
            path = archive / entry["key"]
            assert path.stat().st_size == entry["bytes"]
            assert published_rows(path) == entry["rows"]
    before = Counter(site.requests)
    third = crawl(site, archive, tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    fetched = fetched_paths(Counter(site.requests) - before)
    archived = third.rows("articles")
    assert {r["crawl_id"] for r in archived} == {m["crawl_id"] for m in manifests}, "the third run adds nothing"
    for row in archived:
        assert fetched[urlsplit(row["canonical_url"]).path] == 0, "known to the third run from either run"


def test_revisit_writes_a_new_version_when_the_body_changed(tmp_path):
    site = LocalSite()
    spec = build_news_site(site.start())
    site.pages.update(spec.pages)
    archive = tmp_path / "archive"
    first = crawl(site, archive, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    # as if archived ten days ago: the articles table rewritten (a new version of it) with older fetch times
    table = DeltaTable(str(archive / "articles")).to_pyarrow_table()
    older = pa.array([t - timedelta(days=10) for t in table.column("fetched_at").to_pylist()], table.schema.field("fetched_at").type)
    table = table.set_column(table.schema.get_field_index("fetched_at"), table.schema.field("fetched_at"), older)
    table = table.set_column(table.schema.get_field_index("first_seen_at"), table.schema.field("first_seen_at"), older)
    write_deltalake(str(archive / "articles"), table, mode="overwrite")
    reference = next(a for a in spec.articles if a.source_id == "reference")
    page = site.pages[reference.path]
    updated = page.body.replace(b"bigger combat operations.", b"bigger combat operations. The Pentagon later added "
                                b"that the decision would be reviewed in the spring after consultations with allies.")
    assert updated != page.body
    site.pages[reference.path] = type(page)(body=updated, content_type=page.content_type)
    statuses_before = Counter(site.statuses)
    second = crawl(site, archive, tmp_path, CRAWL_REVISIT_AFTER_DAYS=7)
    assert second.returncode == 0, second.stderr[-3000:]
    second_id = max(m["crawl_id"] for m in second.manifests())
    rows = second.rows("articles")
    new = [r for r in rows if r["crawl_id"] == second_id]
    assert [urlsplit(r["canonical_url"]).path for r in new] == [reference.path]
    old = next(r for r in rows if r["article_id"] == new[0]["article_id"] and r["crawl_id"] != second_id)
    assert new[0]["version"] == old["version"] + 1 == 2
    assert new[0]["first_seen_at"] == old["first_seen_at"] < new[0]["fetched_at"]
    assert "reviewed in the spring" in new[0]["body"]
    manifest = next(m for m in second.manifests() if m["crawl_id"] == second_id)
    assert manifest["counts"]["new_versions"] == 1 and manifest["counts"]["new_articles"] == 0
    assert manifest["counts"]["revisits"] >= 2
    revisited_unchanged = sum(n for (path, status), n in (Counter(site.statuses) - statuses_before).items()
                              if status == 304 and path not in ("/feed/", "/atom.xml", "/sitemap_index.xml"))
    assert revisited_unchanged >= 1, "unchanged articles answer 304 to the conditional revisit"


def test_state_snapshot_is_written_and_used_by_the_next_run(tmp_path):
    site = LocalSite()
    spec = build_news_site(site.start())
    site.pages.update(spec.pages)
    archive = tmp_path / "archive"
    settings = {"ARCHIVE_STATE_SNAPSHOT_FILES": 1, "ARCHIVE_MAX_FILE_ROWS": 4, "ARCHIVE_ROW_GROUP_ROWS": 4}
    first = crawl(site, archive, tmp_path, **settings)
    assert first.returncode == 0, first.stderr[-3000:]
    [snapshot] = list((archive / "state" / "snapshots").glob("*/manifest.json"))
    covered = json.loads(snapshot.read_text())
    assert covered["rows"] == len(first.rows("articles")) and len(covered["files"]) >= 4
    # the snapshot names the table versions it covers: the tables as the run left them
    assert covered["table_versions"] == {d: DeltaTable(str(archive / d)).version() for d in DATASETS}
    assert sorted(covered["files"]) == sorted(
        f"articles/{p}" for p in DeltaTable(str(archive / "articles")).get_add_actions(flatten=True).column("path").to_pylist())
    second = crawl(site, archive, tmp_path, **settings)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "state/snapshots/" in second.stderr and '"files_read": 0' in second.stderr
    manifest = max(second.manifests(), key=lambda m: m["crawl_id"])
    assert manifest["counts"]["state_rows_loaded"] == covered["rows"]
    assert manifest["counts"]["articles_written"] == 0 and manifest["counts"]["skipped_known"] > 0
