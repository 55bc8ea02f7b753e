"""The extraction pool: pages extracted in worker processes; a hung or crashed worker costs one page only."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone

from pipelines.records import ArticleRecord, FetchedPage, RejectRecord
from pipelines.extract import ExtractPipeline
from poolhelpers import misbehaving_task, worker_facts_task
from records import Stats
from test_extract import ARTICLE_HEAD, URL, article_html


def page(marker: str = "", n: int = 0) -> FetchedPage:
    html = article_html(head=ARTICLE_HEAD).replace("</article>", f"<p>{marker} story {n}</p></article>")
    return FetchedPage(url=URL.replace("breakwater", f"breakwater-{n}"), request_url=URL, canonical_url=URL, body=html.encode(),
                       http_status=200, fetched_at=datetime.now(timezone.utc), discovered_via="link")


def run(pipeline, items):
    async def main():
        pipeline.open_spider()
        try:
            return await asyncio.gather(*(pipeline.process_item(item) for item in items))
        finally:
            pipeline.close_spider()
    return asyncio.run(main())


def test_hung_and_crashed_workers_cost_one_page_each():
    stats = Stats()
    pipeline = ExtractPipeline(crawl_id="run", min_chars=300, workers=2, timeout=3, stats_collector=stats,
                               task=misbehaving_task)
    items = [page(n=1), page("HANG-HERE", 2), page("CRASH-HERE", 3), page(n=4), page(n=5), page(n=6)]
    results = run(pipeline, items)
    assert [type(r).__name__ for r in results] == ["ArticleRecord", "RejectRecord", "RejectRecord",
                                                     "ArticleRecord", "ArticleRecord", "ArticleRecord"]
    assert results[1].reason == "extract_timeout" and results[2].reason == "worker_crashed"
    assert stats["archive/extract/dropped/extract_timeout"] == 1 and stats["archive/extract/dropped/worker_crashed"] == 1
    assert stats["archive/cpu/extract_seconds"] > 0
    # every page is handed to the pool before any result can come back: each process_item runs up to its
    # ``await`` in the same turn of the event loop, and a result is only seen in a later turn (the hung page
    # holds its worker for the whole 3 s anyway); so all six are in flight at once, though only two run
    assert stats["archive/extract/max_in_flight"] == len(items) == 6
    assert pipeline.in_flight == 0


def test_pages_awaited_one_at_a_time_are_one_in_flight():
    stats = Stats()
    pipeline = ExtractPipeline(crawl_id="run", min_chars=300, workers=2, stats_collector=stats)

    async def main():
        pipeline.open_spider()
        try:
            return [await pipeline.process_item(page(n=n)) for n in range(3)]
        finally:
            pipeline.close_spider()

    results = asyncio.run(main())
    assert [type(r).__name__ for r in results] == ["ArticleRecord"] * 3
    assert stats["archive/extract/max_in_flight"] == 1, "a maximum of pages at once, not a count of pages"


def test_oversized_page_is_not_extracted():
    stats = Stats()
    pipeline = ExtractPipeline(crawl_id="run", min_chars=300, workers=0, max_html_bytes=1000, stats_collector=stats)
    [result] = run(pipeline, [page(n=1)])
    assert isinstance(result, RejectRecord) and result.reason == "too_large"
    small = page(n=2)
    small.body = "<html><body><p>tiny</p></body></html>".encode("utf-16")  # bytes as received count, not characters
    [result] = run(ExtractPipeline(crawl_id="run", min_chars=30, workers=0, max_html_bytes=40), [small])
    assert isinstance(result, RejectRecord) and result.reason == "too_large"


def test_inline_mode_gives_the_same_record_as_the_pool():
    item = page(n=7)
    inline = run(ExtractPipeline(crawl_id="run", min_chars=300, workers=0), [item])[0]
    pooled = run(ExtractPipeline(crawl_id="run", min_chars=300, workers=1), [item])[0]
    assert isinstance(inline, ArticleRecord) and isinstance(pooled, ArticleRecord)
    assert inline.body == pooled.body and inline.content_hash == pooled.content_hash and inline.simhash == pooled.simhash


def test_workers_start_from_a_warmed_up_frozen_fork_server():
    # forked from a server that imported the extraction code (not Scrapy), loaded jusText's stoplists, extracted
    # one page (lazy initialisation paid once, not by every new worker) and froze it all out of the collector's view
    pipeline = ExtractPipeline(crawl_id="run", min_chars=300, workers=1, max_tasks_per_worker=1, task=worker_facts_task)
    facts = [json.loads(result.detail) for result in run(pipeline, [page(n=1), page(n=2)])]
    # one worker that takes one page: the second page runs in a second worker, forked by the same fork server
    # (the parent of both), not by this process
    first, second = facts
    assert first["pid"] != second["pid"] and os.getpid() not in (first["pid"], second["pid"])
    assert first["ppid"] == second["ppid"] != os.getpid()
    for fact in facts:
        assert fact["gc_frozen"] > 10_000 and not fact["scrapy_imported"]
        assert fact["stoplists_cached"] >= 1 and fact["tld_trie_loaded"]
