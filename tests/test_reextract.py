"""Re-extraction (``news-archive reextract``): the archive's WARC records extracted again, nothing fetched, each
record once by the new extractor, the latest view switched to the new rows, the old rows kept."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, crawl_news_site_into, duckdb_with_delta, news_archive
from pipelines.extract import EXTRACTOR_VERSION, extractor_version
from pipelines.publisher import SITEMAP_NEWS_COLUMNS

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]

PRECISION = extractor_version(favor_precision=True)
TESTS = REPO / "tests"


def reextract(target, tmp, *arguments, settings: dict | None = None, env: dict | None = None):
    """``news-archive reextract <archive> ...`` as the README runs it."""
    return news_archive(target, tmp, "reextract", target.uri, *arguments, settings=settings, env=env)


def crawled(kind: str, news_site, tmp_path_factory, name: str, request):
    """A crawl of the news site (raw capture on) into a fresh folder or bucket: (site, target, tmp)."""
    tmp = tmp_path_factory.mktemp(f"{name}-{kind}")
    target = crawl_news_site_into(kind, news_site, tmp, request.getfixturevalue("moto_server") if kind == "s3"
                                  else None)
    return news_site[0], target, tmp


def manifest_of(target, crawl_id: str) -> dict:
    with target.store.open_input(f"runs/{crawl_id}.json") as source:
        return json.loads(source.read())


def latest(target) -> dict[str, dict]:
    """articles_latest as schemas/README.md defines it for DuckDB (its first query), by article id; and the same
    rows by the view it gives Athena and Trino (the join form), which must agree."""
    from test_schema_docs import README, _ddl_by_table, _duckdb_queries, _sections

    readme = README.read_text(encoding="utf-8")
    [duckdb_view] = [q for q in _duckdb_queries(readme).values() if "CREATE VIEW articles_latest" in q]
    [join_view] = _ddl_by_table(_sections(readme, 2)["Querying with Athena"],
                                r"CREATE VIEW (articles_latest) AS").values()
    connection = duckdb_with_delta(target)
    connection.execute(duckdb_view.replace("'archive/articles'", f"'{target.uri}/articles'").rstrip().rstrip(";"))
    query = "SELECT article_id, version, extractor_version, crawl_id FROM articles_latest ORDER BY article_id"
    rows = connection.sql(query).fetchall()
    joined = duckdb_with_delta(target)
    joined.execute(f"CREATE VIEW articles AS SELECT * FROM delta_scan('{target.uri}/articles')")
    joined.execute(join_view.rstrip().rstrip(";"))
    assert joined.sql(query).fetchall() == rows, "Athena's and Trino's view picks what DuckDB's picks"
    return {article_id: {"extractor_version": version, "crawl_id": crawl_id}
            for article_id, _, version, crawl_id in rows}


@pytest.fixture(scope="module", params=["folder", "s3"])
def reextracted(request, news_site, tmp_path_factory):
    """The news site crawled, then re-extracted in precision mode: (site, target, tmp, rows before, result,
    requests the site answered before the re-extraction)."""
    site, target, tmp = crawled(request.param, news_site, tmp_path_factory, "reextract", request)
    before = {d: target.rows(d) for d in ("articles", "duplicates", "rejects")}
    served = sum(site.requests.values())
    result = reextract(target, tmp, "--favor-precision")
    return site, target, tmp, before, result, served


def test_reextraction_adds_a_row_per_article_with_the_new_extractor_and_the_same_identity(reextracted):
    site, target, _, before, result, served = reextracted
    assert result.returncode == 0, result.stderr[-3000:]
    assert sum(site.requests.values()) == served, "nothing was fetched from the site"
    old = before["articles"]
    assert old and {row["extractor_version"] for row in old} == {EXTRACTOR_VERSION}
    assert all(row["warc_filename"] for row in old)
    rows = target.rows("articles")
    new = [row for row in rows if row["extractor_version"] == PRECISION]
    kept = [row for row in rows if row["extractor_version"] == EXTRACTOR_VERSION]
    assert sorted(r["article_id"] for r in kept) == sorted(r["article_id"] for r in old), "the old rows stay"
    assert len(new) == len(old) and len({(r["article_id"], r["version"]) for r in new}) == len(new)
    by_id = {row["article_id"]: row for row in old}
    [crawl_id] = {row["crawl_id"] for row in new}
    for row in new:
        earlier = by_id[row["article_id"]]
        same = ("version", "url", "fetched_at", "first_seen_at", "http_status", "discovered_via", "source_url",
                "warc_filename", "warc_record_offset", "warc_record_length", "sections", "keywords",
                "is_accessible_for_free", *SITEMAP_NEWS_COLUMNS)  # (what the sitemap said is not in the WARC)
        assert {k: row[k] for k in same} == {k: earlier[k] for k in same}
        assert row["extracted_at"] > row["fetched_at"] and earlier["extracted_at"] < row["extracted_at"]
        assert row["crawl_id"] == crawl_id != earlier["crawl_id"]
    listed = [row["canonical_url"] for row in new if row["sitemap_news_title"] is not None]
    assert sorted(listed) == sorted(row["canonical_url"] for row in old if row["sitemap_news_title"] is not None)
    assert listed, "the news site's Google News sitemap lists some of the articles"
    manifest = manifest_of(target, crawl_id)
    assert manifest["status"] == "complete" and manifest["settings"]["ARCHIVE_JOB"] == "reextract"
    assert manifest["counts"]["requests"] == 0 and manifest["counts"]["warc_records_read"] == len(old)


def test_the_report_counts_what_changed(reextracted):
    _, target, _, before, result, _ = reextracted
    old = {row["article_id"]: row for row in before["articles"]}
    new = [row for row in target.rows("articles") if row["extractor_version"] == PRECISION]
    bodies = [row for row in new if row["content_hash"] != old[row["article_id"]]["content_hash"]]
    assert bodies, "precision mode changes some bodies of the test site"
    expected = {
        "rows": len(new),
        "body_changed": len(bodies),
        "body_chars_added": sum(max(len(r["body"]) - len(old[r["article_id"]]["body"]), 0) for r in new),
        "body_chars_removed": sum(max(len(old[r["article_id"]]["body"]) - len(r["body"]), 0) for r in new),
        "title_changed": sum(r["title"] != old[r["article_id"]]["title"] for r in new),
        "published_at_changed": sum(r["published_at"] != old[r["article_id"]]["published_at"] for r in new),
        "authors_changed": sum(r["authors"] != old[r["article_id"]]["authors"] for r in new),
    }
    unchanged = sum(r["content_hash"] == old[r["article_id"]]["content_hash"] and r["title"] == old[r["article_id"]]["title"]
                    and r["published_at"] == old[r["article_id"]]["published_at"]
                    and r["authors"] == old[r["article_id"]]["authors"] for r in new)
    [crawl_id] = {row["crawl_id"] for row in new}
    counts = manifest_of(target, crawl_id)["counts"]["reextract"]
    assert counts == {**expected, "unchanged": unchanged}
    report = result.stdout.strip().splitlines()
    assert report[0].startswith(f"re-extracted: {len(new)} records read, {len(new)} new article rows")
    assert f"body changed in {len(bodies)} rows" in report[1]


def test_the_latest_view_shows_the_new_extraction(reextracted):
    _, target, _, before, _, _ = reextracted
    view = latest(target)
    assert set(view) == {row["article_id"] for row in before["articles"]}
    assert {row["extractor_version"] for row in view.values()} == {PRECISION}


def test_a_rerun_finds_nothing_left_to_do(reextracted):
    site, target, tmp, _, _, served = reextracted
    rows = len(target.rows("articles"))
    again = reextract(target, tmp, "--favor-precision")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(target.rows("articles")) == rows
    assert again.stdout.startswith("re-extracted: 0 records read, 0 new article rows")
    assert sum(site.requests.values()) == served


@pytest.fixture(params=["folder", "s3"])
def fresh(request, news_site, tmp_path_factory):
    return crawled(request.param, news_site, tmp_path_factory, "reextract-kill", request)


def test_a_killed_reextraction_rerun_ends_with_each_row_once(fresh):
    site, target, tmp = fresh
    old = target.rows("articles")
    killed = reextract(target, tmp, "--favor-precision", settings={
        "ARCHIVE_MAX_FILE_ROWS": 2, "ARCHIVE_ROW_GROUP_ROWS": 1,
        "EXTENSIONS": json.dumps({"faults.KillAtCommit": 0}), "FAULT_KILL_AT": "committed", "FAULT_KILL_COMMIT": 2,
    }, env={"PYTHONPATH": str(TESTS)})
    assert killed.returncode == -9, killed.stderr[-3000:]
    done_before = [row for row in target.rows("articles") if row["extractor_version"] == PRECISION]
    assert 0 < len(done_before) < len(old), "killed in the middle"
    rerun = reextract(target, tmp, "--favor-precision")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    new = [row for row in target.rows("articles") if row["extractor_version"] == PRECISION]
    assert Counter((r["article_id"], r["version"]) for r in new) == Counter((r["article_id"], r["version"]) for r in old)
    by_run = Counter(row["crawl_id"] for row in new)
    assert len(by_run) == 2 and min(by_run.values()) >= 1, by_run
    read = int(rerun.stdout.split("re-extracted: ", 1)[1].split(" ", 1)[0])
    assert read < len(old), "the rerun did not redo what the killed run committed"


def test_the_selection_limits_by_fetch_day_domain_and_extractor_version(reextracted):
    """Which rows a re-extraction takes, as the options say (an extractor that judged nothing yet: every row is
    a candidate)."""
    from datetime import timedelta

    from pipelines.archive import dataset_tables
    from pipelines.reextract import Selection, plan_warc_files, planned_records

    _, target, _, before, _, _ = reextracted
    tables = dataset_tables(target.store)
    [name] = plan_warc_files(tables, Selection())

    def offsets(selection: Selection) -> set[int]:
        return {r.offset for r in planned_records(tables, name, selection, current_version="another/1")}

    old = {row["warc_record_offset"] for row in before["articles"]}
    days = sorted({row["fetched_at"].date() for row in before["articles"]})
    domains = {row["domain"] for row in before["articles"]}
    assert offsets(Selection()) == old  # each record once, though an old and a new row point at it
    assert offsets(Selection(extractor_version=EXTRACTOR_VERSION)) == old
    assert offsets(Selection(extractor_version="trafilatura/0 news-archive/0")) == set()
    assert offsets(Selection(domains=frozenset({"no-such-domain.example"}))) == set()
    assert offsets(Selection(domains=frozenset(domains))) == old
    assert offsets(Selection(since=days[-1] + timedelta(days=1))) == set()
    assert offsets(Selection(until=days[0] - timedelta(days=1))) == set()
    assert offsets(Selection(since=days[0], until=days[-1])) == old
    assert plan_warc_files(tables, Selection(since=days[-1] + timedelta(days=1))) == []


def test_a_record_that_cannot_be_read_back_is_a_reject_and_the_others_are_reextracted(news_site, tmp_path_factory,
                                                                                      request):
    site, target, tmp = crawled("folder", news_site, tmp_path_factory, "reextract-unreadable", request)
    old = target.rows("articles")
    victim = old[0]
    path = Path(target.uri) / victim["warc_filename"]
    data = bytearray(path.read_bytes())
    data[victim["warc_record_offset"] + victim["warc_record_length"] // 2] ^= 0xFF  # inside the record's member
    path.write_bytes(bytes(data))
    result = reextract(target, tmp, "--favor-precision")
    assert result.returncode == 0, result.stderr[-3000:]
    [reject] = [row for row in target.rows("rejects") if row["reason"] == "warc_unreadable"]
    assert (reject["url"], reject["warc_record_offset"], reject["extractor_version"]) == (
        victim["url"], victim["warc_record_offset"], PRECISION)
    new = [row for row in target.rows("articles") if row["extractor_version"] == PRECISION]
    assert sorted(row["article_id"] for row in new) == sorted(r["article_id"] for r in old if r is not victim)
    again = reextract(target, tmp, "--favor-precision")  # judged by this extractor: not tried again
    assert again.returncode == 0 and again.stdout.startswith("re-extracted: 0 records read"), again.stdout
    assert len([row for row in target.rows("rejects") if row["reason"] == "warc_unreadable"]) == 1
