"""Publisher statements, piece by piece: terms merged, the paywall read, sitemap fields given to rows written
before their entry came, and archives written before the columns existed."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timezone

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from lxml.html import fromstring

from conftest import duckdb_with_delta
from pipelines.extract import build_options, extract_page
from pipelines.pagemeta import read_page_meta
from pipelines.parquet import DatasetWriter
from pipelines.publisher import (LateSitemapNews, amend_with, body_truncated_by_paywall, merge_terms, paywalled_texts,
                                 sitemap_news_columns, split_terms)
from pipelines.records import SitemapNews, SitemapNewsSeen
from pipelines.storage import LocalStore, file_sha256
from pipelines.table import DatasetTable, table_file
from records import article
from schemas import ARTICLES

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
NEWS = SitemapNews(title="Harbour reopens", publication_date="2026-11-25T07:00:00+01:00", publication="Herald",
                   language="en", keywords=("harbour", "Shipping"))
PARAGRAPHS = [f"Paragraph {i} of the story, with enough words in it to count as a paragraph of text." for i in range(8)]


def test_terms_merge_in_order_once_each_with_the_first_spelling():
    assert merge_terms(["Senate", " budget  talks "], ["senate", "Budget Talks", "Taxes"], [None, 3, ""]) == [
        "Senate", "budget talks", "Taxes"]
    assert split_terms("a, b; c\nA,,") == ["a", "b", "c"]
    assert split_terms(["x", "X", "y"]) == ["x", "y"]
    assert split_terms({"not": "terms"}) == []
    assert len(split_terms(",".join(str(i) for i in range(500)))) == 50


def _page(jsonld: object, body: str = "", head: str = "") -> str:
    return (f'<html><head><script type="application/ld+json">{json.dumps(jsonld)}</script>{head}</head>'
            f"<body><article><h1>A headline for the story</h1>{body}</article></body></html>")


@pytest.mark.parametrize(("jsonld", "free", "selectors"), [
    ({"@type": "NewsArticle", "isAccessibleForFree": False,
      "hasPart": [{"@type": "WebPageElement", "isAccessibleForFree": False, "cssSelector": ".paywall"},
                  {"@type": "WebPageElement", "isAccessibleForFree": True, "cssSelector": ".free"}]}, False, [".paywall"]),
    ({"@type": "NewsArticle", "isAccessibleForFree": "False",
      "hasPart": {"isAccessibleForFree": "false", "cssSelector": [".a", ".b"]}}, False, [".a", ".b"]),
    ({"@graph": [{"@type": "WebPage", "isAccessibleForFree": False,
                  "hasPart": {"isAccessibleForFree": False, "cssSelector": "#locked"}},
                 {"@type": "NewsArticle", "headline": "x"}]}, False, ["#locked"]),
    ({"@type": "NewsArticle", "isAccessibleForFree": True}, True, []),
    ({"@type": "NewsArticle", "isAccessibleForFree": "maybe"}, None, []),
    ({"@type": "NewsArticle"}, None, []),
], ids=["boolean-parts", "strings", "on-the-webpage", "free", "unreadable", "unstated"])
def test_the_paywall_statement_is_read_however_it_is_written(jsonld, free, selectors):
    meta = read_page_meta(fromstring(_page(jsonld)))
    assert (meta.is_accessible_for_free, meta.paywalled_selectors) == (free, selectors)


def test_sections_and_keywords_merge_jsonld_then_meta_tags():
    head = ('<meta property="article:section" content="politics"><meta property="article:section" content="World">'
            '<meta property="article:tag" content="Senate"><meta name="keywords" content="Taxes, senate">'
            '<meta name="news_keywords" content="Budget, Fiscal">')
    meta = read_page_meta(fromstring(_page({"@type": "NewsArticle", "articleSection": ["Politics"],
                                            "keywords": "Budget, Congress"}, head=head)))
    assert meta.sections == ["Politics", "World"]
    assert meta.keywords == ["Budget", "Congress", "Senate", "Taxes", "Fiscal"]


def test_paywalled_parts_held_or_not_by_the_body():
    tree = fromstring("<html><body><p>Free lead.</p><div class='paywall'><p>Paid one.</p><p>Paid two.</p></div>"
                      "</body></html>")
    texts = paywalled_texts(tree, [".paywall", "::not-css(", "x" * 400])
    assert texts == ["paid one.", "paid two."]
    assert body_truncated_by_paywall(texts, "Free lead.\n\nPaid one.\n\nPaid  two.") is False
    assert body_truncated_by_paywall(texts, "Free lead.") is True
    assert body_truncated_by_paywall(paywalled_texts(tree, [".absent"]), "Free lead.") is True
    assert paywalled_texts(tree, ["::not-css("]) is None  # no usable selector: the page marks nothing we can read
    assert body_truncated_by_paywall(None, "Free lead.") is None


def test_a_teaser_is_rejected_as_paywalled_and_a_free_short_page_as_too_short():
    options = build_options()
    for free, reason in ((False, "paywalled"), (None, "too_short")):
        jsonld = {"@type": "NewsArticle", "headline": "A headline for the story"}
        if free is not None:
            jsonld["isAccessibleForFree"] = free
        page = _page(jsonld, "<p>Only the lead of the story is shown to readers without a subscription here.</p>")
        outcome = extract_page(page, "https://herald.example/2026/11/25/story/", options, min_chars=300, now=NOW)
        assert outcome.reason == reason


def test_sitemap_news_columns_follow_the_published_at_rule():
    columns = sitemap_news_columns(NEWS, ["Harbour", "Port"], now=NOW)
    assert columns["keywords"] == ["Harbour", "Port", "Shipping"]
    assert columns["sitemap_news_published_at"] == datetime(2026, 11, 25, 6, tzinfo=timezone.utc)
    local = sitemap_news_columns(dataclasses.replace(NEWS, publication_date="2026-11-25T07:00:00"), [], now=NOW)
    assert (local["sitemap_news_published_at"], local["sitemap_news_published_date"]) == (None, date(2026, 11, 25))
    future = sitemap_news_columns(dataclasses.replace(NEWS, publication_date="2031-01-01T00:00:00Z"), [], now=NOW)
    assert (future["sitemap_news_published_at"], future["sitemap_news_published_at_raw"]) == (None, "2031-01-01T00:00:00Z")
    assert sitemap_news_columns(None, ["a"], now=NOW) == {"keywords": ["a"], **{
        name: None for name in columns if name.startswith("sitemap_news_")}}


def _seen(record, news=NEWS) -> SitemapNewsSeen:
    return SitemapNewsSeen(url=record.url, canonical_url=record.canonical_url, news=news, seen_at=NOW)


def test_an_entry_that_comes_before_its_row_waits_for_it():
    late = LateSitemapNews()
    record = dataclasses.replace(article(1), keywords=["Harbour"])
    assert late.seen(_seen(record)) is None
    given = late.article(record, where="file-1")
    assert (given.sitemap_news_title, given.keywords) == ("Harbour reopens", ["Harbour", "Shipping"])
    assert late.written == {} and late.written_url == {} and late.waiting == {}


def test_an_entry_that_comes_after_its_row_points_at_it_by_any_of_its_urls():
    late = LateSitemapNews()
    record = dataclasses.replace(article(2), url="https://herald.example/s/2?utm_source=x",
                                 redirect_urls=["https://herald.example/short/2"])
    assert late.article(record, where=("2026-11-25", 0)) is record
    hop = SitemapNewsSeen(url="https://herald.example/short/2", canonical_url="https://herald.example/short/2",
                          news=NEWS, seen_at=NOW)
    assert late.seen(hop) == (record.url, ("2026-11-25", 0))
    assert late.seen(_seen(record)) == (record.url, ("2026-11-25", 0))  # by its canonical URL too
    assert late.seen(_seen(record)) is None  # (then forgotten: a second entry waits for a row)
    with_own = dataclasses.replace(article(3), sitemap_news_keywords=[])  # an entry of its own, without keywords
    assert late.article(with_own, where=("2026-11-25", 0)) is with_own and late.seen(_seen(with_own)) is None


def test_rows_of_one_file_share_where_they_are_and_keep_only_urls_that_are_not_their_key():
    late = LateSitemapNews()
    place = ["2026-11-25", 0]  # two equal places, built apart (equal tuple literals would be one constant)
    first = late.article(article(4), where=tuple(place))
    second = late.article(dataclasses.replace(article(5), url=article(5).url + "?utm_source=x"),
                          where=tuple(place))
    assert late.written[first.canonical_url] is late.written[second.canonical_url]
    assert late.written_url == {second.canonical_url: second.url}
    assert late.seen(_seen(first)) == (first.url, ("2026-11-25", 0))
    assert late.seen(_seen(second)) == (second.url, ("2026-11-25", 0))


def test_rows_written_before_their_entry_are_amended_when_their_file_closes(tmp_path):
    closed = []
    writer = DatasetWriter(dataset="articles", schema=ARTICLES, spool_dir=tmp_path, file_prefix="run1",
                           on_closed=closed.append, row_group_rows=2, max_file_rows=5)
    records = [dataclasses.replace(article(n), keywords=["Harbour"]) for n in range(1, 8)]
    where = []
    for record in records:
        where.append(writer.generation("2026-11-25"))
        writer.write(record, dt="2026-11-25")
    # rows 1-5 are in a closed file (rolled at 5 rows); rows 6-7 in the open one
    assert len(closed) == 1
    assert not writer.amend("2026-11-25", where[0], records[0].url, amend_with(_seen(records[0])))
    assert writer.amend("2026-11-25", where[6], records[6].url, amend_with(_seen(records[6])))
    writer.close()
    assert writer.amended_rows == 1
    second = closed[1]
    assert second.sha256 == file_sha256(second.path) and pq.ParquetFile(second.path).schema_arrow.equals(ARTICLES)
    rows = pq.read_table(second.path).to_pylist()
    assert [(row["sitemap_news_title"], row["keywords"]) for row in rows] == [
        (None, ["Harbour"]), ("Harbour reopens", ["Harbour", "Shipping"])]
    assert pq.read_table(closed[0].path).column("sitemap_news_title").null_count == 5
    assert sorted(p.name for p in second.path.parent.iterdir()) == sorted(c.path.name for c in closed)


def test_an_archive_written_before_the_columns_reads_back_with_nulls(tmp_path):
    store = LocalStore(tmp_path / "archive")
    uri, options = store.table_location("articles")
    new_columns = ARTICLES.names[ARTICLES.get_field_index("sections"):]
    older = pa.schema([f for f in ARTICLES if f.name not in new_columns],
                      metadata={**ARTICLES.metadata, b"news_archive.schema_version": b"4"})
    old_table = DatasetTable(uri, "articles", older, options)
    old_table.open()
    old_file = tmp_path / "old.parquet"
    row = {k: v for k, v in dataclasses.asdict(article(1)).items() if k not in new_columns}
    pq.write_table(pa.Table.from_pylist([row], schema=older), old_file)
    key = "articles/dt=2026-11-25/old-00001.parquet"
    entry = table_file(old_file, key, size=old_file.stat().st_size, rows=1)
    store.publish(old_file, key, rows=1, sha256=file_sha256(old_file))  # (moves the file into the archive)
    old_table.commit([entry], app_id="old", version=1)
    table = DatasetTable(uri, "articles", ARTICLES, options)
    table.open()  # the new release evolves the table: the columns added, nullable
    new_file = tmp_path / "new.parquet"
    fresh = dataclasses.replace(article(2), is_accessible_for_free=False,
                                **sitemap_news_columns(NEWS, ["Harbour"], now=NOW))
    pq.write_table(pa.Table.from_pylist([dataclasses.asdict(fresh)], schema=ARTICLES), new_file)
    key = "articles/dt=2026-11-25/new-00001.parquet"
    entry = table_file(new_file, key, size=new_file.stat().st_size, rows=1)
    store.publish(new_file, key, rows=1, sha256=file_sha256(new_file))
    table.commit([entry], app_id="new", version=1)
    with duckdb_with_delta() as connection:
        rows = connection.execute(f"""SELECT title, keywords, is_accessible_for_free, sitemap_news_title,
            sitemap_news_published_at FROM delta_scan('{uri}') ORDER BY title""").fetchall()
    assert rows == [("Story 1", None, None, None, None),
                    ("Story 2", ["Harbour", "Shipping"], False, "Harbour reopens",
                     datetime(2026, 11, 25, 6, tzinfo=timezone.utc))]
    frame = pl.read_delta(uri).sort("title")
    assert frame["sitemap_news_keywords"].to_list() == [None, ["harbour", "Shipping"]]


def test_the_archive_step_gives_each_entry_to_its_row_or_counts_it_too_late(tmp_path):
    """Rows 1 and 2 fill a file (two rows a file), which is closed; row 3 is in the open one; row 4 comes after its
    entry. Entry 1 is too late (counted, logged, not applied), entries 3 and 4 reach their rows."""
    from pipelines.archive import ArchivePipeline
    from records import Stats

    store = LocalStore(tmp_path / "archive")
    store.check_writable()
    collected = Stats()
    pipeline = ArchivePipeline(store=store, crawl_id="20261125T103000Z-abcdef", spool_root=tmp_path / "spool",
                               settings_record={}, writer_options={"max_file_rows": 2}, upload_threads=1,
                               stats_collector=collected)
    pipeline.open_files()
    pipeline._state_loaded(pipeline._prepare())
    records = {n: dataclasses.replace(article(n), keywords=["Harbour"], crawl_id="20261125T103000Z-abcdef")
               for n in range(1, 5)}
    for n in (1, 2, 3):
        pipeline.process_item(records[n])
    for n in (1, 3, 4):
        pipeline.process_item(_seen(records[n], dataclasses.replace(NEWS, title=f"Entry {n}")))
    pipeline.process_item(records[4])
    pipeline.close_files()
    pipeline.executor.shutdown(wait=True)
    pipeline.finish("finished")
    assert not pipeline.errors, pipeline.errors
    rows = {row["title"]: row for row in DeltaTable(str(tmp_path / "archive" / "articles")).to_pyarrow_table().to_pylist()}
    assert {title: (row["sitemap_news_title"], row["keywords"]) for title, row in rows.items()} == {
        "Story 1": (None, ["Harbour"]), "Story 2": (None, ["Harbour"]),
        "Story 3": ("Entry 3", ["Harbour", "Shipping"]), "Story 4": ("Entry 4", ["Harbour", "Shipping"])}
    (manifest,) = [json.loads(path.read_text()) for path in (tmp_path / "archive" / "runs").glob("*.json")]
    assert manifest["counts"]["sitemap_news"] == {"entries": 0, "seen_after_request": 0, "rows_amended": 1,
                                                  "too_late": 1}
