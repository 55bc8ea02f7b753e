"""End to end: `scrapy crawl news` against the local news site, then the Parquet read back."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from newssite import REFERENCE_AUTHOR_PATH, SITE_NAME
from quality import token_f1

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]

REFERENCE_TITLE = "PENTAGON Says U.S. Soldiers Will Not Be Part of NATO Deployment of 3,500 More Troops To IRAQ"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_crawl_succeeds(news_crawl):
    _, _, result = news_crawl
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_every_article_archived_once(news_crawl):
    _, spec, result = news_crawl
    archived = [path_of(row["canonical_url"]) for row in result.rows("articles")]
    for original, members in spec.story_groups().items():
        hits = [path for path in archived if path in members]
        assert len(hits) == 1, f"{original}: archived {len(hits)} times as {hits}"
    assert len(archived) == len(set(archived)) == len(spec.articles)


def test_no_non_article_row(news_crawl):
    _, spec, result = news_crawl
    archived = {path_of(row["url"]) for row in result.rows("articles")}
    archived |= {path_of(row["canonical_url"]) for row in result.rows("articles")}
    assert not archived & set(spec.non_articles)
    rejected = {path_of(row["url"]): row["reason"] for row in result.rows("rejects")}
    # listing and utility pages are recognised by their signals; the two with a single teaser have less text
    # than EXTRACT_MIN_CHARS, which is checked first
    short = {"/section/business/", REFERENCE_AUTHOR_PATH}
    assert {path: rejected.get(path) for path in spec.non_articles} == {
        path: "too_short" if path in short else "not_article" for path in spec.non_articles}


def test_robots_disallowed_never_fetched(news_crawl):
    _, spec, result = news_crawl
    assert spec.disallowed
    for path in spec.disallowed:
        assert result.requests[path] == 0, path
    assert result.requests["/robots.txt"] == 2  # as a start URL, and by the robots.txt middleware


def test_each_story_fetched_once_whatever_its_tracking_parameters(news_crawl):
    _, spec, result = news_crawl
    fetches: dict[str, int] = defaultdict(int)
    for path, count in result.requests.items():
        fetches[urlsplit(path).path] += count  # every query string on the site is tracking only
    assert spec.tracking_links
    for link in spec.tracking_links:
        target = urlsplit(link).path
        assert fetches[target] == 1, f"{target} fetched {fetches[target]} times"


def test_duplicates_recorded_with_their_kind(news_crawl):
    _, spec, result = news_crawl
    archived = {path_of(row["canonical_url"]): row for row in result.rows("articles")}
    duplicates = result.rows("duplicates")
    by_path = defaultdict(list)
    for row in duplicates:
        by_path[path_of(row["url"])].append(row)
        assert row["duplicate_of_id"] in {a["article_id"] for a in archived.values()}
        assert row["crawl_id"] == row["duplicate_of_crawl_id"]
    # the first article to reach deduplication is kept; here that is the original, by construction
    # (conftest.news_crawl: the copies are only linked from pages answered after every original)
    assert result.copies_held_until_originals
    for kind, mapping in (("exact", spec.exact_copies), ("near", spec.near_copies), ("url", spec.canonical_aliases)):
        for copy, original in mapping.items():
            assert original in archived and copy not in archived, (kind, original, copy)
            assert not [r for r in by_path[original] if r["fetched"]], (original, by_path[original])
            rows = by_path[copy]
            assert [r["kind"] for r in rows] == [kind], (copy, rows)
            assert rows[0]["duplicate_of_url"] == spec.base_url + original
            assert rows[0]["duplicate_of_id"] == archived[original]["article_id"]
            assert rows[0]["fetched"] is True
            if kind == "near":
                assert 0 < rows[0]["distance"] <= 7
            else:
                assert rows[0]["distance"] is None
    tracking_variants = {path_of(r["url"]): r for r in duplicates if r["kind"] == "url" and not r["fetched"]}
    for path, row in tracking_variants.items():
        # the site serves each story at its path; a query string on it is tracking only
        assert row["canonical_url"] == row["duplicate_of_url"] == spec.base_url + urlsplit(path).path, path
    for link in spec.tracking_links:  # each link with tracking parameters was fetched, or recorded unfetched
        assert (result.requests[link] == 1) != (link in tracking_variants), link


def test_reference_article_row(news_crawl):
    _, spec, result = news_crawl
    rows = [r for r in result.rows("articles") if r["title"] == REFERENCE_TITLE]
    assert len(rows) == 1
    row = rows[0]
    assert row["authors"] == ["Gary Raynaldo"]
    body = row["body"]
    assert body.startswith("U.S. Soldiers Will Not Be Part of a NATO Deployment")
    assert body.endswith("bigger combat operations.")
    for boilerplate in ("Browse By", "Print Friendly", "PDF & Email", "Related", "©", "DoDo photo", "Share"):
        assert boilerplate not in body
    assert "print" not in [paragraph.strip().lower() for paragraph in body.split("\n\n")]
    assert row["published_at"] == datetime(2021, 2, 23, 23, 5, tzinfo=timezone.utc)
    assert row["published_at_raw"] == "2021-02-23T18:05:00-05:00"
    assert row["language"] == "en"
    expected = spec.article(path_of(row["canonical_url"])).body
    assert body.split("\n\n") == expected.split("\n\n")


def test_bodies_are_clean_and_complete(news_crawl):
    _, spec, result = news_crawl
    expected = {a.path: a for a in spec.articles}
    scores = []
    for row in result.rows("articles"):
        article = expected.get(path_of(row["canonical_url"]))
        if article is None:
            continue
        assert "\n\n\n" not in row["body"] and row["body"] == row["body"].strip()
        assert row["word_count"] == len(row["body"].split())
        scores.append(token_f1(row["body"], article.body))
    assert len(scores) == len(spec.articles)
    assert min(scores) >= 0.75 and sum(scores) / len(scores) >= 0.9, sorted(scores)


def test_discovered_via_records_the_route(news_crawl):
    _, spec, result = news_crawl
    via = {path_of(r["canonical_url"]): r["discovered_via"] for r in result.rows("articles")}
    for path in spec.only_in_news_sitemap:
        assert via.get(path) == "sitemap", path
    for path in spec.only_in_rss + spec.only_in_atom:
        assert via.get(path) == "feed", path


def test_every_article_the_news_sitemap_lists_has_its_fields_whatever_route_found_it_first(news_crawl):
    """Home links, tracking-parameter links, feeds and the sitemap race to the same stories: a row gets its entry's
    fields however its page was found first, and a row of a story the sitemap does not list gets none."""
    _, spec, result = news_crawl
    rows = {path_of(row["canonical_url"]): row for row in result.rows("articles")}
    assert set(spec.news_sitemap) - set(rows) == set(), "every story of the news sitemap is archived"
    for path, row in rows.items():
        title, published, language = spec.news_sitemap.get(path, (None, None, None))
        expected = (" ".join(title.split()), published, SITE_NAME, language) if title else (None,) * 4
        assert (row["sitemap_news_title"], row["sitemap_news_published_at_raw"], row["sitemap_news_publication"],
                row["sitemap_news_language"]) == expected, path
    manifest = result.manifests()[-1]
    assert manifest["counts"]["sitemap_news"]["too_late"] == 0


def test_manifest_counts_equal_the_rows(news_crawl):
    _, _, result = news_crawl
    [manifest] = result.manifests()
    counts = manifest["counts"]
    articles, duplicates, rejects = (result.rows(d) for d in ("articles", "duplicates", "rejects"))
    assert manifest["status"] == "complete" and manifest["finish_reason"] == "finished"
    assert counts["articles_written"] == len(articles)
    assert counts["duplicates_written"] == len(duplicates) == sum(counts["duplicates"].get(k, 0) for k in ("url", "exact", "near"))
    for kind in ("url", "exact", "near"):
        assert counts["duplicates"].get(kind, 0) == sum(1 for d in duplicates if d["kind"] == kind)
    assert counts["rejects_written"] == len(rejects) == sum(counts["dropped"].values())
    assert counts["pages_fetched"] >= len(articles) + len(duplicates) + len(rejects) - counts["duplicates"]["url"]
    assert {row["crawl_id"] for row in articles + duplicates + rejects} == {manifest["crawl_id"]}
    published = {f["key"]: f for f in manifest["files"]}
    on_disk = {str(p.relative_to(result.archive)) for pattern in ("*/dt=*/*.parquet", "warc/dt=*/*.warc.gz",
                                                                  "warc/dt=*/*.cdxj")
               for p in result.archive.glob(pattern)}
    assert set(published) == on_disk
    import hashlib

    for key, entry in published.items():
        path = result.archive / key
        assert path.stat().st_size == entry["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert sum(f["rows"] for f in manifest["files"] if f["dataset"] == "articles") == len(articles)


def test_archive_layout_and_nothing_half_written(news_crawl):
    _, _, result = news_crawl
    [manifest] = result.manifests()
    crawl_id = manifest["crawl_id"]
    for path in result.archive.rglob("*"):
        if path.is_file():
            relative = path.relative_to(result.archive).as_posix()
            assert not path.name.startswith(".") and not path.name.endswith((".inprogress", ".tmp")), relative
            assert relative.startswith(("articles/dt=", "duplicates/dt=", "rejects/dt=", "warc_files/dt=", "warc/dt=",
                                        "articles/_delta_log/", "duplicates/_delta_log/", "rejects/_delta_log/",
                                        "warc_files/_delta_log/", "runs/", "state/")), relative
            if relative.endswith(".parquet"):
                assert path.name.startswith(crawl_id + "-")
    import pyarrow.parquet as pq
    from deltalake import DeltaTable

    from schemas import ARTICLES, schema_version

    for dataset in ("articles", "duplicates", "rejects", "warc_files"):  # every data file is committed, only those
        table = DeltaTable(str(result.archive / dataset))
        committed = {f"{dataset}/{entry['path']}" for entry in pa.table(table.get_add_actions(flatten=True)).to_pylist()}
        assert committed == {p.relative_to(result.archive).as_posix() for p in result.archive.glob(f"{dataset}/dt=*/*")}
        assert {h.get("news_archive.crawl_id") for h in table.history() if h["operation"] == "WRITE"} == {crawl_id}
    for path in result.archive.glob("articles/dt=*/*.parquet"):
        metadata = pq.ParquetFile(path).metadata
        assert metadata.row_group(0).column(0).compression == "ZSTD"
        assert pq.read_schema(path).equals(ARTICLES, check_metadata=False)
        assert pq.read_schema(path).metadata[b"news_archive.schema_version"] == str(schema_version(ARTICLES)).encode()
