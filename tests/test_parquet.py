"""The Parquet writer and the local store: real files written, published and read back."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.exceptions import BadArchiveURI, PublishError, SchemaMismatch
from pipelines.parquet import BATCH_ROWS, DatasetWriter, check_file_schema, rows_to_table
from pipelines.storage import LocalStore, check_key
from pipelines.stores import store_from_uri
from records import FETCHED, article, duplicate, reject
from schemas import ARTICLES, DUPLICATES, REJECTS


def make_writer(tmp_path, schema=ARTICLES, dataset="articles", **options):
    store = LocalStore(tmp_path / "archive")
    published = []

    def publish(closed):
        published.append(store.publish(closed.path, closed.key, rows=closed.rows, sha256=closed.sha256))

    writer = DatasetWriter(dataset=dataset, schema=schema, spool_dir=tmp_path / "spool", file_prefix="run1",
                           on_closed=publish, **options)
    return writer, store, published


def test_round_trip_keeps_every_field(tmp_path):
    writer, store, published = make_writer(tmp_path)
    records = [article(n) for n in range(5)]
    for record in records:
        writer.write(record, dt="2026-11-25")
    writer.close()
    [file] = published
    assert file.key == "articles/dt=2026-11-25/run1-00001.parquet"
    path = store.root / file.key
    table = pq.read_table(path)
    assert table.schema.equals(ARTICLES, check_metadata=False)
    assert table.to_pylist() == [dataclasses.asdict(r) for r in records]
    assert file.rows == 5 and file.bytes == path.stat().st_size
    assert file.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def row_groups(path) -> list[int]:
    metadata = pq.ParquetFile(path).metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def test_files_roll_by_rows_and_row_groups_by_rows(tmp_path):
    writer, store, published = make_writer(tmp_path, max_file_rows=10, row_group_rows=4)
    for n in range(25):
        writer.write(article(n), dt="2026-11-25")
    assert [f.rows for f in published] == [10, 10]  # a maximum: the third row group of each is cut to fit
    writer.close()
    assert [f.rows for f in published] == [10, 10, 5]
    assert [row_groups(store.root / f.key) for f in published] == [[4, 4, 2], [4, 4, 2], [4, 1]]
    titles = [row["title"] for f in published for row in pq.read_table(store.root / f.key).to_pylist()]
    assert titles == [article(n).title for n in range(25)], "every row once, in order"


def test_max_file_rows_is_a_maximum_whatever_the_row_group_size(tmp_path):
    # a row group larger than the file, and rows converted to Arrow batches long before the row group is full
    writer, store, published = make_writer(tmp_path, max_file_rows=300, row_group_rows=10_000)
    for n in range(BATCH_ROWS * 3):
        writer.write(article(n), dt="2026-11-25")
    writer.close()
    assert [f.rows for f in published] == [300, 300, 168]
    assert [row_groups(store.root / f.key) for f in published] == [[300], [300], [168]]


def test_rows_become_arrow_batches_long_before_a_row_group_is_written(tmp_path):
    # Python strings and dicts take several times their Arrow size: a row group is gathered as Arrow batches
    writer, store, published = make_writer(tmp_path)
    records = [article(n) for n in range(BATCH_ROWS * 2 + 10)]
    for record in records:
        writer.write(record, dt="2026-11-25")
        assert len(writer._rows.get("2026-11-25", [])) < BATCH_ROWS
    assert writer._batch_rows["2026-11-25"] == BATCH_ROWS * 2
    writer.close()
    [file] = published
    metadata = pq.ParquetFile(store.root / file.key).metadata
    assert metadata.num_row_groups == 1 and metadata.num_rows == len(records)
    assert pq.read_table(store.root / file.key).to_pylist() == [dataclasses.asdict(r) for r in records]


def test_only_repeating_columns_are_dictionary_encoded(tmp_path):
    writer, store, published = make_writer(tmp_path)
    for n in range(20):
        writer.write(article(n), dt="2026-11-25")
    writer.close()
    row_group = pq.ParquetFile(store.root / published[0].key).metadata.row_group(0)
    encodings = {row_group.column(i).path_in_schema: row_group.column(i).encodings for i in range(row_group.num_columns)}
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    assert dictionary & set(encodings["domain"]) and dictionary & set(encodings["crawl_id"])
    assert not dictionary & set(encodings["body"]) and not dictionary & set(encodings["article_id"])


def test_files_roll_by_bytes(tmp_path):
    writer, store, published = make_writer(tmp_path, max_file_bytes=20_000, row_group_bytes=5_000)
    for n in range(20):
        writer.write(article(n, body="word " * 400), dt="2026-11-25")
    writer.close()
    # a row is ~2.5 KB of Arrow data: a row group is written at 2 rows (~5 KB), a file rolled after 4 (~20 KB)
    assert [f.rows for f in published] == [8, 8, 4]
    assert [row_groups(store.root / f.key) for f in published] == [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2]]


def test_partitions_by_dt(tmp_path):
    writer, store, published = make_writer(tmp_path)
    writer.write(article(1), dt="2026-11-24")
    writer.write(article(2, fetched_at=FETCHED + timedelta(days=1)), dt="2026-11-25")
    writer.close()
    assert sorted(f.key.split("/")[1] for f in published) == ["dt=2026-11-24", "dt=2026-11-25"]


def test_other_datasets_round_trip(tmp_path):
    for schema, dataset, record in ((DUPLICATES, "duplicates", duplicate(kind="near")), (REJECTS, "rejects", reject())):
        writer, store, published = make_writer(tmp_path / dataset, schema=schema, dataset=dataset)
        writer.write(record, dt="2026-11-25")
        writer.close()
        assert pq.read_table(store.root / published[0].key).to_pylist() == [dataclasses.asdict(record)]


def test_schema_drift_is_refused_at_write_time(tmp_path):
    bad = article(1)
    bad.http_status = "200"  # a type that would be silently cast by readers
    with pytest.raises(SchemaMismatch):
        rows_to_table([dataclasses.asdict(bad)], ARTICLES)
    missing = dataclasses.asdict(article(2))
    missing["body"] = None  # a non-null column
    with pytest.raises(SchemaMismatch):
        rows_to_table([missing], ARTICLES)


@dataclasses.dataclass
class _Narrow:
    url: str


def test_a_record_missing_a_column_or_with_an_extra_field_is_refused(tmp_path):
    writer, store, published = make_writer(tmp_path)
    with pytest.raises(SchemaMismatch, match="lacks a column"):
        writer.write(_Narrow(url="https://herald.example/"), dt="2026-11-25")
    wide = dataclasses.make_dataclass("Wide", [("paywall", bool)], bases=(type(article(1)),), slots=True, kw_only=True)
    extra = wide(**dataclasses.asdict(article(1)), paywall=True)
    with pytest.raises(SchemaMismatch, match="no column for"):  # would otherwise be silently dropped
        writer.write(extra, dt="2026-11-25")
    writer.close()
    assert published == [] and not (tmp_path / "spool").exists()


@pytest.mark.parametrize("change", ["type", "missing", "extra", "nullability"])
def test_a_file_of_another_schema_is_refused(tmp_path, change):
    table = rows_to_table([dataclasses.asdict(article(1))], ARTICLES)
    index = table.schema.get_field_index("http_status")
    if change == "type":
        table = table.set_column(index, pa.field("http_status", pa.string()), pa.array(["200"]))
    elif change == "missing":
        table = table.remove_column(index)
    elif change == "extra":
        table = table.append_column("paywall", pa.array([True]))
    else:
        table = table.cast(pa.schema([f.with_nullable(True) for f in table.schema]))
    path = tmp_path / "other.parquet"
    pq.write_table(table, path)
    with pytest.raises(SchemaMismatch):
        check_file_schema(path, ARTICLES)
    good = tmp_path / "good.parquet"
    pq.write_table(rows_to_table([dataclasses.asdict(article(1))], ARTICLES), good)
    check_file_schema(good, ARTICLES)


def test_a_file_an_older_release_wrote_with_fewer_nullable_columns_is_the_datasets(tmp_path):
    table = rows_to_table([dataclasses.asdict(article(1))], ARTICLES)
    older = table.select(table.column_names[:table.column_names.index("redirect_urls")])
    path = tmp_path / "older.parquet"
    pq.write_table(older, path)
    check_file_schema(path, ARTICLES)  # schema version 1: no redirect_urls, which is nullable
    without_required = older.drop_columns(["extractor_version"])
    pq.write_table(without_required, path)
    with pytest.raises(SchemaMismatch):  # a column that is not null may not be missing
        check_file_schema(path, ARTICLES)


def test_a_bad_row_is_refused_alone_and_counted(tmp_path):
    writer, store, published = make_writer(tmp_path)
    bad = article(2)
    bad.word_count = "many"
    for record in (article(1), bad, article(3)):
        writer.write(record, dt="2026-11-25")
    writer.close()
    assert writer.rejected_rows == 1
    assert [r["title"] for r in pq.read_table(store.root / published[0].key).to_pylist()] == ["Story 1", "Story 3"]


def test_abort_leaves_nothing_under_a_final_name(tmp_path):
    writer, store, published = make_writer(tmp_path, row_group_rows=2)
    for n in range(5):
        writer.write(article(n), dt="2026-11-25")
    writer.abort()
    assert published == []
    assert not list((tmp_path / "spool").rglob("*.parquet"))
    assert not list((tmp_path / "spool").rglob("*.inprogress"))
    assert not (store.root / "articles").exists()


def test_open_file_is_never_visible_in_the_archive(tmp_path):
    writer, store, published = make_writer(tmp_path, row_group_rows=2)
    for n in range(5):
        writer.write(article(n), dt="2026-11-25")
    assert published == []
    assert not (store.root / "articles").exists()
    [open_file] = list((tmp_path / "spool").rglob("*"))[-1:]
    assert open_file.name.endswith(".inprogress")


def test_store_refuses_to_overwrite_and_unsafe_keys(tmp_path):
    store = LocalStore(tmp_path / "archive")
    source = tmp_path / "f.parquet"
    source.write_bytes(b"x")
    digest = hashlib.sha256(b"x").hexdigest()
    store.publish(source, "articles/dt=2026-11-25/a.parquet", rows=1, sha256=digest)
    source.write_bytes(b"x")  # the same file again (a run died after publishing, before cleaning its spool)
    store.publish(source, "articles/dt=2026-11-25/a.parquet", rows=1, sha256=digest)
    assert not source.exists() and (store.root / "articles/dt=2026-11-25/a.parquet").read_bytes() == b"x"
    source.write_bytes(b"y")
    with pytest.raises(PublishError):
        store.publish(source, "articles/dt=2026-11-25/a.parquet", rows=1, sha256=hashlib.sha256(b"y").hexdigest())
    assert source.exists(), "the refused file stays for a person to look at"
    for key in ("../etc/passwd", "articles/../../x", "/abs/path", "a//b", "a/b\x00c", "a/%2e%2e/b"):
        with pytest.raises(PublishError):
            check_key(key)


@pytest.mark.parametrize("uri", ["", "   ", "ftp://host/archive", "s3://", "file://otherhost/archive", "sftp://x/y"])
def test_bad_archive_uris_are_refused(uri):
    with pytest.raises(BadArchiveURI):
        store_from_uri(uri)


def test_folder_and_file_uris(tmp_path):
    assert store_from_uri(str(tmp_path / "a")).root == tmp_path / "a"
    assert store_from_uri((tmp_path / "b").as_uri()).root == tmp_path / "b"


def test_archive_folder_is_created_but_not_a_missing_parent(tmp_path):
    LocalStore(tmp_path / "archive").check_writable()
    assert (tmp_path / "archive").is_dir()
    with pytest.raises(BadArchiveURI, match="does not exist"):
        LocalStore(tmp_path / "not-mounted" / "archive").check_writable()
    assert not (tmp_path / "not-mounted").exists()


def test_unwritable_folder_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BadArchiveURI):
        LocalStore(blocker / "archive").check_writable()
