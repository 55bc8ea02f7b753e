"""The archive state core: built from data files, snapshotted, loaded back, looked up."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.fingerprints import from_int64
from pipelines.state import SNAPSHOT_PREFIX, hash_key64, load_state, url_key64
from pipelines.storage import LocalStore
from records import FETCHED, article
from schemas import ARTICLES

NOW = FETCHED + timedelta(hours=1)


def write_articles(store: LocalStore, key: str, records) -> None:
    path = store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([dataclasses.asdict(r) for r in records], schema=ARTICLES), path)


def test_state_from_data_files_then_snapshot_then_delta(tmp_path):
    store = LocalStore(tmp_path / "archive")
    first = [article(n, crawl_id="run1") for n in range(5)]
    write_articles(store, "articles/dt=2026-11-25/run1-00001.parquet", first)
    state, uncovered = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    assert uncovered == 1 and len(state) == 5
    for name, data in state.snapshot_objects().items():
        store.put_bytes(f"{SNAPSHOT_PREFIX}run1/{name}", data)
    second = [article(n, crawl_id="run2") for n in range(5, 8)]
    write_articles(store, "articles/dt=2026-11-26/run2-00001.parquet", second)
    state, uncovered = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    assert uncovered == 1 and len(state) == 8 and len(state.layers) == 2
    assert state.loaded_from["snapshot"] == f"{SNAPSHOT_PREFIX}run1"
    for record in first + second:
        position = state.find_url(url_key64(record.canonical_url))
        assert position is not None
        details = state.details(position)
        assert (details.article_id, details.canonical_url, details.crawl_id) == (
            record.article_id, record.canonical_url, record.crawl_id)
        assert state.details(state.find_hash(hash_key64(record.content_hash))).article_id == record.article_id
        near = state.find_near(from_int64(record.simhash) ^ 0b101)
        assert near is not None and near[1] <= 2
    assert state.find_url(url_key64("https://herald.example/never-seen/")) is None
    assert state.find_hash(hash_key64("0" * 64)) is None


def test_newest_version_wins_and_near_window_is_bounded(tmp_path):
    store = LocalStore(tmp_path / "archive")
    old = article(1, fetched_at=FETCHED - timedelta(days=90), crawl_id="old")
    newer = dataclasses.replace(article(1, body="A changed body of story one, long enough.", crawl_id="new"), version=2)
    write_articles(store, "articles/dt=2026-08-27/old-00001.parquet", [old])
    write_articles(store, "articles/dt=2026-11-25/new-00001.parquet", [newer])
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    assert state.details(state.find_url(url_key64(old.canonical_url))).version == 2
    assert state.near_rows == 1, "only articles fetched in the window are searched for near-duplicates"
    assert state.find_near(from_int64(old.simhash)) is None or state.find_near(from_int64(old.simhash))[1] > 0


def test_empty_archive(tmp_path):
    state, uncovered = load_state(LocalStore(tmp_path / "none"), near_distance=7, near_window_days=30,
                                  now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert len(state) == 0 and uncovered == 0
    assert state.find_url(1) is None and state.find_hash(1) is None and state.find_near(1) is None
