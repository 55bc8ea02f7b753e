"""The tables read back by the readers data engineers use: DuckDB's delta_scan, Polars' scan_delta, pyarrow
through deltalake's dataset, on a folder and on S3 (the moto server)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from conftest import ArchiveTarget, duckdb_with_delta
from pipelines.parquet import record_to_row, rows_to_table
from pipelines.storage import LocalStore, file_sha256
from pipelines.table import DatasetTable, table_file
from records import FETCHED, article
from schemas import ARTICLES


def duckdb_on_s3(s3):
    """DuckDB with delta and httpfs, and a secret for the moto server."""
    return duckdb_with_delta(ArchiveTarget(f"s3://{s3.bucket}", s3.env, s3.table_options(), None))


@pytest.fixture(params=["folder", "s3"])
def table(request, tmp_path):
    """(table URI, deltalake storage options, a DuckDB connection that reads it, the records): two days of
    articles committed to the articles table."""
    if request.param == "folder":
        store = LocalStore(tmp_path / "archive")
        store.check_writable()
        connection = duckdb_with_delta()
    else:
        s3 = request.getfixturevalue("s3")
        from pipelines.s3_store import S3Options, S3Store

        store = S3Store.from_uri(f"s3://{s3.bucket}/news", S3Options(endpoint_url=s3.endpoint, region="us-east-1",
                                                                         addressing_style="path"))
        store.check_writable()
        connection = duckdb_on_s3(s3)
    uri, writer_options = store.table_location("articles")
    options = request.getfixturevalue("s3").table_options() if request.param == "s3" else {}  # a reader's own
    dataset = DatasetTable(uri, "articles", ARTICLES, writer_options)
    dataset.open()
    records = []
    for number, day in enumerate([FETCHED, FETCHED + timedelta(days=1)], start=1):
        rows = [article(10 * number + n, fetched_at=day) for n in range(3)]
        records += rows
        key = f"articles/dt={day:%Y-%m-%d}/run-{number:05d}.parquet"
        local = tmp_path / f"file-{number}.parquet"
        import pyarrow.parquet as pq

        pq.write_table(rows_to_table([record_to_row(r, ARTICLES) for r in rows], ARTICLES), local)
        entry = table_file(local, key, size=local.stat().st_size, rows=len(rows))
        store.publish(local, key, rows=len(rows), sha256=file_sha256(local))
        dataset.commit([entry], app_id="run", version=number)
    return uri, options, connection, records


def expected(records, day=None):
    return sorted((r.canonical_url, r.title) for r in records if day is None or r.fetched_at.date().isoformat() == day)


def test_duckdb_delta_scan_reads_the_table_and_prunes_by_partition(table):
    uri, _, connection, records = table
    rows = connection.sql(f"SELECT canonical_url, title FROM delta_scan('{uri}') ORDER BY 1").fetchall()
    assert rows == expected(records)
    day = (FETCHED + timedelta(days=1)).date().isoformat()
    rows = connection.sql(f"SELECT canonical_url, title FROM delta_scan('{uri}') WHERE dt = '{day}' ORDER BY 1").fetchall()
    assert rows == expected(records, day)


def test_polars_scan_delta_reads_the_table(table):
    uri, options, _, records = table
    frame = pl.scan_delta(uri, storage_options=options or None).select("canonical_url", "title", "dt").collect()
    assert sorted(zip(frame["canonical_url"], frame["title"])) == expected(records)
    assert sorted(set(frame["dt"])) == sorted({r.fetched_at.date().isoformat() for r in records})


def test_pyarrow_dataset_reads_the_table_with_a_filter(table):
    uri, options, _, records = table
    day = FETCHED.date().isoformat()
    dataset = DeltaTable(uri, storage_options=options).to_pyarrow_dataset()
    result = dataset.to_table(columns=["canonical_url", "title"], filter=pc.field("dt") == day)
    assert sorted(zip(result.column("canonical_url").to_pylist(), result.column("title").to_pylist())) == \
        expected(records, day)
