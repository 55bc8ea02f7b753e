"""Compaction: 40 short runs' small files rewritten into a few, rows unchanged, the old version still readable,
and a crawl committing meanwhile loses nothing."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from conftest import RunningCrawl, crawl_command, crawl_env, read_delta, wait_until
from crawler.cli import main as news_archive
from crawler.localsite import LocalSite, Page
from pipelines.archive import ArchivePipeline
from pipelines.storage import LocalStore
from records import Stats, article, duplicate, reject

pytestmark = pytest.mark.slow

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DAYS = [NOW - timedelta(days=3), NOW - timedelta(days=2)]


def short_run(store, number: int, spool) -> None:
    """One scheduled run, as the archive step sees it: a few articles, a duplicate and a reject on each of two
    past days, committed to the tables."""
    crawl_id = f"{(NOW - timedelta(minutes=15 * (40 - number))):%Y%m%dT%H%M%SZ}-{number:06x}"
    pipeline = ArchivePipeline(store=store, crawl_id=crawl_id, spool_root=spool, settings_record={},
                               writer_options={"max_file_rows": 100}, upload_threads=1, stats_collector=Stats(),
                               snapshot_files=12)  # as a crawl does at 200: start-up reads stay bounded
    pipeline.open_files()
    pipeline._state_loaded(pipeline._prepare())
    for day in DAYS:
        for n in range(2):
            pipeline.process_item(article(1000 * number + 10 * day.day + n, fetched_at=day, crawl_id=crawl_id))
        pipeline.process_item(dataclasses.replace(duplicate(number), detected_at=day, crawl_id=crawl_id))
        pipeline.process_item(dataclasses.replace(reject(number), fetched_at=day, crawl_id=crawl_id))
    pipeline.close_files()
    pipeline.executor.shutdown(wait=True)
    pipeline.finish("finished")
    assert not pipeline.errors, pipeline.errors


def comparable(table: pa.Table) -> list[tuple]:
    """Every column of every row, in a stable order."""
    rows = [tuple((name, json.dumps(value, default=str)) for name, value in sorted(row.items())) for row in table.to_pylist()]
    return sorted(rows)


@pytest.fixture(params=["folder", "s3"])
def archive(request, tmp_path):
    """(ARCHIVE_URI, store, deltalake storage options, env for a subprocess) on a folder or in a moto bucket."""
    if request.param == "folder":
        store = LocalStore(tmp_path / "archive")
        store.check_writable()
        return str(tmp_path / "archive"), store, {}, {}
    s3 = request.getfixturevalue("s3")
    from pipelines.s3_store import S3Options, S3Store

    uri = f"s3://{s3.bucket}/news"
    store = S3Store.from_uri(uri, S3Options(endpoint_url=s3.endpoint, region="us-east-1"))
    store.check_writable()
    return uri, store, s3.table_options(), s3.env


def table_uri(uri: str, dataset: str) -> str:
    return f"{uri}/{dataset}"


def test_forty_runs_then_compaction_keep_every_row_in_a_few_files_and_the_old_version(archive, tmp_path, capsys):
    uri, store, options, env = archive
    for number in range(1, 41):
        short_run(store, number, tmp_path / "spool")
    before = {}
    for dataset in ("articles", "duplicates", "rejects"):
        delta = DeltaTable(table_uri(uri, dataset), storage_options=options)
        files = Counter(pa.table(delta.get_add_actions(flatten=True)).column("partition.dt").to_pylist())
        assert files == {day.strftime("%Y-%m-%d"): 40 for day in DAYS}, "one file per run and day"
        before[dataset] = (delta.version(), comparable(delta.to_pyarrow_table()), sum(files.values()))
    code = _cli(["compact", uri], env)
    assert code == 0
    out = capsys.readouterr().out
    print(out)
    assert "compacted 6 partition(s)" in out
    for dataset, (version, rows, file_count) in before.items():
        delta = DeltaTable(table_uri(uri, dataset), storage_options=options)
        assert comparable(delta.to_pyarrow_table()) == rows, f"{dataset}: the same rows, every column"
        files = Counter(pa.table(delta.get_add_actions(flatten=True)).column("partition.dt").to_pylist())
        assert files == {day.strftime("%Y-%m-%d"): 1 for day in DAYS}, f"{dataset}: {file_count} files became {files}"
        assert delta.version() == version + 2, "one commit per partition"
        assert [h["operation"] for h in delta.history(2)] == ["OPTIMIZE", "OPTIMIZE"]
        old = DeltaTable(table_uri(uri, dataset), version=version, storage_options=options)
        assert comparable(old.to_pyarrow_table()) == rows, "the version before compaction is still readable"
    assert f"{len(before)} file" not in out
    code = _cli(["compact", uri], env)  # nothing left to compact
    assert code == 0 and "compacted 0 partition(s)" in capsys.readouterr().out


def _cli(argv: list[str], env: dict) -> int:
    """``news-archive`` in this process, with the environment a user would give it."""
    import os

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return news_archive(argv)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_glob_reader_sees_old_and_new_files_after_compaction_until_vacuum(tmp_path):
    """Why readers must read the table: until vacuum, a Parquet glob reads compacted rows twice."""
    import duckdb

    uri = str(tmp_path / "archive")
    store = LocalStore(tmp_path / "archive")
    store.check_writable()
    for number in range(1, 5):
        short_run(store, number, tmp_path / "spool")
    rows = DeltaTable(f"{uri}/articles").to_pyarrow_table().num_rows
    assert _cli(["compact", uri, "--no-vacuum"], {}) == 0
    glob = duckdb.sql(f"SELECT count(*) FROM read_parquet('{uri}/articles/dt=*/*.parquet')").fetchone()[0]
    assert glob == 2 * rows and DeltaTable(f"{uri}/articles").to_pyarrow_table().num_rows == rows
    assert _cli(["compact", uri, "--retain-hours", "0"], {}) == 0
    glob = duckdb.sql(f"SELECT count(*) FROM read_parquet('{uri}/articles/dt=*/*.parquet')").fetchone()[0]
    assert glob == rows, "after vacuum only the table's files are left"


def test_vacuum_removes_a_published_file_never_committed_once_older_than_the_retention(tmp_path):
    """A run killed between publish and commit leaves a file no table version names: no reader sees it, and
    vacuum deletes it once it is older than ARCHIVE_VACUUM_RETAIN_HOURS (and not before)."""
    import os
    import time

    uri = str(tmp_path / "archive")
    store = LocalStore(tmp_path / "archive")
    store.check_writable()
    short_run(store, 1, tmp_path / "spool")
    rows = DeltaTable(f"{uri}/articles").to_pyarrow_table().num_rows
    orphan = tmp_path / "archive" / "articles" / f"dt={DAYS[0]:%Y-%m-%d}" / "20261101T000000Z-dead00-00001.parquet"
    committed = next((tmp_path / "archive" / "articles").glob("dt=*/*.parquet"))
    orphan.write_bytes(committed.read_bytes())  # published, the run killed before its commit
    assert DeltaTable(f"{uri}/articles").to_pyarrow_table().num_rows == rows, "no reader sees it"
    assert _cli(["compact", uri, "--retain-hours", "1"], {}) == 0
    assert orphan.exists(), "younger than the retention: kept (its run may still be about to commit it)"
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    assert _cli(["compact", uri, "--retain-hours", "1"], {}) == 0
    assert not orphan.exists()
    assert committed.exists() and DeltaTable(f"{uri}/articles").to_pyarrow_table().num_rows == rows


def test_a_crawl_committing_while_its_partition_is_compacted_loses_nothing(archive, tmp_path, capsys):
    uri, store, options, env = archive
    site = LocalSite()
    site.start()
    held = threading.Event()
    stories = {f"/2026/11/{n:02d}/story-{n}/": Page(body=_story(n)) for n in range(1, 9)}
    site.pages.update(stories)
    last = f"/2026/11/08/story-8/"
    site.pages[last] = dataclasses.replace(site.pages[last], hold=held)
    links = "".join(f'<a href="{path}">story</a>' for path in stories)
    site.pages["/"] = Page(body=f"<html><body><h1>News</h1>{links}</body></html>".encode())
    command = crawl_command(tmp_path / "unused", [site.base_url + "/"],
                            settings={"ARCHIVE_URI": uri, "ARCHIVE_MAX_FILE_ROWS": "1", "EXTRACT_WORKERS": "0",
                                      "ARCHIVE_SPOOL_DIR": str(tmp_path / "crawl-spool")})
    crawl = RunningCrawl(command, crawl_env({**env, "XDG_CACHE_HOME": str(tmp_path / "cache")}))
    try:
        # some of the crawl's files are committed to today's partition (seen on the table itself)...
        wait_until(lambda: _committed(f"{uri}/articles", options) >= 4, "four articles files committed")
        # ...when compaction of every partition, today's included, commits over them
        assert _cli(["compact", uri, "--closed-after-days", "-1", "--no-vacuum"], env) == 0
        assert "articles dt=" in capsys.readouterr().out
        held.set()  # the crawl goes on and commits its last files after the compaction's commit
        stderr = crawl.finish()
    finally:
        held.set()
        crawl.kill()
        site.stop()
    assert crawl.process.returncode == 0, stderr[-3000:]
    rows = read_delta(f"{uri}/articles", options).to_pylist()
    assert sorted(row["url"].split("/", 3)[3] for row in rows) == sorted(path[1:] for path in stories), stderr[-6000:]
    history = DeltaTable(f"{uri}/articles", storage_options=options).history()
    operations = [h["operation"] for h in reversed(history)]
    assert "OPTIMIZE" in operations and operations.index("OPTIMIZE") < len(operations) - 1, \
        "the crawl committed after the compaction"


VOCABULARY = [a + b + c for a in ("har", "bou", "fer", "tim", "isl", "cou", "vot", "mar", "win", "sto")
              for b in ("ra", "le", "mi", "no", "tu", "ve", "so", "ka") for c in ("n", "st", "r", "ld", "m", "ck")]


def _committed(uri: str, options: dict) -> int:
    try:
        return len(DeltaTable(uri, storage_options=options).file_uris())
    except Exception:  # noqa: BLE001 (no table yet)
        return 0


def _story(n: int) -> bytes:
    """An article page of its own words (stories far apart by SimHash)."""
    import random

    words = random.Random(n).sample(VOCABULARY, 200)
    paragraphs = [" ".join(words[i:i + 40]).capitalize() + "." for i in range(0, 200, 40)]
    return (f'<html><head><title>Story {n}</title><meta property="og:type" content="article">'
            f'<meta property="article:published_time" content="2026-11-{n:02d}T08:00:00Z"></head><body><article>'
            f"<h1>Harbour story number {n}</h1>" + "".join(f"<p>{p}</p>" for p in paragraphs)
            + "</article></body></html>").encode()
