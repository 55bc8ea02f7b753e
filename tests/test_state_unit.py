"""The archive state core: built from data files, snapshotted, loaded back, looked up."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.extract import page_canonical_url
from pipelines.fingerprints import canonicalize_url, from_int64
from pipelines.pagemeta import PageMeta
from pipelines.state import (ALIAS_ARRAYS, ARTICLE_ARRAYS, DISCOVERY_PREFIX, FAILURE_ARRAYS, SNAPSHOT_PREFIX,
                             aliases_of, backoff_days, discovery_bytes, hash_key64, lastmod_instant, load_discovery,
                             load_state, state_url_key)
from pipelines.storage import LocalStore
from records import FETCHED, article, duplicate, reject
from schemas import ARTICLES, DUPLICATES, REJECTS

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
        position = state.find_url(state_url_key(record.canonical_url))
        assert position is not None
        details = state.details(position)
        assert (details.article_id, details.canonical_url, details.crawl_id) == (
            record.article_id, record.canonical_url, record.crawl_id)
        assert state.details(state.find_hash(hash_key64(record.content_hash))).article_id == record.article_id
        near = state.find_near(from_int64(record.simhash) ^ 0b101)
        assert near is not None and near[1] <= 2
    assert state.find_url(state_url_key("https://herald.example/never-seen/")) is None
    assert state.find_hash(hash_key64("0" * 64)) is None


def test_newest_version_wins_and_near_window_is_bounded(tmp_path):
    store = LocalStore(tmp_path / "archive")
    old = article(1, fetched_at=FETCHED - timedelta(days=90), crawl_id="old")
    newer = dataclasses.replace(article(1, body="A changed body of story one, long enough.", crawl_id="new"), version=2)
    write_articles(store, "articles/dt=2026-08-27/old-00001.parquet", [old])
    write_articles(store, "articles/dt=2026-11-25/new-00001.parquet", [newer])
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    assert state.details(state.find_url(state_url_key(old.canonical_url))).version == 2
    assert state.near_rows == 1, "only articles fetched in the window are searched for near-duplicates"
    assert state.find_near(from_int64(old.simhash)) is None, "the old row is out of the window (22 bits from the new)"
    position, distance = state.find_near(from_int64(newer.simhash))
    assert distance == 0 and state.details(position).version == 2


def test_empty_archive(tmp_path):
    state, uncovered = load_state(LocalStore(tmp_path / "none"), near_distance=7, near_window_days=30,
                                  now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert len(state) == 0 and uncovered == 0
    assert state.find_url(1) is None and state.find_hash(1) is None and state.find_near(1) is None


# --- aliases, failures and their snapshot ----------------------------------------------------------------------

def write_rows(store: LocalStore, key: str, records, schema) -> None:
    path = store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([dataclasses.asdict(r) for r in records], schema=schema), path,
                   row_group_size=2)


def alias_archive(tmp_path) -> tuple[LocalStore, list]:
    """An archive whose rows name an article under other URLs: a redirect chain, an AMP variant that declared it
    canonical, a link recognised before fetching, a redirect recognised at the hop, and a syndicated copy."""
    store = LocalStore(tmp_path / "archive")
    redirected = dataclasses.replace(article(1), redirect_urls=["https://herald.example/p/1",
                                                                "http://herald.example/2026/11/25/story-1"])
    variant = dataclasses.replace(article(2), url="https://herald.example/2026/11/25/story-2/amp/")
    plain = article(3)
    write_rows(store, "articles/dt=2026-11-25/run1-00001.parquet", [redirected, variant, plain], ARTICLES)
    linked = dataclasses.replace(duplicate(3, kind="url"), url="https://herald.example/2026/11/25/story-3/?amp=1",
                                 canonical_url="https://herald.example/2026/11/25/story-3/?amp=1", fetched=False,
                                 content_hash=None, simhash=None, title=None)
    hop = dataclasses.replace(duplicate(3, kind="url"), url="https://herald.example/p/3",
                              canonical_url=plain.canonical_url, fetched=False, content_hash=None, simhash=None,
                              redirect_urls=["https://herald.example/p/3", "https://herald.example/s/3"])
    copy = duplicate(1, kind="near")
    write_rows(store, "duplicates/dt=2026-11-25/run1-00001.parquet", [linked, hop, copy], DUPLICATES)
    return store, [redirected, variant, plain]


def assert_alias_answers(state, rows) -> None:
    redirected, variant, plain = rows
    for url, target in [("https://herald.example/p/1", redirected), ("http://herald.example/2026/11/25/story-1", redirected),
                        ("https://herald.example/2026/11/25/story-2/amp/", variant),
                        ("https://herald.example/2026/11/25/story-3/?amp=1", plain),
                        ("https://herald.example/p/3", plain), ("https://herald.example/s/3", plain)]:
        known = state.known(canonicalize_url(url))
        assert known is not None and known.kind == "alias", url
        assert state.details(known.position).canonical_url == target.canonical_url, url
    for row in rows:
        assert state.known(row.canonical_url).kind == "article"
    copy = state.known("https://herald.example/copy/1/")
    assert copy.kind == "duplicate" and state.details(copy.position).canonical_url == redirected.canonical_url
    assert state.known("https://herald.example/p/4") is None
    assert state.known("https://herald.example/2026/11/25/story-4/") is None


def test_every_url_that_led_to_an_article_is_known_as_its_alias(tmp_path):
    store, rows = alias_archive(tmp_path)
    state, uncovered = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    assert uncovered == 2 and state.alias_count == 7
    assert_alias_answers(state, rows)


def test_aliases_and_failures_survive_a_snapshot_and_later_files_add_to_them(tmp_path):
    store, rows = alias_archive(tmp_path)
    write_rows(store, "rejects/dt=2026-11-25/run1-00001.parquet", [gone("https://herald.example/tag/old/")], REJECTS)
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    for name, data in state.snapshot_objects().items():
        store.put_bytes(f"{SNAPSHOT_PREFIX}run1/{name}", data)
    write_rows(store, "rejects/dt=2026-11-26/run2-00001.parquet",
               [gone("https://herald.example/tag/old/", FETCHED + timedelta(days=8))], REJECTS)
    state, uncovered = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    assert uncovered == 1, "only the file after the snapshot is read"
    assert state.loaded_from["files_read"] == 1 and state.loaded_from["snapshot"] == f"{SNAPSHOT_PREFIX}run1"
    assert_alias_answers(state, rows)
    assert state.failure("https://herald.example/tag/old/") == (2, day_of(FETCHED) + 8)


def gone(url: str, fetched_at: datetime = FETCHED, *, status: int = 404, reason: str = "http_error", hops=()):
    return dataclasses.replace(reject(), url=url, reason=reason, http_status=status, fetched_at=fetched_at,
                               redirect_urls=list(hops))


def day_of(instant: datetime) -> int:
    return int(instant.timestamp()) // 86_400


def test_permanent_failures_are_kept_with_their_count_and_last_day_and_transient_ones_are_not(tmp_path):
    store = LocalStore(tmp_path / "archive")
    later = FETCHED + timedelta(days=9)
    write_rows(store, "rejects/dt=2026-11-25/run1-00001.parquet", [
        gone("https://herald.example/tag/a/"),
        gone("https://herald.example/tag/a/", later),
        gone("https://herald.example/gone/", status=410),
        gone("https://herald.example/deleted-story/", hops=["https://herald.example/p/9"]),
        gone("https://elsewhere.example/landing/", reason="offsite", status=None, hops=["https://herald.example/out/1"]),
        gone("https://herald.example/big/", reason="too_large", status=None),
        gone("https://herald.example/report.pdf", reason="not_html", status=200),
        gone("https://herald.example/busy/", status=503),
        gone("https://herald.example/slow/", reason="download_timeout", status=None),
        gone("https://herald.example/limited/", status=429),
        gone("https://herald.example/section/world/", reason="not_article", status=200),
    ], REJECTS)
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    day = day_of(FETCHED)
    assert state.failure("https://herald.example/tag/a/") == (2, day + 9)
    assert state.failure("https://herald.example/gone/") == (1, day)
    assert state.failure("https://herald.example/deleted-story/") == (1, day)
    assert state.failure("https://herald.example/p/9") == (1, day), "the redirect hop that led to it too"
    assert state.failure("https://herald.example/out/1") == (1, day), "a redirect off the site"
    assert state.failure("https://herald.example/big/") == (1, day)
    assert state.failure("https://herald.example/report.pdf") == (1, day)
    for retried in ("busy/", "slow/", "limited/", "section/world/"):
        assert state.failure(f"https://herald.example/{retried}") is None, retried
    assert state.failure_count == 8  # the seven URLs above and the off-site target


def test_backoff_doubles_with_each_failure():
    assert [backoff_days(n, 7) for n in (1, 2, 3, 4)] == [7, 14, 28, 56]
    assert backoff_days(1, 3) == 3


def test_a_variant_whose_canonical_points_off_site_is_not_an_alias():
    variant = "https://herald.example/2026/11/25/story-5/amp/"
    meta = PageMeta(canonical="https://other-publisher.example/2026/11/25/story-5/")
    canonical = page_canonical_url(variant, meta)
    assert canonical == variant, "an off-site canonical is not honoured"
    assert aliases_of(canonical, [variant]) == []
    on_site = page_canonical_url(variant, PageMeta(canonical="/2026/11/25/story-5/"))
    assert on_site == "https://herald.example/2026/11/25/story-5/"
    assert aliases_of(on_site, [variant]) == [variant]


def test_aliases_of_keeps_each_other_url_once_in_canonical_form():
    canonical = "https://herald.example/a/"
    assert aliases_of(canonical, ["https://herald.example/a/?utm_source=x", "https://herald.example/p/1",
                                  "https://herald.example/p/1#top", "https://HERALD.example/a", None]) == [
        "https://herald.example/p/1", "https://herald.example/a"]


def test_lastmod_date_alone_stands_for_the_end_of_that_day():
    assert lastmod_instant("2026-11-29") == datetime(2026, 11, 30, tzinfo=timezone.utc)
    assert lastmod_instant("2026-11-29T06:00:00Z") == datetime(2026, 11, 29, 6, tzinfo=timezone.utc)
    assert lastmod_instant("2026-11-29T08:00:00+02:00") == datetime(2026, 11, 29, 6, tzinfo=timezone.utc)
    assert lastmod_instant("yesterday") is None and lastmod_instant(None) is None


class CountingStore(LocalStore):
    """A folder store that counts the bytes read through ranged readers, and from which threads."""

    def __init__(self, root):
        super().__init__(root)
        self.bytes_read = 0
        self.whole_reads = 0

    def get_bytes(self, key):
        self.whole_reads += 1
        return super().get_bytes(key)

    def open_input(self, key):
        store = self

        class Counting(io.FileIO):
            def read(self, size=-1):
                data = super().read(size)
                store.bytes_read += len(data)
                return data

            def readinto(self, buffer):
                n = super().readinto(buffer)
                store.bytes_read += n or 0
                return n

        return Counting(self._path(key), "rb")


def test_details_read_one_row_group_of_a_few_columns_not_the_file(tmp_path):
    store = CountingStore(tmp_path / "archive")
    rows = [article(n, body=f"Story {n} " + "with a body that is long enough to weigh something. " * 40)
            for n in range(40)]
    key = "articles/dt=2026-11-25/run1-00001.parquet"
    write_rows(store, key, rows, ARTICLES)  # 20 row groups of 2 rows
    size = (store.root / key).stat().st_size
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    store.whole_reads = 0
    details = state.details(state.find_url(state_url_key(rows[33].canonical_url)))  # the footer, once per file
    assert details.canonical_url == rows[33].canonical_url
    before = store.bytes_read
    assert state.details(state.find_url(state_url_key(rows[5].canonical_url))).canonical_url == rows[5].canonical_url
    assert store.whole_reads == 0 and 0 < store.bytes_read - before < size / 20, (store.bytes_read - before, size)  # 20 row groups
    before = store.bytes_read
    assert state.details(state.find_url(state_url_key(rows[4].canonical_url))).article_id == rows[4].article_id
    assert store.bytes_read == before, "the same row group again comes from the cache"
    assert state.detail_reads == 2


def test_snapshot_bytes_per_entry_are_the_readmes(tmp_path):
    """README: about 36 bytes per article row, 17 per alias, 14 per failed URL."""
    store, _ = alias_archive(tmp_path)
    write_rows(store, "rejects/dt=2026-11-25/run1-00001.parquet", [gone("https://herald.example/tag/old/")], REJECTS)
    state, _ = load_state(store, near_distance=7, near_window_days=30, now=NOW)
    arrays = {name.removesuffix(".npy"): np.load(io.BytesIO(data)) for name, data in state.snapshot_objects().items()
              if name.endswith(".npy")}
    assert sum(arrays[name].itemsize for name in ARTICLE_ARRAYS) == 36
    assert sum(arrays[name].itemsize for name in ALIAS_ARRAYS) == 17
    assert sum(arrays[name].itemsize for name in FAILURE_ARRAYS) == 14
    assert (len(arrays["url_key"]), len(arrays["alias_key"]), len(arrays["failed_key"])) == (3, 7, 1)


def test_the_newest_eight_discovery_files_are_merged_newest_first(tmp_path):
    store = LocalStore(tmp_path / "archive")
    feed = "https://herald.example/feed/"
    for n in range(10):
        seen = (FETCHED + timedelta(hours=n)).isoformat()
        entry = {"kind": "feed", "etag": f'"{n}"', "last_modified": None, "fetched_at": seen, "children": []}
        documents = {feed: entry, f"https://herald.example/sitemap-{n}.xml": {**entry, "kind": "urlset"}}
        store.put_bytes(f"{DISCOVERY_PREFIX}run{n:02d}.json", discovery_bytes(f"run{n:02d}", documents))
    merged = load_discovery(store)
    assert merged[feed]["etag"] == '"9"'
    assert sorted(url for url in merged if "sitemap-" in url) == [
        f"https://herald.example/sitemap-{n}.xml" for n in range(2, 10)]
