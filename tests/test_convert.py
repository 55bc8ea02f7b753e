"""An archive written by the release before the Delta tables (plain Hive-partitioned Parquet) is converted in place:
every data file committed as its table's first version, no row lost, whichever reader reads it.

The fixture, ``tests/data/archive-before-delta/``, was written by the old code itself (its README says how): three
runs of the offline demo, the first by the last release of schema version 1, the others by the release before the
tables (schema version 2), each on its own day.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from conftest import run_crawl
from crawler.localsite import LocalSite
from pipelines.archive import open_tables
from pipelines.storage import LocalStore
from pipelines.table import PARTITION, add_actions, table_schema
from schemas import DATASETS

#: the datasets of the release before the tables (warc_files came later: its table is created, empty)
LEGACY = ("articles", "duplicates", "rejects")

FIXTURE = Path(__file__).parent / "data" / "archive-before-delta"


# --- the truth: the fixture's files read with pyarrow, before any conversion -----------------------------------


def fixture_files(archive: Path, dataset: str) -> list[str]:
    """Paths of the dataset's data files, relative to its folder (``dt=YYYY-MM-DD/<name>.parquet``)."""
    return sorted(path.relative_to(archive / dataset).as_posix() for path in (archive / dataset).glob("dt=*/*.parquet"))


def file_rows(archive: Path, dataset: str) -> list[dict]:
    """Every row of every data file of ``dataset``, read straight from the Parquet files: the columns the file has,
    null for the columns its (older) schema lacks, and ``dt`` from the file's folder."""
    columns = table_schema(DATASETS[dataset]).names
    rows = []
    for path in fixture_files(archive, dataset):
        table = pq.ParquetFile(archive / dataset / path).read()
        assert set(table.column_names) <= set(columns), f"{path} has columns the dataset does not know"
        day = path.split("/", 1)[0].removeprefix(f"{PARTITION}=")
        rows += [{**dict.fromkeys(columns), **row, PARTITION: day} for row in table.to_pylist()]
    return rows


def normalized(rows: list[dict]) -> list[dict]:
    """Rows in one order, timestamps in UTC (readers differ only in the time zone they attach to an instant)."""
    def utc(value):
        return value.astimezone(timezone.utc) if isinstance(value, datetime) else value

    rows = [{name: utc(value) for name, value in row.items()} for row in rows]
    return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True, default=str))


@pytest.fixture(scope="module")
def truth() -> dict[str, dict]:
    """Per dataset: the fixture's files, their row counts (from the footers) and every row."""
    found = {}
    for dataset in LEGACY:
        files = fixture_files(FIXTURE, dataset)
        found[dataset] = {
            "files": files,
            "counts": {path: pq.ParquetFile(FIXTURE / dataset / path).metadata.num_rows for path in files},
            "rows": normalized(file_rows(FIXTURE, dataset)),
        }
    return found


def copy_fixture(target: Path) -> Path:
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("README.md"))
    return target


def test_the_fixture_is_an_archive_of_the_release_before_the_tables(truth):
    """What the other tests rely on: plain Parquet and no table, files of two schema versions, several days."""
    assert not list(FIXTURE.rglob("_delta_log"))
    for dataset, found in truth.items():
        versions = {pq.read_schema(FIXTURE / dataset / path).metadata[b"news_archive.schema_version"]
                    for path in found["files"]}
        assert versions == {b"1", b"2"}, dataset
        assert len({path.split("/")[0] for path in found["files"]}) == 3, dataset
        assert len(found["rows"]) == sum(found["counts"].values()) > 0
    assert len(truth["articles"]["rows"]) == 8


# --- the readers --------------------------------------------------------------------------------------------------


def deltalake_rows(uri: str, storage_options: dict | None = None) -> list[dict]:
    return normalized(DeltaTable(uri, storage_options=storage_options).to_pyarrow_table().to_pylist())


def duckdb_rows(uri: str) -> list[dict]:
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    try:  # the extension from PyPI (duckdb-extension-delta, a dependency): DuckDB cannot download it here
        import duckdb_extension_delta

        extension = (Path(duckdb_extension_delta.__file__).parent / "extensions" / f"v{duckdb.__version__}"
                     / "delta.duckdb_extension")
        con.execute(f"LOAD '{extension}'")
    except (ImportError, duckdb.Error) as exc:
        pytest.skip(f"DuckDB's delta extension for DuckDB {duckdb.__version__} is not installed: {exc}")
    con.execute("SET TimeZone = 'UTC'")
    return normalized(con.execute("SELECT * FROM delta_scan(?)", [uri]).to_arrow_table().to_pylist())


def polars_rows(uri: str) -> list[dict]:
    polars = pytest.importorskip("polars")
    return normalized(polars.scan_delta(uri).collect().to_arrow().to_pylist())


def assert_converted(table: DeltaTable, dataset: str, found: dict) -> None:
    """Version 0, a conversion, holding exactly the fixture's files (rows per file as their footers say)."""
    assert table.version() == 0, dataset
    [commit] = table.history()
    assert commit["news_archive.operation"] == "convert", commit
    assert commit["news_archive.files"] == len(found["files"])
    actions = add_actions(table)
    assert sorted(actions.column("path").to_pylist()) == found["files"], dataset
    counts = dict(zip(actions.column("path").to_pylist(), actions.column("num_records").to_pylist()))
    assert counts == found["counts"]
    days = dict(zip(actions.column("path").to_pylist(), actions.column(f"partition.{PARTITION}").to_pylist()))
    assert days == {path: path.split("/")[0].removeprefix(f"{PARTITION}=") for path in found["files"]}
    assert pa.schema(table.schema().to_arrow()).names == table_schema(DATASETS[dataset]).names


# --- conversion on a folder -------------------------------------------------------------------------------------


def test_opening_an_old_archive_converts_it_in_place_and_every_reader_sees_every_row(tmp_path, truth):
    archive = copy_fixture(tmp_path / "archive")
    tables = open_tables(LocalStore(archive))
    assert set(tables) == set(DATASETS)
    for dataset, found in truth.items():
        uri = str(archive / dataset)
        assert_converted(DeltaTable(uri), dataset, found)
        assert fixture_files(archive, dataset) == found["files"]  # converted in place: nothing moved or rewritten
        assert deltalake_rows(uri) == found["rows"], f"deltalake: {dataset}"
        assert duckdb_rows(uri) == found["rows"], f"DuckDB delta_scan: {dataset}"
        assert polars_rows(uri) == found["rows"], f"Polars scan_delta: {dataset}"
    [created] = DeltaTable(str(archive / "warc_files")).history()  # a dataset the old release did not have
    assert created["news_archive.operation"] == "create" and deltalake_rows(str(archive / "warc_files")) == []

    log_before = {dataset: sorted(p.name for p in (archive / dataset / "_delta_log").iterdir()) for dataset in DATASETS}
    again = open_tables(LocalStore(archive))  # opened again (the next run): nothing to convert, nothing committed
    for dataset, found in truth.items():
        assert again[dataset].delta().version() == 0
        assert sorted(p.name for p in (archive / dataset / "_delta_log").iterdir()) == log_before[dataset]
        assert deltalake_rows(str(archive / dataset)) == found["rows"]


def test_convert_command_converts_an_old_archive(tmp_path, truth, monkeypatch, capsys):
    from crawler.cli import main

    monkeypatch.setenv("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    archive = copy_fixture(tmp_path / "archive")
    assert main(["convert", str(archive)]) == 0
    out = capsys.readouterr().out
    for dataset, found in truth.items():
        assert f"{dataset}: table version 0, {len(found['files'])} files" in out
        assert_converted(DeltaTable(str(archive / dataset)), dataset, found)
        assert deltalake_rows(str(archive / dataset)) == found["rows"]
    assert main(["convert", str(archive)]) == 0  # a second time: nothing changes
    for dataset in DATASETS:
        assert DeltaTable(str(archive / dataset)).version() == 0


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_convert_command_refuses_an_archive_whose_dataset_is_a_file(tmp_path, monkeypatch, capsys, dataset):
    """Exit 2, one line, and nothing converted: not even the datasets before it."""
    from crawler.cli import main

    monkeypatch.setenv("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    archive = copy_fixture(tmp_path / "archive")
    shutil.rmtree(archive / dataset, ignore_errors=True)  # (no warc_files in the fixture)
    (archive / dataset).write_bytes(b"not a folder")
    assert main(["convert", str(archive)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"news-archive: the {dataset} table at "), captured.err
    assert (archive / dataset).read_bytes() == b"not a folder"
    assert not list(archive.rglob("_delta_log"))


def test_convert_refuses_an_old_file_of_another_schema_before_committing_anything(tmp_path, monkeypatch, capsys):
    """A data file whose columns are not the dataset's (nor an older version of them): exit 2, one line naming
    it, and no table made, so no reader ever meets a file it cannot read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crawler.cli import main

    monkeypatch.setenv("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    archive = copy_fixture(tmp_path / "archive")
    odd = sorted((archive / "rejects").glob("dt=*/*.parquet"))[-1]
    table = pq.read_table(odd)
    pq.write_table(table.set_column(table.schema.get_field_index("http_status"), "http_status",
                                    table.column("http_status").cast(pa.string())), odd)
    assert main(["convert", str(archive)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "does not have the dataset's schema" in lines[0] and odd.name in lines[0], lines
    assert not list(archive.rglob("_delta_log"))


# --- a crawl into the converted archive ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_crawl_into_a_converted_archive_archives_nothing_twice(tmp_path, truth):
    """The current demo site is the one the fixture's runs crawled, minus the two articles added for those runs,
    served on another port: its six articles are fetched again under other URLs and must all be recognised, from
    the state read from the converted tables, as duplicates of what the fixture holds. The near-duplicate window
    reaches back to the fixture's days (late November 2026) whenever the test runs: the wire copy is a near
    duplicate."""
    from crawler.demo import build_site

    archive = copy_fixture(tmp_path / "archive")
    open_tables(LocalStore(archive))
    fixture_urls = {row["canonical_url"] for row in truth["articles"]["rows"]}
    site = LocalSite()
    base = site.start()
    try:
        demo = build_site(base)
        site.pages.update(demo.pages)
        result = run_crawl(archive, [base + "/", base + "/feed/", base + "/robots.txt"],
                           settings={"DEDUP_NEAR_WINDOW_DAYS": "36500"})
    finally:
        site.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    fixture_runs = {path.stem for path in (FIXTURE / "runs").glob("*.json")}
    [manifest] = [m for m in result.manifests() if m["crawl_id"] not in fixture_runs]
    assert manifest["status"] == "complete"
    assert manifest["counts"]["state_rows_loaded"] == len(truth["articles"]["rows"])
    assert manifest["counts"]["new_articles"] == 0

    # the fixture's rows, and no new article: the articles table did not even get a commit
    assert DeltaTable(str(archive / "articles")).version() == 0
    assert len(result.rows("articles")) == len(truth["articles"]["rows"]) + manifest["counts"]["new_articles"]
    assert normalized(result.rows("articles")) == truth["articles"]["rows"]
    duplicates = result.rows("duplicates")
    new = [row for row in duplicates if row["crawl_id"] == manifest["crawl_id"]]
    old = [row for row in duplicates if row["crawl_id"] != manifest["crawl_id"]]
    assert normalized(old) == truth["duplicates"]["rows"]
    fetched_articles = {row["url"].split("?")[0] for row in new if row["fetched"]}
    assert {base + article.path for article in demo.articles} <= fetched_articles
    assert {row["duplicate_of_url"] for row in new} <= fixture_urls
    assert {row["kind"] for row in new if row["fetched"]} <= {"exact", "near"}
    assert sum(manifest["counts"]["duplicates_of_earlier_runs"].values()) == len([row for row in new if row["fetched"]])


# --- conversion on S3 ---------------------------------------------------------------------------------------------


def test_an_old_archive_on_s3_is_converted_in_place(s3, truth):
    from pipelines.s3_store import S3Options, S3Store

    for path in sorted(FIXTURE.rglob("*")):
        if path.is_file() and path.name != "README.md":
            s3.client.upload_file(str(path), s3.bucket, f"prefix/{path.relative_to(FIXTURE).as_posix()}")
    data_keys = s3.data_keys("prefix/")
    store = S3Store.from_uri(f"s3://{s3.bucket}/prefix", S3Options(endpoint_url=s3.endpoint, region="us-east-1"))
    open_tables(store)
    for dataset, found in truth.items():
        uri = f"s3://{s3.bucket}/prefix/{dataset}"
        assert_converted(DeltaTable(uri, storage_options=s3.table_options()), dataset, found)
        assert deltalake_rows(uri, s3.table_options()) == found["rows"], dataset
    assert s3.data_keys("prefix/") == data_keys  # in place: no data object written, moved or removed
    open_tables(store)
    for dataset in DATASETS:
        assert DeltaTable(f"s3://{s3.bucket}/prefix/{dataset}", storage_options=s3.table_options()).version() == 0
