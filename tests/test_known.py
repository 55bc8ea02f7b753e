"""The known-URL filter: what a run does not request again, decided from the archive's state and the run itself."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from scrapy import Request
from scrapy.http import Response

from crawler import meta as request_meta
from pipelines.records import DiscoveredDocument, UrlAlias
from crawler.known import KnownRedirectFilter, KnownUrlFilter, RedirectToKnown
from pipelines.state import EarlierRuns, load_state
from pipelines.storage import LocalStore
from records import FETCHED, Stats, article, duplicate, reject
from schemas import ARTICLES, DUPLICATES, REJECTS
from test_state_unit import write_rows

NOW = datetime.now(timezone.utc)
BASE = "https://herald.example"


def entry(path: str, **meta) -> Request:
    return Request(BASE + path, meta={request_meta.ROLE: request_meta.ENTRY, "discovered_via": "link", **meta})


def discovery(path: str, **meta) -> Request:
    return Request(BASE + path, meta={request_meta.ROLE: request_meta.DISCOVERY, "discovered_via": "sitemap", **meta})


@pytest.fixture
def archive(tmp_path):
    """Story 1 archived today (fetched through /p/1), a syndicated copy of it, story 2 archived 30 days ago, a
    tag page that answered 404 three days ago and one that did 10 days ago, a section that answered 503."""
    store = LocalStore(tmp_path / "archive")
    today = dataclasses.replace(article(1, fetched_at=NOW), redirect_urls=[BASE + "/p/1"], http_etag='"e1"')
    old = dataclasses.replace(article(2, fetched_at=NOW - timedelta(days=30)), http_etag='"e2"',
                              http_last_modified="Sun, 01 Nov 2026 06:00:00 GMT")
    write_rows(store, "articles/dt=x/run1-00001.parquet", [today, old], ARTICLES)
    write_rows(store, "duplicates/dt=x/run1-00001.parquet", [duplicate(1, kind="near")], DUPLICATES)
    gone = [dataclasses.replace(reject(), url=BASE + "/tag/recent/", reason="http_error", http_status=404,
                                fetched_at=NOW - timedelta(days=3)),
            dataclasses.replace(reject(), url=BASE + "/tag/older/", reason="http_error", http_status=404,
                                fetched_at=NOW - timedelta(days=10)),
            dataclasses.replace(reject(), url=BASE + "/section/busy/", reason="http_error", http_status=503,
                                fetched_at=NOW - timedelta(days=1))]
    write_rows(store, "rejects/dt=x/run1-00001.parquet", gone, REJECTS)
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    discovery_state = {
        BASE + "/news-sitemap.xml": {"kind": "urlset", "etag": '"n1"', "last_modified": None,
                                     "fetched_at": (NOW - timedelta(hours=2)).isoformat(), "children": []},
        BASE + "/sitemap-2025.xml": {"kind": "urlset", "etag": '"a1"', "last_modified": "Mon, 05 Jan 2026 00:00:00 GMT",
                                     "fetched_at": (NOW - timedelta(hours=2)).isoformat(), "children": []},
        BASE + "/sitemap-sub.xml": {"kind": "sitemapindex", "etag": '"s1"', "last_modified": None,
                                    "fetched_at": (NOW - timedelta(hours=2)).isoformat(),
                                    "children": [[BASE + "/sitemap-deep.xml", None]]},
    }
    return EarlierRuns(archived=state, discovery=discovery_state, uncovered_files=3)


def run(known_filter: KnownUrlFilter, requests) -> list:
    async def source():
        for request in requests:
            yield request

    async def collect():
        return [output async for output in known_filter.process_spider_output(None, source())]

    return asyncio.run(collect())


def make_filter(earlier_runs, stats: Stats, **settings) -> KnownUrlFilter:
    return KnownUrlFilter(stats_collector=stats, earlier_runs=lambda: earlier_runs, **settings)


def test_known_articles_aliases_copies_and_failed_urls_are_not_requested(archive):
    stats = Stats()
    out = run(make_filter(archive, stats), [
        entry("/2026/11/25/story-1/"),  # archived
        entry("/2026/11/25/story-1/?utm_source=rss"),  # archived, under a tracking variant
        entry("/p/1"),  # the short link it was fetched through
        entry("/copy/1/"),  # recorded as a near copy
        entry("/tag/recent/"),  # 404 three days ago: within the 7 days
        entry("/tag/older/"),  # 404 ten days ago: past them
        entry("/section/busy/"),  # 503: retried at once
        entry("/2026/11/25/story-9/"),  # new
    ])
    assert [r.url for r in out] == [BASE + "/tag/older/", BASE + "/section/busy/", BASE + "/2026/11/25/story-9/"]
    assert stats["archive/state/skipped_known"] == 2
    assert stats["archive/state/skipped_alias"] == 1
    assert stats["archive/state/skipped_known_duplicate"] == 1
    assert stats["archive/state/skipped_failed"] == 1


def test_a_url_whose_canonical_form_was_requested_becomes_an_alias_once(archive):
    out = run(make_filter(archive, Stats()), [
        entry("/2026/11/25/story-7/?utm_source=home"),
        entry("/2026/11/25/story-7/"),
        entry("/2026/11/25/story-7/"),
        entry("/2026/11/25/story-7/?utm_source=home#comments"),
    ])
    assert isinstance(out[0], Request) and out[0].url == BASE + "/2026/11/25/story-7/?utm_source=home"
    [alias] = out[1:]
    assert isinstance(alias, UrlAlias) and alias.url == BASE + "/2026/11/25/story-7/"
    assert alias.canonical_url == BASE + "/2026/11/25/story-7/"


def test_a_known_article_due_for_a_revisit_is_requested_conditionally_at_its_canonical_url(archive, monkeypatch):
    threads = []
    details = archive.archived.details

    def recording(position):
        threads.append(threading.current_thread())
        return details(position)

    monkeypatch.setattr(archive.archived, "details", recording)
    stats = Stats()
    out = run(make_filter(archive, stats, revisit_after_days=7), [
        entry("/2026/11/25/story-2/?utm_source=x"),  # archived 30 days ago
        entry("/2026/11/25/story-1/"),  # archived today: not due
    ])
    [revisit] = out
    assert revisit.url == BASE + "/2026/11/25/story-2/"
    assert revisit.headers[b"If-None-Match"] == b'"e2"'
    assert revisit.headers[b"If-Modified-Since"] == b"Sun, 01 Nov 2026 06:00:00 GMT"
    assert revisit.meta["revisit"] is True and revisit.meta["handle_httpstatus_list"] == [304]
    assert stats["archive/state/revisits"] == 1 and stats["archive/state/skipped_known"] == 1
    assert threads and threading.main_thread() not in threads, "the data file is read in a thread"


def test_discovery_documents_are_asked_for_with_their_validators_and_skipped_when_lastmod_says_unchanged(archive):
    stats = Stats()
    old = (NOW - timedelta(days=300)).isoformat()
    new = (NOW - timedelta(minutes=30)).isoformat()
    out = run(make_filter(archive, stats), [
        discovery("/news-sitemap.xml"),  # no lastmod in the index: asked for conditionally
        discovery("/sitemap-2025.xml", **{request_meta.SITEMAP_LASTMOD: old}),  # unchanged since the last read
        discovery("/sitemap-2025.xml", **{request_meta.SITEMAP_LASTMOD: old}),  # listed twice: once
        discovery("/sitemap-sub.xml", **{request_meta.SITEMAP_LASTMOD: old}),  # an index: its children may change
        discovery("/sitemap-new.xml", **{request_meta.SITEMAP_LASTMOD: new}),  # never read
    ])
    news, carried, sub, fresh = out
    assert news.url == BASE + "/news-sitemap.xml" and news.headers[b"If-None-Match"] == b'"n1"'
    assert b"If-Modified-Since" not in news.headers
    assert news.meta[request_meta.KNOWN_DOCUMENT]["kind"] == "urlset" and news.meta["handle_httpstatus_list"] == [304]
    assert isinstance(carried, DiscoveredDocument) and carried.url == BASE + "/sitemap-2025.xml"
    assert carried.etag == '"a1"' and carried.fetched_at == NOW - timedelta(hours=2), "handed on as it was"
    assert sub.url == BASE + "/sitemap-sub.xml" and sub.headers[b"If-None-Match"] == b'"s1"'
    assert sub.meta[request_meta.KNOWN_DOCUMENT]["children"] == [[BASE + "/sitemap-deep.xml", None]]
    assert fresh.url == BASE + "/sitemap-new.xml" and b"If-None-Match" not in fresh.headers
    assert stats["archive/state/skipped_unchanged_sitemap"] == 1


def test_a_lastmod_newer_than_the_last_read_asks_for_the_sitemap_again(archive):
    newer = (NOW - timedelta(minutes=5)).isoformat()
    [request] = run(make_filter(archive, Stats()), [discovery("/sitemap-2025.xml", **{request_meta.SITEMAP_LASTMOD: newer})])
    assert request.headers[b"If-None-Match"] == b'"a1"'


def redirect_filter(known_filter: KnownUrlFilter, stats: Stats) -> KnownRedirectFilter:
    crawler = SimpleNamespace(stats=stats, get_spider_middleware=lambda cls: known_filter)
    return KnownRedirectFilter(crawler)


def redirect(request: Request, location: str, status: int = 301) -> Response:
    return Response(request.url, status=status, headers={"Location": location}, request=request)


def test_a_redirect_to_an_archived_or_requested_url_is_not_followed_and_becomes_an_alias(archive):
    stats = Stats()
    known_filter = make_filter(archive, stats)
    middleware = redirect_filter(known_filter, stats)
    short = entry("/p/77", redirect_urls=[BASE + "/out?to=p77"])
    with pytest.raises(RedirectToKnown) as refused:
        middleware.process_response(short, redirect(short, "/2026/11/25/story-1/"))
    alias = refused.value.record
    assert (alias.url, alias.canonical_url) == (BASE + "/out?to=p77", BASE + "/2026/11/25/story-1/")
    assert alias.redirect_urls == [BASE + "/out?to=p77", BASE + "/p/77"]
    fresh = entry("/p/78")
    response = redirect(fresh, BASE + "/2026/11/25/story-8/")
    assert middleware.process_response(fresh, response) is response, "an unknown target is followed"
    again = entry("/p/79")
    with pytest.raises(RedirectToKnown):  # this run is fetching story 8 already
        middleware.process_response(again, redirect(again, BASE + "/2026/11/25/story-8/"))
    assert stats["archive/state/redirects_to_known"] == 2


def test_a_redirect_to_the_same_canonical_url_is_followed_past_the_duplicate_filter(archive):
    middleware = redirect_filter(make_filter(archive, Stats()), Stats())
    tracked = entry("/2026/11/25/story-9/?utm_source=x")
    response = redirect(tracked, "/2026/11/25/story-9/")
    assert middleware.process_response(tracked, response) is response
    assert tracked.dont_filter is True


def test_discovery_documents_and_revisits_are_redirected_as_usual(archive):
    middleware = redirect_filter(make_filter(archive, Stats()), Stats())
    sitemap = discovery("/sitemap.xml")
    response = redirect(sitemap, BASE + "/2026/11/25/story-1/")
    assert middleware.process_response(sitemap, response) is response
    revisit = entry("/2026/11/25/story-2/", revisit=True)
    response = redirect(revisit, BASE + "/2026/11/25/story-1/")
    assert middleware.process_response(revisit, response) is response


# --- the dedup step against the archive ------------------------------------------------------------------------

def dedup(archive, stats: Stats):
    from pipelines.dedup import DedupPipeline

    return DedupPipeline(crawl_id="run2", near_distance=7, stats_collector=stats, earlier_state=lambda: archive)


def process(pipeline, item):
    from scrapy.exceptions import DropItem

    async def go():
        try:
            return await pipeline.process_item(item)
        except DropItem as exc:
            return exc

    return asyncio.run(go())


def test_a_variant_naming_an_archived_article_canonical_is_recorded_as_its_url_duplicate(archive, monkeypatch):
    threads = []
    details = archive.archived.details

    def recording(position):
        threads.append(threading.current_thread())
        return details(position)

    monkeypatch.setattr(archive.archived, "details", recording)
    stats = Stats()
    original = article(1)
    variant = dataclasses.replace(article(1, crawl_id="run2"), url=BASE + "/2026/11/25/story-1/?amp=1")
    record = process(dedup(archive, stats), variant)
    assert (record.kind, record.url, record.fetched) == ("url", variant.url, True)
    assert (record.duplicate_of_url, record.duplicate_of_crawl_id) == (original.canonical_url, "run1")
    assert stats["archive/dedup_earlier/url"] == 1
    assert threads and threading.main_thread() not in threads, "the data file is read in a thread"


def test_a_revisit_writes_a_new_version_only_when_the_body_changed(archive):
    stats = Stats()
    pipeline = dedup(archive, stats)
    unchanged = article(2, crawl_id="run2")
    assert "body unchanged" in str(process(pipeline, unchanged))
    changed = article(2, body="A corrected story two, with a paragraph added at the end.", crawl_id="run2")
    assert process(pipeline, changed) is changed and changed.version == 2
    assert stats["archive/state/revisit_unchanged"] == 1 and stats["archive/state/new_versions"] == 1


def test_an_alias_of_an_archived_article_names_it_and_a_link_to_its_own_canonical_url_gives_no_row(archive):
    stats = Stats()
    pipeline = dedup(archive, stats)
    hop = UrlAlias(url=BASE + "/p/71", canonical_url=BASE + "/2026/11/25/story-1/", discovered_via="link",
                   seen_at=NOW, redirect_urls=[BASE + "/p/71"])
    record = process(pipeline, hop)
    assert (record.kind, record.url, record.fetched, record.redirect_urls) == ("url", hop.url, False, hop.redirect_urls)
    assert record.duplicate_of_url == BASE + "/2026/11/25/story-1/"
    own = UrlAlias(url=BASE + "/2026/11/25/story-1/", canonical_url=BASE + "/2026/11/25/story-1/",
                   discovered_via="link", seen_at=NOW)
    assert "canonical URL of an archived article" in str(process(pipeline, own))
    assert stats["archive/aliases/own_url"] == 1
