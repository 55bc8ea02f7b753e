"""The archive in S3: moto's S3 server over HTTP on loopback, and a proxy that injects faults."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections import Counter

import pytest

from conftest import RunningCrawl, crawl_command, crawl_env, run_crawl, wait_until
from newssite import REFERENCE_PATH, START_PATHS
from pipelines.exceptions import BadArchiveURI, PublishError
from pipelines.s3_store import S3Options, S3Store, s3_etag
from s3fakes import Fault, FaultProxy

pytestmark = pytest.mark.slow
needs_corpus = pytest.mark.needs_corpus  #: the tests that crawl the news site (the store's own tests need no corpus)

MIB = 2**20


def read_dataset(s3, prefix: str, dataset: str) -> list[dict]:
    return s3.rows(prefix, dataset)


def manifest(s3, prefix: str) -> dict:
    [key] = s3.keys(f"{prefix}/runs/")
    return json.loads(s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read())


#: columns that differ between two runs by nature
RUN_COLUMNS = {"dt", "crawl_id", "fetched_at", "first_seen_at", "detected_at", "duplicate_of_crawl_id", "source_url",
               "extracted_at",
               # where a run's WARC records are: its own files (tests/test_warc.py reads them back on both)
               "warc_filename", "warc_record_offset", "warc_record_length"}


def comparable(rows: list[dict]) -> list[tuple]:
    return sorted(tuple((k, str(v)) for k, v in sorted(row.items()) if k not in RUN_COLUMNS) for row in rows)


@needs_corpus
def test_crawl_into_s3_gives_the_same_rows_as_into_a_folder(s3, news_site, tmp_path):
    site, _ = news_site
    start = [site.base_url + p for p in START_PATHS]
    one_at_a_time = {"CONCURRENT_REQUESTS": "1", "ARCHIVE_SPOOL_DIR": tmp_path / "spool"}  # the same order both times
    folder = run_crawl(tmp_path / "folder", start, settings=one_at_a_time)
    result = run_crawl(tmp_path / "unused", start, env=s3.env,
                       settings={**one_at_a_time, "ARCHIVE_URI": f"s3://{s3.bucket}/news"})
    assert folder.returncode == 0 and result.returncode == 0, result.stderr[-3000:]
    for dataset in ("articles", "duplicates", "rejects"):
        in_s3, in_folder = comparable(read_dataset(s3, "news", dataset)), comparable(folder.rows(dataset))
        differing = {k for a, b in zip(in_s3, in_folder) for (k, v), (_, w) in zip(a, b) if v != w}
        assert in_s3 == in_folder, (dataset, differing)
    run = manifest(s3, "news")
    assert run["status"] == "complete"
    measured = {"cpu_seconds", "extract_max_in_flight"}  # timings, not outcomes
    assert {k: v for k, v in run["counts"].items() if k not in measured} == {
        k: v for k, v in folder.manifests()[0]["counts"].items() if k not in measured}
    assert sorted(f"news/{f['key']}" for f in run["files"]) == [k for k in s3.data_keys("news/") if not k.startswith(("news/runs/", "news/state/"))]
    for entry in run["files"]:
        head = s3.client.head_object(Bucket=s3.bucket, Key=f"news/{entry['key']}")
        assert head["ContentLength"] == entry["bytes"] and head["Metadata"]["sha256"] == entry["sha256"]
    secret = s3.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in result.stdout + result.stderr + json.dumps(run)
    assert not s3.incomplete_uploads()
    assert not list((tmp_path / "spool").rglob("*.parquet")), "published files leave the spool"


@needs_corpus
def test_read_back_with_pyarrow_s3_filesystem(s3, news_site, tmp_path):
    from pyarrow import dataset as ds
    from pyarrow import fs

    site, _ = news_site
    result = run_crawl(tmp_path / "unused", [site.base_url + REFERENCE_PATH], env=s3.env,
                       settings={"ARCHIVE_URI": f"s3://{s3.bucket}/a", "ARCHIVE_SPOOL_DIR": tmp_path / "spool"})
    assert result.returncode == 0, result.stderr[-3000:]
    filesystem = fs.S3FileSystem(access_key=s3.env["AWS_ACCESS_KEY_ID"], secret_key=s3.env["AWS_SECRET_ACCESS_KEY"],
                                 endpoint_override=s3.endpoint, scheme="http", region="us-east-1")
    table = ds.dataset(f"{s3.bucket}/a/articles", filesystem=filesystem, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == manifest(s3, "a")["counts"]["articles_written"] > 0
    assert "dt" in table.column_names


@needs_corpus
def test_read_back_with_duckdb_httpfs(s3, news_site, tmp_path):
    site, _ = news_site
    result = run_crawl(tmp_path / "unused", [site.base_url + REFERENCE_PATH], env=s3.env,
                       settings={"ARCHIVE_URI": f"s3://{s3.bucket}/d", "ARCHIVE_SPOOL_DIR": tmp_path / "spool"})
    assert result.returncode == 0, result.stderr[-3000:]
    from test_readers import duckdb_on_s3

    con = duckdb_on_s3(s3)
    rows = con.execute(f"SELECT title FROM delta_scan('s3://{s3.bucket}/d/articles')").fetchall()
    assert len(rows) == manifest(s3, "d")["counts"]["articles_written"] > 0


@needs_corpus
def test_retries_recover_from_errors_slow_answers_and_dropped_connections(s3, news_site, tmp_path):
    site, _ = news_site
    proxy = FaultProxy(s3.endpoint, faults=[  # on the data files' uploads (commits to the tables: test_table.py)
        Fault("status", method="PUT", path=r"/articles/dt(=|%3D)", status=503, times=2),
        Fault("status", method="PUT", path=r"/duplicates/dt(=|%3D)", status=500, times=1),
        Fault("slow", method="PUT", path=r"/rejects/dt(=|%3D)", times=1),  # no answer until the 1 s read timeout fires
        Fault("drop", method="PUT", path=r"/runs/", times=1),
        Fault("drop", method="HEAD", path=r"/articles/dt(=|%3D)", times=1),
    ])
    endpoint = proxy.start()
    try:
        result = run_crawl(tmp_path / "unused", [site.base_url + p for p in START_PATHS],
                           env={**s3.env, "AWS_ENDPOINT_URL": endpoint},
                           settings={"ARCHIVE_URI": f"s3://{s3.bucket}/r", "ARCHIVE_SPOOL_DIR": tmp_path / "spool",
                                     "ARCHIVE_S3_READ_TIMEOUT": "1", "ARCHIVE_S3_MAX_ATTEMPTS": "5"})
    finally:
        proxy.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(hits == times for _, hits, times in proxy.hits()), proxy.hits()
    assert proxy.count("PUT", "/articles/", "503") == 2 and proxy.count("PUT", "/duplicates/", "500") == 1
    assert proxy.count("PUT", "/rejects/", "client gave up") == 1
    run = manifest(s3, "r")
    assert run["status"] == "complete" and not run["errors"]
    assert len(read_dataset(s3, "r", "articles")) == run["counts"]["articles_written"] > 0
    assert not s3.incomplete_uploads()


@needs_corpus
def test_outage_loses_no_row_and_the_next_run_uploads_the_spool(s3, news_site, tmp_path):
    site, spec = news_site
    spool = tmp_path / "spool"
    proxy = FaultProxy(s3.endpoint, faults=[Fault("status", method="PUT", status=503, times=None)])
    endpoint = proxy.start()
    settings = {"ARCHIVE_URI": f"s3://{s3.bucket}/o", "ARCHIVE_SPOOL_DIR": spool, "ARCHIVE_S3_MAX_ATTEMPTS": "2"}
    env = {**s3.env, "AWS_ENDPOINT_URL": endpoint}
    try:
        first = run_crawl(tmp_path / "unused", [site.base_url + p for p in START_PATHS], env=env, settings=settings)
        assert first.returncode == 1
        last_line = first.stderr.strip().splitlines()[-1]
        assert last_line.startswith("news-archive: the archive was not fully written") and "next run" in last_line
        assert s3.keys("o/") == [], "nothing reached the store"
        spooled = sorted(p.relative_to(spool).as_posix() for p in spool.rglob("*") if p.is_file() and p.name != ".lock")
        crawl_id = spooled[0].split("/")[0]
        assert any(p.endswith(f"runs/{crawl_id}.json") for p in spooled)
        # a data file per table (articles, duplicates, rejects, warc_files), the WARC file and its index
        assert Counter(p.rsplit(".", 2)[-1] if p.endswith(".warc.gz") else p.rsplit(".", 1)[-1] for p in spooled
                       if not p.endswith(".json")) == {"parquet": 4, "gz": 1, "cdxj": 1}
        spooled_manifest = json.loads((spool / crawl_id / "runs" / f"{crawl_id}.json").read_text())
        assert spooled_manifest["status"] == "failed"
        assert Counter(e["dataset"] for e in spooled_manifest["spooled_files"]) == {
            "articles": 1, "duplicates": 1, "rejects": 1, "warc_files": 1, "warc": 1}
        proxy.clear_faults()  # the store is back
        second = run_crawl(tmp_path / "unused", [site.base_url + "/about/"], env=env, settings=settings)
    finally:
        proxy.stop()
    assert second.returncode == 0, second.stderr[-3000:]
    articles = [r for r in read_dataset(s3, "o", "articles") if r["crawl_id"] == crawl_id]
    assert len(articles) == spooled_manifest["counts"]["articles_written"] == len(spec.articles)
    duplicates = [r for r in read_dataset(s3, "o", "duplicates") if r["crawl_id"] == crawl_id]
    assert len(duplicates) == spooled_manifest["counts"]["duplicates_written"] > 0
    first_run = json.loads(s3.client.get_object(Bucket=s3.bucket, Key=f"o/runs/{crawl_id}.json")["Body"].read())
    assert first_run["recovered_by"] != crawl_id and first_run["spooled_files"] == []
    assert sorted(f["key"] for f in first_run["files"]) == sorted(k.removeprefix("o/") for k in s3.data_keys("o/")
                                                                  if crawl_id in k and not k.startswith("o/runs/"))
    assert not [p for p in spool.rglob("*") if p.is_file()], "the spool is empty again"
    assert not s3.incomplete_uploads()


def make_store(s3, endpoint: str, **options) -> S3Store:
    defaults = dict(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_attempts=2, read_timeout=5)
    return S3Store.from_uri(f"s3://{s3.bucket}/m", S3Options(endpoint_url=endpoint, **{**defaults, **options}))


def random_file(path, size: int):
    path.write_bytes(os.urandom(size))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failed_multipart_upload_is_aborted(s3, tmp_path):
    proxy = FaultProxy(s3.endpoint, faults=[Fault("drop", method="PUT", path=r"partNumber=2", times=None)])
    store = make_store(s3, proxy.start())
    try:
        path = tmp_path / "big.parquet"
        sha256 = random_file(path, 12 * MIB)
        with pytest.raises(PublishError):
            store.publish(path, "articles/dt=2026-11-25/x-00001.parquet", rows=1, sha256=sha256)
    finally:
        proxy.stop()
    assert path.exists(), "the local file is kept for the next try"
    assert proxy.count("POST", r"\?uploads$") == 1, "it was one multipart upload..."
    assert proxy.count("DELETE", r"\?uploadId=", "204") == 1, "...aborted once"
    assert not s3.incomplete_uploads()
    assert s3.keys("m/") == []


def test_leftover_multipart_upload_is_aborted_before_the_retry(s3, tmp_path):
    proxy = FaultProxy(s3.endpoint, faults=[Fault("status", method="PUT", path=r"partNumber=2", status=503, times=None),
                                            Fault("status", method="DELETE", status=503, times=None)])
    endpoint = proxy.start()
    try:
        path = tmp_path / "big.parquet"
        sha256 = random_file(path, 12 * MIB)
        key = "articles/dt=2026-11-25/x-00001.parquet"
        with pytest.raises(PublishError):
            make_store(s3, endpoint).publish(path, key, rows=1, sha256=sha256)
        assert len(s3.incomplete_uploads()) == 1, "the abort itself failed: the upload dangles"
        proxy.clear_faults()
        published = make_store(s3, endpoint).publish(path, key, rows=1, sha256=sha256)
    finally:
        proxy.stop()
    assert not s3.incomplete_uploads()
    assert published.sha256 == sha256 and not path.exists()
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"m/{key}")
    assert head["ETag"].strip('"').endswith("-3")


def test_republishing_the_same_file_makes_no_second_copy(s3, tmp_path):
    s3.client.put_bucket_versioning(Bucket=s3.bucket, VersioningConfiguration={"Status": "Enabled"})
    store = make_store(s3, s3.endpoint)
    key = "articles/dt=2026-11-25/x-00001.parquet"
    path = tmp_path / "f.parquet"
    sha256 = random_file(path, 1000)
    content = path.read_bytes()
    store.publish(path, key, rows=1, sha256=sha256)
    path.write_bytes(content)  # the same file, spooled again after a lost verification
    store.publish(path, key, rows=1, sha256=sha256)
    versions = s3.client.list_object_versions(Bucket=s3.bucket, Prefix=f"m/{key}")["Versions"]
    assert len(versions) == 1


def test_verification_refuses_an_object_that_differs(s3, tmp_path):
    store = make_store(s3, s3.endpoint)
    path = tmp_path / "f.parquet"
    sha256 = random_file(path, 1000)
    store.client.upload_file(str(path), s3.bucket, "m/k.parquet", ExtraArgs={"Metadata": {"sha256": sha256}})
    random_file(path, 1000)  # same size, other bytes
    with pytest.raises(PublishError, match="ETag"):
        store._verify(path, "m/k.parquet", size=1000, sha256=sha256)
    assert s3_etag(path, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB) != store.client.head_object(
        Bucket=s3.bucket, Key="m/k.parquet")["ETag"].strip('"')


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://", "without a bucket"),
        ("s3://no-such-bucket-here/p", "does not exist"),
        ("s3a://bucket/p", "unknown archive scheme"),
        ("s3://Bad_Bucket/p", "invalid S3 bucket name"),
    ],
)
@needs_corpus
def test_bad_s3_uris_are_refused_before_any_fetch(s3, news_site, tmp_path, uri, message):
    site, _ = news_site
    before = sum(site.requests.values())
    result = run_crawl(tmp_path / "unused", [site.base_url + "/"], env=s3.env, settings={"ARCHIVE_URI": uri})
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("news-archive: ") and message in last and "Traceback" not in result.stderr
    assert sum(site.requests.values()) == before


@needs_corpus
def test_missing_credentials_are_refused_before_any_fetch(s3, news_site, tmp_path):
    site, _ = news_site
    env = {k: v for k, v in s3.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = run_crawl(tmp_path / "unused", [site.base_url + "/"], env=env, settings={"ARCHIVE_URI": f"s3://{s3.bucket}/x"})
    assert result.returncode == 2
    assert "no AWS credentials found" in result.stderr.strip().splitlines()[-1]


def test_s3_store_unit_refusals(s3):
    with pytest.raises(BadArchiveURI):
        S3Store.from_uri("s3://key:secret@bucket/p")
    with pytest.raises(BadArchiveURI, match="does not exist"):
        S3Store.from_uri("s3://missing-bucket-x/p", S3Options(endpoint_url=s3.endpoint)).check_writable()


def test_storage_class_and_encryption_settings_reach_the_objects(s3, tmp_path):
    store = make_store(s3, s3.endpoint, storage_class="STANDARD_IA", sse="AES256")
    path = tmp_path / "f.parquet"
    sha256 = random_file(path, 1000)
    store.publish(path, "articles/dt=2026-11-25/x-00001.parquet", rows=3, sha256=sha256)
    head = s3.client.head_object(Bucket=s3.bucket, Key="m/articles/dt=2026-11-25/x-00001.parquet")
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"] == {"sha256": sha256, "rows": "3"}


@needs_corpus
def test_files_are_published_while_the_crawl_runs(s3, news_site, tmp_path):
    site, spec = news_site
    # the crawl cannot end while a page it links everywhere is held back: a file in the bucket before the page is
    # released was published while the crawl ran (the log's order of lines would depend on the machine's speed)
    held_path, release = "/contact/", threading.Event()
    original = site.pages[held_path]
    site.pages[held_path] = dataclasses.replace(original, hold=release)
    command = crawl_command(tmp_path / "unused", [site.base_url + p for p in START_PATHS], settings={
        "ARCHIVE_URI": f"s3://{s3.bucket}/p", "ARCHIVE_SPOOL_DIR": tmp_path / "spool", "ARCHIVE_MAX_FILE_ROWS": "2",
        "ARCHIVE_ROW_GROUP_ROWS": "2", "DOWNLOAD_TIMEOUT": "600"})  # the held page is waited for, not given up
    crawl = RunningCrawl(command, crawl_env(s3.env))
    try:
        wait_until(lambda: s3.data_keys("p/articles/"), "a first articles file in the bucket")
        assert not release.is_set() and crawl.process.poll() is None
        release.set()
        stderr = crawl.finish()
    finally:
        release.set()
        site.pages[held_path] = original
        crawl.kill()
    assert crawl.process.returncode == 0, stderr[-3000:]
    files = [f for f in manifest(s3, "p")["files"] if f["dataset"] == "articles"]
    assert sorted(f"p/{f['key']}" for f in files) == s3.data_keys("p/articles/")
    assert sum(f["rows"] for f in files) == len(spec.articles)
    by_day: dict[str, list[int]] = {}
    for entry in sorted(files, key=lambda f: f["key"]):
        by_day.setdefault(entry["key"].split("/")[1], []).append(entry["rows"])
    for rows in by_day.values():  # rolled at ARCHIVE_MAX_FILE_ROWS: every file of a day full, the last the rest
        assert rows == [2] * (sum(rows) // 2) + [1] * (sum(rows) % 2), rows


@needs_corpus
def test_second_run_into_s3_knows_the_first(s3, news_site, tmp_path):
    site, _ = news_site
    settings = {"ARCHIVE_URI": f"s3://{s3.bucket}/st", "ARCHIVE_STATE_SNAPSHOT_FILES": "1"}
    runs = []
    for number in (1, 2):  # two containers: nothing but the bucket in common
        runs.append(run_crawl(tmp_path / "unused", [site.base_url + p for p in START_PATHS],
                              env={**s3.env, "XDG_CACHE_HOME": str(tmp_path / f"cache{number}")}, settings=settings))
        assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]
    assert [k for k in s3.keys("st/state/snapshots/") if k.endswith("manifest.json")]
    manifests = sorted((json.loads(s3.client.get_object(Bucket=s3.bucket, Key=k)["Body"].read())
                        for k in s3.keys("st/runs/")), key=lambda m: m["crawl_id"])
    first, second = (m["counts"] for m in manifests)
    assert second["state_rows_loaded"] == first["articles_written"] > 0
    assert second["articles_written"] == 0 and second["skipped_known"] > 0
