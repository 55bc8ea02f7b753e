"""The commit step: published files committed to Delta tables, read back by the readers users use."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from pipelines.exceptions import SchemaMismatch
from pipelines.parquet import record_to_row, rows_to_table
from pipelines.storage import LocalStore
from pipelines.table import DatasetTable, add_actions, file_stats, table_file, table_schema
from records import FETCHED, article
from schemas import ARTICLES


def write_file(path, records, schema=ARTICLES) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table([record_to_row(r, schema) for r in records], schema), path, row_group_size=2)
    return pq.ParquetFile(path).metadata.num_rows


@pytest.fixture(params=["folder", "s3"])
def location(request, tmp_path):
    """(store, where data files go) on a folder, or in a bucket of the moto server."""
    if request.param == "folder":
        store = LocalStore(tmp_path / "archive")
        store.check_writable()
        return store
    s3 = request.getfixturevalue("s3")
    from pipelines.s3_store import S3Options, S3Store

    store = S3Store.from_uri(f"s3://{s3.bucket}/news", S3Options(endpoint_url=s3.endpoint, region="us-east-1",
                                                                     addressing_style="path"))
    store.check_writable()
    return store


def publish(store, tmp_path, key: str, records) -> "TableFile":  # noqa: F821
    local = tmp_path / "spool" / key.replace("/", "_")
    rows = write_file(local, records)
    table = table_file(local, key, size=local.stat().st_size, rows=rows)
    from pipelines.storage import file_sha256

    store.publish(local, key, rows=rows, sha256=file_sha256(local))
    return table


def test_committed_files_are_what_every_reader_sees_and_a_retried_commit_adds_nothing(location, tmp_path):
    store = location
    uri, options = store.table_location("articles")
    table = DatasetTable(uri, "articles", ARTICLES, options)
    table.open()
    first = publish(store, tmp_path, "articles/dt=2026-11-25/run1-00001.parquet", [article(n) for n in range(3)])
    second = publish(store, tmp_path, "articles/dt=2026-11-26/run1-00002.parquet",
                     [article(n, fetched_at=FETCHED + timedelta(days=1)) for n in range(3, 5)])
    uncommitted = publish(store, tmp_path, "articles/dt=2026-11-26/run1-00003.parquet", [article(9)])
    assert table.commit([first], app_id="run1", version=1) is True
    assert table.commit([second], app_id="run1", version=2) is True
    assert table.commit([second], app_id="run1", version=2) is False, "a retry of commit 2 changes nothing"
    assert table.transaction_version("run1") == 2 and table.transaction_version("run2") == 0
    assert table.paths() == {first.path, second.path}
    delta = DeltaTable(uri, storage_options=options)
    rows = delta.to_pyarrow_table()
    assert sorted(rows.column("canonical_url").to_pylist()) == sorted(article(n).canonical_url for n in range(5))
    assert sorted(set(rows.column("dt").to_pylist())) == ["2026-11-25", "2026-11-26"]
    assert uncommitted.path not in table.paths(), "published, never committed: no reader sees it"
    history = delta.history()
    assert [h.get("news_archive.commit") for h in history[:2]] == [2, 1]
    assert history[0]["news_archive.crawl_id"] == "run1" and history[0]["news_archive.rows"] == 2


def test_statistics_come_from_the_footer_and_skip_exactly(tmp_path):
    path = tmp_path / "f.parquet"
    late = dataclasses.replace(article(2, fetched_at=FETCHED.replace(microsecond=123456)), title=None)
    write_file(path, [article(1), late, article(3)])
    stats = json.loads(file_stats(path))
    assert stats["numRecords"] == 3
    assert stats["minValues"]["fetched_at"] == "2026-11-25T10:30:00.000Z"
    assert stats["maxValues"]["fetched_at"] == "2026-11-25T10:30:00.124Z", "rounded up: still covers .123456"
    assert stats["minValues"]["domain"] == stats["maxValues"]["domain"] == "herald.example"
    assert stats["nullCount"]["modified_at"] == 3
    assert "body" not in stats["minValues"] and "title" not in stats["nullCount"] and "authors" not in stats["nullCount"]


def test_a_nullable_column_added_by_a_new_release_evolves_the_table_once(location, tmp_path):
    store = location
    uri, options = store.table_location("articles")
    older = pa.schema([f for f in ARTICLES if f.name != "redirect_urls"], metadata=ARTICLES.metadata)
    table = DatasetTable(uri, "articles", older, options)
    table.open()
    assert "redirect_urls" not in pa.schema(DeltaTable(uri, storage_options=options).schema().to_arrow()).names
    old_file = tmp_path / "old.parquet"
    rows = [dataclasses.asdict(article(1))]
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in rows[0].items() if k != "redirect_urls"}], schema=older),
                   old_file)
    key = "articles/dt=2026-11-25/old-00001.parquet"
    entry = table_file(old_file, key, size=old_file.stat().st_size, rows=1)
    from pipelines.storage import file_sha256

    store.publish(old_file, key, rows=1, sha256=file_sha256(old_file))
    table.commit([entry], app_id="old", version=1)
    DatasetTable(uri, "articles", ARTICLES, options).open()
    DatasetTable(uri, "articles", ARTICLES, options).open()
    delta = DeltaTable(uri, storage_options=options)
    assert sorted(pa.schema(delta.schema().to_arrow()).names) == sorted(table_schema(ARTICLES).names)
    assert [h["operation"] for h in delta.history()] == ["ADD COLUMN", "WRITE", "CREATE TABLE"], "one schema commit"
    [row] = delta.to_pyarrow_table().to_pylist()
    assert row["redirect_urls"] is None and row["canonical_url"] == article(1).canonical_url, \
        "a file written before the column reads back with a null in it"


@pytest.mark.parametrize("change", ["type", "dropped", "nullability", "not null added"])
def test_any_other_schema_change_is_refused_with_the_reason(tmp_path, change):
    uri = str(tmp_path / "articles")
    DatasetTable(uri, "articles", ARTICLES).open()
    fields = list(ARTICLES)
    at = ARTICLES.get_field_index("word_count")
    if change == "type":
        fields[at] = pa.field("word_count", pa.int64(), nullable=False)
        expected = "column 'word_count' is int32 in the table, int64 in the schema"
    elif change == "dropped":
        del fields[at]
        expected = "column 'word_count' is in the table but not in the dataset's schema"
    elif change == "nullability":
        fields[at] = pa.field("word_count", pa.int32(), nullable=True)
        expected = "column 'word_count' is not null in the table"
    else:
        fields.append(pa.field("reviewer", pa.string(), nullable=False))
        expected = "new column 'reviewer' must be nullable"
    with pytest.raises(SchemaMismatch, match=expected):
        DatasetTable(uri, "articles", pa.schema(fields, metadata=ARTICLES.metadata)).open()


def test_writers_committing_at_once_lose_nothing_and_commit_nothing_twice(location, tmp_path):
    store = location
    uri, options = store.table_location("articles")
    DatasetTable(uri, "articles", ARTICLES, options).open()
    files = {run: [publish(store, tmp_path, f"articles/dt=2026-11-25/{run}-{n:05d}.parquet", [article(100 * i + n)])
                   for n in range(1, 5)] for i, run in enumerate(["run1", "run2", "run3"])}
    errors = []

    def writer(run: str) -> None:
        table = DatasetTable(uri, "articles", ARTICLES, options)
        table.open()
        try:
            for number, published in enumerate(files[run], start=1):
                table.commit([published], app_id=run, version=number)
                table.commit([published], app_id=run, version=number)  # a retry of each
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(run,)) for run in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    delta = DeltaTable(uri, storage_options=options)
    assert delta.version() == 12, "the creation, then 12 commits: none lost, none doubled"
    assert sorted(add_actions(delta).column("path").to_pylist()) == sorted(
        f.path for run in files.values() for f in run)
    assert delta.to_pyarrow_table().num_rows == 12
    for run in files:
        assert delta.transaction_version(run) == 4
