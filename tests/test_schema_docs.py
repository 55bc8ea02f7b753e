"""schemas/README.md against the schemas: column tables, type mapping, DDL, and the DuckDB queries,
run on a small real archive."""

from __future__ import annotations

import hashlib
import html
import re
from datetime import date, datetime, timezone
from pathlib import Path

from conftest import duckdb_with_delta
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schemas
from pipelines import stats
from pipelines.manifest import build_manifest, manifest_bytes
from pipelines.storage import PublishedFile, file_sha256

README = Path(__file__).resolve().parents[1] / "schemas" / "README.md"

#: the README's spelling of each Arrow type
ARROW_SPELLING = {
    pa.string(): "string",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.bool_(): "bool",
    pa.date32(): "date32",
    schemas.UTC_TIMESTAMP: "timestamp[us, tz=UTC]",
    pa.list_(pa.string()): "list<string>",
}


# --- reading the README ---------------------------------------------------------------------------


def _sections(text: str, level: int) -> dict[str, str]:
    """Heading -> body for headings of exactly ``level``; a line inside a code fence is never a heading."""
    marker = "#" * level + " "
    result: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("#") and not line.startswith(marker + "#"):
            depth = len(line) - len(line.lstrip("#"))
            if depth <= level:
                current = None
            if line.startswith(marker):
                current = result.setdefault(line[len(marker):].strip(), [])
                continue
        if current is not None:
            current.append(line)
    return {heading: "\n".join(lines) for heading, lines in result.items()}


def _table_rows(text: str) -> list[list[str]]:
    """Cells of every data row of the Markdown tables in ``text`` (header and separator rows left out)."""
    rows, previous_was_table = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            previous_was_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if previous_was_table and not set("".join(cells)) <= set("-: "):
            rows.append(cells)
        previous_was_table = True  # the first row of a table is its header
    return rows


def _code(cell: str) -> str:
    return html.unescape(cell.strip().strip("`"))


def _sql_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"^```sql\n(.*?)^```", text, flags=re.S | re.M)]


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def type_mapping(readme) -> dict[str, dict[str, str]]:
    """Arrow spelling -> {engine: type}, from the README's Type mapping table."""
    section = _sections(readme, 2)["Type mapping"]
    header = next(line for line in section.splitlines() if line.startswith("| Arrow"))
    # "Trino (Hive connector)" -> "Trino"
    engines = [cell.strip().split(" (")[0] for cell in header.strip().strip("|").split("|")]
    assert engines[0] == "Arrow"
    rows = _table_rows(section)
    return {_code(row[0]): dict(zip(engines[1:], (_code(cell) for cell in row[1:]))) for row in rows}


# --- column tables --------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", list(schemas.DATASETS))
def test_column_table_matches_schema(readme, dataset):
    schema = schemas.DATASETS[dataset]
    section = _sections(_sections(readme, 2)["Datasets"], 3)[dataset]
    assert f"Schema version {schemas.schema_version(schema)}." in section
    documented = [
        (_code(row[0]), _code(row[1]), row[2], html.unescape(row[3])) for row in _table_rows(section)
    ]
    expected = [
        (f.name, ARROW_SPELLING[f.type], "yes" if f.nullable else "no", schemas.description(schema, f.name))
        for f in schema
    ]
    assert [row[0] for row in documented] == schema.names, "documented columns differ from the schema"
    assert documented == expected


def test_type_mapping_covers_every_type(type_mapping):
    used = {ARROW_SPELLING[f.type] for schema in schemas.DATASETS.values() for f in schema}
    assert used <= set(type_mapping)
    assert all({"DuckDB", "Athena", "Trino", "Spark"} <= set(engines) for engines in type_mapping.values())


# --- DDL ------------------------------------------------------------------------------------------


def _ddl_columns(block: str) -> list[tuple[str, str]]:
    body = block.split("(", 1)[1].split("\n)", 1)[0]
    columns = []
    for line in body.strip().splitlines():
        match = re.fullmatch(r"\s*`?(\w+)`?\s+(.+?),?\s*", line)
        assert match, f"unreadable column line: {line!r}"
        columns.append((match.group(1), match.group(2)))
    return columns


def _ddl_by_table(section: str, pattern: str) -> dict[str, str]:
    tables = {}
    for block in _sql_blocks(section):
        match = re.match(pattern, block)
        if match:
            tables[match.group(1)] = block
    return tables


def test_athena_registers_every_table_as_delta_and_defines_the_latest_view(readme):
    section = _sections(readme, 2)["Querying with Athena"]
    tables = _ddl_by_table(section, r"CREATE EXTERNAL TABLE (\w+)\n")
    assert set(tables) == set(schemas.DATASETS)
    for dataset, block in tables.items():
        assert f"LOCATION 's3://your-bucket/prefix/{dataset}/'" in block
        assert "TBLPROPERTIES ('table_type' = 'DELTA');" in block
    [view] = _ddl_by_table(section, r"CREATE VIEW (articles_latest) AS").values()
    assert "max(version)" in view and "GROUP BY article_id" in view


def test_trino_registers_every_table_where_it_is(readme):
    section = _sections(readme, 2)["Querying with Trino"]
    tables = _ddl_by_table(section, r"CALL delta\.system\.register_table\(schema_name => 'news', table_name => '(\w+)'")
    assert set(tables) == set(schemas.DATASETS)
    for dataset, block in tables.items():
        assert f"table_location => 's3://your-bucket/prefix/{dataset}/'" in block


def test_the_latest_view_of_athena_and_trino_gives_what_duckdbs_gives(readme, archive):
    """The join form (for engines without QUALIFY) and DuckDB's view pick the same rows."""
    section = _sections(readme, 2)["Querying with Athena"]
    [view] = _ddl_by_table(section, r"CREATE VIEW (articles_latest) AS").values()
    connection = duckdb_with_delta()
    connection.execute("CREATE VIEW articles AS SELECT * FROM delta_scan('archive/articles')")
    connection.execute(view.rstrip(";"))
    joined = sorted(connection.sql("SELECT article_id, version, crawl_id FROM articles_latest").fetchall())
    assert joined == sorted((row["article_id"], row["version"], row["crawl_id"]) for row in (A1, A2_REVISED, A3, A4))


# --- DuckDB queries on a real archive -------------------------------------------------------------


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


def _article_id(canonical_url: str) -> str:
    return hashlib.sha256(canonical_url.encode()).hexdigest()[:32]


SIMHASH_A1 = 0xF0E1D2C3B4A59687  # above 2**63: stored negative
SIMHASH_A4 = SIMHASH_A1 ^ ((1 << 63) | (1 << 20) | 1)  # distance 3, and the sign bit differs
SIMHASH_D2 = SIMHASH_A1 ^ ((1 << 40) | (1 << 5))  # distance 2


def _article(
    canonical_url: str, *, title: str, authors: list[str], fetched_at: datetime, crawl_id: str, simhash: int,
    published_at: datetime | None, published_date: date, raw: str, source: str,
) -> dict:
    host = canonical_url.split("/")[2]
    body = f"{title}.\n\nThe full story, as reported on {host}, runs to a few paragraphs of plain text."
    return {
        "article_id": _article_id(canonical_url),
        "version": 1,
        "url": canonical_url,
        "canonical_url": canonical_url,
        "domain": ".".join(host.split(".")[-2:]),
        "host": host,
        "title": title,
        "body": body,
        "authors": authors,
        "published_at": published_at,
        "published_date": published_date,
        "published_at_raw": raw,
        "published_at_source": source,
        "modified_at": None,
        "modified_at_raw": None,
        "language": "en",
        "description": f"{title} – summary.",
        "site_name": host,
        "tags": ["climate"] if "climate" in canonical_url else [],
        "categories": [canonical_url.split("/")[3]],
        "image_url": f"https://{host}/img/lead.jpg",
        "word_count": len(body.split()),
        "fetched_at": fetched_at,
        "first_seen_at": fetched_at,
        "http_status": 200,
        "discovered_via": "link",
        "source_url": f"https://{host}/",
        "crawl_id": crawl_id,
        "content_hash": hashlib.sha256(body.encode()).hexdigest(),
        "simhash": _signed(simhash),
        "extractor_version": "trafilatura/2.3.1 news-archive/0.1.0",
    }


A1 = _article(
    "https://www.example.com/world/2026/11/24/climate-summit-ends-with-deal",
    title="Climate summit ends with a deal on methane", authors=["Jane Doe", "Ali Khan"],
    fetched_at=_utc(2026, 11, 24, 9, 15, 2), crawl_id="x", simhash=SIMHASH_A1,
    published_at=_utc(2026, 11, 24, 7, 30), published_date=date(2026, 11, 24),
    raw="2026-11-24T08:30:00+01:00", source="jsonld",
)
A1.update(warc_filename="warc/dt=2026-11-24/x-00001.warc.gz", warc_record_offset=375, warc_record_length=3945)
A1.update(  # what the publisher stated: JSON-LD, meta tags and its Google News sitemap
    sections=["World", "Environment"], keywords=["climate", "Methane", "COP31"], is_accessible_for_free=True,
    sitemap_news_title="Climate summit ends with a deal", sitemap_news_published_at=_utc(2026, 11, 24, 7, 40),
    sitemap_news_published_date=date(2026, 11, 24), sitemap_news_published_at_raw="2026-11-24T08:40:00+01:00",
    sitemap_news_publication="Example News", sitemap_news_language="en",
    sitemap_news_keywords=["COP31", "climate"], sitemap_news_genres=[], sitemap_news_stock_tickers=["NYSE:XOM"],
    sitemap_news_access=None)
A2 = _article(
    "https://www.example.com/business/2026/11/24/central-bank-holds-rates",
    title="Central bank holds rates", authors=["Jane Doe"],
    fetched_at=_utc(2026, 11, 24, 9, 16, 40), crawl_id="x", simhash=0x0123456789ABCDEF,
    published_at=None, published_date=date(2026, 11, 24), raw="2026-11-24", source="htmldate",
)
A3 = _article(
    "https://news.example.org/politics/2026/11/24/local-elections-turnout",
    title="Turnout rises in local elections", authors=[],
    fetched_at=_utc(2026, 11, 24, 23, 58, 10), crawl_id="x", simhash=0x7F00FF00AA5533CC,
    published_at=_utc(2026, 11, 24, 6, 0), published_date=date(2026, 11, 24),
    raw="2026-11-24T06:00:00Z", source="meta",
)
A3.update(sections=["Politics"], keywords=["elections"], is_accessible_for_free=False, body_truncated_by_paywall=True)
A4 = _article(  # a wire copy of A1 archived by a later run
    "https://news.example.org/world/2026/11/25/climate-summit-deal-methane",
    title="Summit strikes methane deal", authors=["Jane Doe", "Ali Khan"],
    fetched_at=_utc(2026, 11, 25, 6, 2), crawl_id="y", simhash=SIMHASH_A4,
    published_at=_utc(2026, 11, 24, 7, 45), published_date=date(2026, 11, 24),
    raw="Tue, 24 Nov 2026 07:45:00 GMT", source="meta",
)
A4.update(sections=["World"], keywords=["climate"], is_accessible_for_free=False, body_truncated_by_paywall=False,
          sitemap_news_title="Summit strikes methane deal", sitemap_news_published_at=None,
          sitemap_news_published_date=date(2026, 11, 24), sitemap_news_published_at_raw="2026-11-24",
          sitemap_news_publication="Example Org News", sitemap_news_language="en",
          sitemap_news_keywords=["climate"], sitemap_news_genres=["OpEd"], sitemap_news_stock_tickers=[],
          sitemap_news_access="Subscription")
A2_REVISED = {  # a revisit of A2 by the later run found its body changed: version 2 of the same article
    **A2, "version": 2, "body": A2["body"] + "\n\nUpdated: the bank's statement was added.",
    "fetched_at": _utc(2026, 11, 25, 6, 1, 30), "crawl_id": "y",
}
A2_REVISED["word_count"] = len(A2_REVISED["body"].split())
A2_REVISED["content_hash"] = hashlib.sha256(A2_REVISED["body"].encode()).hexdigest()
D1 = {  # a feed link to A2 with tracking parameters, recognised before fetching
    "url": A2["canonical_url"] + "?utm_source=rss&utm_medium=feed",
    "canonical_url": A2["canonical_url"], "domain": "example.com", "kind": "url",
    "duplicate_of_id": A2["article_id"], "duplicate_of_url": A2["canonical_url"],
    "duplicate_of_crawl_id": "x", "distance": None, "title": None, "content_hash": None, "simhash": None,
    "fetched": False, "http_status": None,
    "discovered_via": "feed", "detected_at": _utc(2026, 11, 24, 9, 17), "crawl_id": "x",
}
D2 = {  # a syndicated near copy of A1
    "url": "https://www.example.net/news/climate-summit-ends-with-a-deal-on-methane",
    "canonical_url": "https://www.example.net/news/climate-summit-ends-with-a-deal-on-methane",
    "domain": "example.net", "kind": "near",
    "duplicate_of_id": A1["article_id"], "duplicate_of_url": A1["canonical_url"],
    "duplicate_of_crawl_id": "x",
    "distance": 2, "title": "Climate summit ends with a deal on methane", "content_hash": "ab" * 32,
    "simhash": _signed(SIMHASH_D2), "fetched": True, "http_status": 200,
    "discovered_via": "link", "detected_at": _utc(2026, 11, 24, 9, 20, 11), "crawl_id": "x",
}
R1 = {
    "url": "https://www.example.com/world/", "domain": "example.com", "reason": "not_article",
    "detail": "structured:website(-1) url:listing(-3) score=-4 chars=412", "http_status": 200,
    "discovered_via": "start", "fetched_at": _utc(2026, 11, 24, 9, 14, 58), "crawl_id": "x",
}


def _write(root: Path, key: str, rows: list[dict], schema: pa.Schema) -> tuple[str, PublishedFile]:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")
    return schema.metadata[schemas.DATASET_KEY].decode(), PublishedFile(
        key=key, rows=len(rows), bytes=path.stat().st_size, sha256=file_sha256(path)
    )


@pytest.fixture
def archive(tmp_path, monkeypatch) -> Path:
    """A two-run archive in tmp_path/archive, its tables made from run x's files (version 0) then run y's
    committed (version 1); the working directory is tmp_path."""
    from pipelines.archive import open_tables
    from pipelines.storage import LocalStore
    from pipelines.table import table_file

    root = tmp_path / "archive"
    run_x = [
        _write(root, "articles/dt=2026-11-24/x-00001.parquet", [A1, A2, A3], schemas.ARTICLES),
        _write(root, "duplicates/dt=2026-11-24/x-00001.parquet", [D1, D2], schemas.DUPLICATES),
        _write(root, "rejects/dt=2026-11-24/x-00001.parquet", [R1], schemas.REJECTS),
    ]
    tables = open_tables(LocalStore(root))  # converted in place: version 0 holds run x's files
    run_y = [_write(root, "articles/dt=2026-11-25/y-00001.parquet", [A4, A2_REVISED], schemas.ARTICLES)]
    for dataset, published in run_y:
        entry = table_file(root / published.key, published.key, size=published.bytes, rows=published.rows)
        tables[dataset].commit([entry], app_id="y", version=1)
    (root / "_spool" / "y").mkdir(parents=True)  # staging leftovers must not disturb the queries
    (root / "_spool" / "y" / "stray.parquet.inprogress").write_bytes(b"PAR1")
    runs = [
        ("x", "complete", _utc(2026, 11, 24, 9, 14), _utc(2026, 11, 25, 0, 1), run_x, [],
         {stats.rows("articles"): 3, stats.rows("duplicates"): 2, stats.rows("rejects"): 1,
          stats.duplicate("url"): 1, stats.duplicate("near"): 1, stats.dropped("not_article"): 1}),
        ("y", "failed", _utc(2026, 11, 25, 6, 0), _utc(2026, 11, 25, 6, 3), run_y,
         ["publish duplicates/dt=2026-11-25/y-00001.parquet: PublishError: disk full"],
         {stats.rows("articles"): 2, "response_received_count": 2}),
    ]
    for crawl_id, status, started, finished, files, errors, stat_values in runs:
        manifest = build_manifest(
            crawl_id=crawl_id, status=status, started_at=started, finished_at=finished,
            finish_reason="finished",
            settings={"ARCHIVE_URI": "./archive", "DEDUP_NEAR_DISTANCE": 7, "DOWNLOAD_DELAY": 1.0},
            spider_args={}, stat_values=stat_values, files=files, errors=errors,
        )
        (root / "runs").mkdir(exist_ok=True)
        (root / "runs" / f"{crawl_id}.json").write_bytes(manifest_bytes(manifest))
    monkeypatch.chdir(tmp_path)
    return root


def _pair(a: dict, b: dict, distance: int) -> tuple:
    first, second = sorted((a, b), key=lambda row: row["article_id"])
    return (first["canonical_url"], second["canonical_url"], distance)


#: the first comment line of each DuckDB query -> its expected rows
EXPECTED = {
    "the latest version of each article: a view the queries below use": [],
    "articles per domain per day (of first capture)": [
        ("2026-11-24", "example.com", 2),
        ("2026-11-24", "example.org", 1),
        ("2026-11-25", "example.org", 1),
    ],
    "captures per partition (every version of every article)": [("2026-11-24", 3, 3), ("2026-11-25", 2, 2)],
    "the 10 latest articles": [
        (row["published_at"], row["title"], row["authors"], row["canonical_url"], row["version"])
        for row in (A4, A1, A3, A2_REVISED)
    ],
    "articles per author (one row per element of the authors list)": [("Jane Doe", 3), ("Ali Khan", 2)],
    "duplicates with the article they duplicate": [
        ("url", None, D1["url"], False, A2["canonical_url"], A2["title"], None),
        ("near", 2, D2["url"], True, A1["canonical_url"], A1["title"], 2),
    ],
    "near-duplicate pairs among archived articles (SimHash distance <= 7)": [_pair(A1, A4, 3)],
    "where the raw page of each article is (one ranged read of these bytes is its WARC record)": [
        (A1["canonical_url"], "warc/dt=2026-11-24/x-00001.warc.gz", 375, 3945)],
    "articles per Google News keyword per day (the sitemap's publication date)": [
        (date(2026, 11, 24), "climate", 2), (date(2026, 11, 24), "COP31", 1)],
    "what the Google News sitemap said of each article, and how far its date is from the page's": [
        (A4["canonical_url"], "Summit strikes methane deal", "Example Org News", "en", "2026-11-24", None, ["OpEd"],
         [], "Subscription"),
        (A1["canonical_url"], "Climate summit ends with a deal", "Example News", "en", "2026-11-24T08:40:00+01:00",
         10, [], ["NYSE:XOM"], None)],
    "paywalled articles, and whether the body holds only the free part": [
        ("example.org", 2, 1, (A3["word_count"] + A4["word_count"]) / 2)],
    "articles per section (an article filed under two sections counts in both)": [
        ("World", 2), ("Environment", 1), ("Politics", 1)],
    "the most stated keywords (the page's and the sitemap's, merged)": [
        ("climate", 2), ("COP31", 1), ("Methane", 1), ("elections", 1)],  # (DuckDB orders bytes: capitals first)
    "rejected pages by reason": [("not_article", 1)],
    "the latest run, from its manifest": [
        ("y", "failed", _utc(2026, 11, 25, 6, 0), _utc(2026, 11, 25, 6, 3), 2, 0, 0, 1)
    ],
    "captures of complete runs only": [(3,)],
    "the articles table as it was at version 0 (time travel)": [(3,)],
}


def _duckdb_queries(readme: str) -> dict[str, str]:
    queries = {}
    for block in _sql_blocks(_sections(readme, 2)["Querying with DuckDB"]):
        first = block.splitlines()[0]
        assert first.startswith("-- "), f"a DuckDB query must start with a '-- title' line: {block[:60]!r}"
        queries[first[3:].strip()] = block
    return queries


def test_every_duckdb_query_runs_and_returns_the_expected_rows(readme, archive):
    queries = _duckdb_queries(readme)
    assert set(queries) == set(EXPECTED), "README queries and the expectations here differ"
    connection = duckdb_with_delta()
    for title, sql in queries.items():  # in the README's order: the view first
        result = connection.execute(sql)
        rows = [] if sql.lstrip("- \n").split("\n", 1)[-1].startswith("CREATE") else result.fetchall()
        assert rows == EXPECTED[title], title


def test_duckdb_reads_every_column_with_the_documented_type(archive, type_mapping):
    connection = duckdb_with_delta()
    for dataset, schema in schemas.DATASETS.items():
        described = connection.sql(f"DESCRIBE SELECT * FROM delta_scan('archive/{dataset}')").fetchall()
        types = {name: type_ for name, type_, *_ in described}
        expected = {f.name: type_mapping[ARROW_SPELLING[f.type]]["DuckDB"] for f in schema}
        assert types == {**expected, "dt": "VARCHAR"}, dataset


def test_near_duplicate_distance_matches_the_crawler(archive):
    """DuckDB's bit_count(xor(...)) on the stored signed values equals the crawler's Hamming distance."""
    from pipelines.fingerprints import from_int64, hamming

    sql = "SELECT bit_count(xor(?::BIGINT, ?::BIGINT))"
    value = duckdb.connect().execute(sql, [A1["simhash"], A4["simhash"]]).fetchall()[0][0]
    assert value == hamming(from_int64(A1["simhash"]), from_int64(A4["simhash"])) == 3


def test_every_column_of_the_publishers_statements_has_an_example_query(readme):
    """Schema version 5's columns (what the publisher states) are each used by a DuckDB query of the README."""
    queries = "\n".join(_duckdb_queries(readme).values())
    added = schemas.ARTICLES.names[schemas.ARTICLES.get_field_index("sections"):]
    assert len(added) == 14
    assert [column for column in added if not re.search(rf"\b{column}\b", queries)] == []
