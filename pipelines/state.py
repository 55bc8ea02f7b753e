"""What earlier runs archived, kept in the archive itself, so a fresh container knows it from ARCHIVE_URI alone.

The state is the committed data: an article counts as seen once its Parquet
file is published under ``articles/``, and not before. Loading it reads

* the newest snapshot, ``state/snapshots/<crawl_id>.parquet``: compact
  integer keys of every article row of the data files it lists (its
  metadata), written by a run when too many files were not covered yet; and
* the ``articles/`` files no snapshot covers yet (the recent runs), read
  directly.

Runs never modify each other's files: two runs at once each publish their
own data files (their own "segments"), and later runs merge them. Snapshots
are additive too: a newer one supersedes, and never replaces, an older one.

In memory, per article row: 64-bit keys of the canonical URL and of the
content hash, the SimHash, the fetch day and where the row lives (file, row)
— about 52 bytes. Lookups are binary searches over sorted numpy arrays;
near-duplicate search covers articles fetched in the last
``DEDUP_NEAR_WINDOW_DAYS`` days, with the pigeonhole block index. Details
of a matched row (its id, canonical URL, run, version, HTTP validators) are
read from its data file only when needed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.fingerprints import canonicalize_url

logger = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "state/snapshots/"
VALIDATORS_PREFIX = "state/validators/"
ARTICLES_PREFIX = "articles/"
_DAY_US = 86_400_000_000
_DETAIL_COLUMNS = ["article_id", "canonical_url", "crawl_id", "version", "first_seen_at", "fetched_at",
                   "content_hash", "http_etag", "http_last_modified"]
_DELTA_COLUMNS = ["canonical_url", "content_hash", "simhash", "crawl_id", "fetched_at"]
SNAPSHOT_SCHEMA = pa.schema([
    pa.field("url_key", pa.uint64(), nullable=False),
    pa.field("hash_key", pa.uint64(), nullable=False),
    pa.field("simhash", pa.uint64(), nullable=False),
    pa.field("fetched_day", pa.int32(), nullable=False),
    pa.field("file", pa.uint32(), nullable=False),
    pa.field("row", pa.uint32(), nullable=False),
])


def url_key64(canonical_url: str) -> int:
    """64-bit key of a canonical URL (collisions: about one in 10^6 at 10 million URLs)."""
    return int.from_bytes(hashlib.blake2b(canonical_url.encode(), digest_size=8).digest(), "big")


def hash_key64(content_hash: str) -> int:
    """64-bit key of a content hash (its first 16 hex digits)."""
    return int(content_hash[:16], 16)


@dataclass(frozen=True, slots=True)
class ArchivedArticle:
    """An archived row, read back from its data file."""

    article_id: str
    canonical_url: str
    crawl_id: str
    version: int
    first_seen_at: datetime
    fetched_at: datetime
    content_hash: str
    http_etag: str | None
    http_last_modified: str | None


class ArchiveState:
    """Every article row of the published ``articles/`` files, searchable by URL, content and SimHash."""

    def __init__(self, *, files: list[str], url_key, hash_key, simhash, fetched_day, file, row,
                 reader, near_distance: int, near_since_day: int, loaded_from: dict,
                 duplicate_url_key=None) -> None:
        self.files = files
        self.duplicate_url_key = np.sort(duplicate_url_key if duplicate_url_key is not None else np.zeros(0, np.uint64))
        self._reader = reader  #: key -> bytes (the store's get_bytes)
        order = np.argsort(url_key, kind="stable")
        self.url_key = url_key[order]
        self.hash_key_unsorted = hash_key[order]
        self.simhash = simhash[order]
        self.fetched_day = fetched_day[order]
        self.file = file[order]
        self.row = row[order]
        self._hash_order = np.argsort(self.hash_key_unsorted, kind="stable").astype(np.int64)
        self._hash_sorted = self.hash_key_unsorted[self._hash_order]
        self.near_distance = near_distance
        self._build_near_index(near_since_day)
        self._details: OrderedDict[int, pa.Table] = OrderedDict()
        self.loaded_from = loaded_from

    def __len__(self) -> int:
        return len(self.url_key)

    # --- lookups -----------------------------------------------------------------------------------------------

    def find_url(self, key: int) -> int | None:
        """Position of the newest row with this canonical URL key, or None."""
        lo = int(np.searchsorted(self.url_key, np.uint64(key), "left"))
        hi = int(np.searchsorted(self.url_key, np.uint64(key), "right"))
        if lo == hi:
            return None
        return lo + int(np.argmax(self.fetched_day[lo:hi]))

    def is_known_duplicate(self, key: int) -> bool:
        """Whether an earlier run fetched this canonical URL and recorded it as a duplicate."""
        position = int(np.searchsorted(self.duplicate_url_key, np.uint64(key)))
        return position < len(self.duplicate_url_key) and self.duplicate_url_key[position] == np.uint64(key)

    def find_hash(self, key: int) -> int | None:
        """Position of the first archived row with this content hash key, or None."""
        lo = int(np.searchsorted(self._hash_sorted, np.uint64(key), "left"))
        if lo == len(self._hash_sorted) or self._hash_sorted[lo] != np.uint64(key):
            return None
        return int(self._hash_order[lo])

    def _build_near_index(self, since_day: int) -> None:
        blocks = self.near_distance + 1
        edges = [round(i * 64 / blocks) for i in range(blocks + 1)]
        self._near_rows = np.flatnonzero(self.fetched_day >= since_day).astype(np.int64)
        hashes = self.simhash[self._near_rows]
        self._near_blocks = []
        for i in range(blocks):
            shift, mask = edges[i], (1 << (edges[i + 1] - edges[i])) - 1
            values = (hashes >> np.uint64(shift)) & np.uint64(mask)
            order = np.argsort(values, kind="stable")
            self._near_blocks.append((np.uint64(shift), np.uint64(mask), values[order], self._near_rows[order]))

    def find_near(self, value: int) -> tuple[int, int] | None:
        """(position, distance) of the closest row within the near distance, among the recent ones."""
        if not len(self._near_rows):
            return None
        query = np.uint64(value)
        candidates = []
        for shift, mask, values, rows in self._near_blocks:
            key = (query >> shift) & mask
            lo, hi = np.searchsorted(values, key, "left"), np.searchsorted(values, key, "right")
            if hi > lo:
                candidates.append(rows[lo:hi])
        if not candidates:
            return None
        rows = np.unique(np.concatenate(candidates))
        distances = np.bitwise_count(self.simhash[rows] ^ query)
        best = int(np.argmin(distances))
        if distances[best] > self.near_distance:
            return None
        return int(rows[best]), int(distances[best])

    def details(self, position: int) -> ArchivedArticle:
        """The archived row at ``position``, read from its data file (a few recent files are cached)."""
        file_index = int(self.file[position])
        table = self._details.get(file_index)
        if table is None:
            data = self._reader(self.files[file_index])
            table = pq.read_table(io.BytesIO(data), columns=_DETAIL_COLUMNS)
            self._details[file_index] = table
            if len(self._details) > 8:
                self._details.popitem(last=False)
        row = {name: table.column(name)[int(self.row[position])].as_py() for name in _DETAIL_COLUMNS}
        return ArchivedArticle(**row)

    # --- snapshots ---------------------------------------------------------------------------------------------

    def snapshot_bytes(self) -> bytes:
        table = pa.table(
            [self.url_key, self.hash_key_unsorted, self.simhash, self.fetched_day, self.file, self.row],
            schema=SNAPSHOT_SCHEMA.with_metadata({b"files": json.dumps(self.files).encode()}),
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()


def _empty():
    return (np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.int32),
            np.zeros(0, np.uint32), np.zeros(0, np.uint32))


def load_state(store, *, near_distance: int, near_window_days: int, now: datetime | None = None,
               data_keys: list[str] | None = None) -> tuple[ArchiveState, int]:
    """The state of the archive in ``store``; also how many data files no snapshot covers yet."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    keys = data_keys if data_keys is not None else [k for k in store.list(ARTICLES_PREFIX) if k.endswith(".parquet")]
    snapshots = [k for k in store.list(SNAPSHOT_PREFIX) if k.endswith(".parquet")]
    files: list[str] = []
    parts = []
    covered: set[str] = set()
    if snapshots:
        table = pq.read_table(io.BytesIO(store.get_bytes(snapshots[-1])))
        files = json.loads(table.schema.metadata[b"files"])
        covered = set(files)
        parts.append(tuple(table.column(name).to_numpy() for name in SNAPSHOT_SCHEMA.names))
    delta = [key for key in keys if key not in covered]
    for key in delta:
        parts.append(_read_data_file(store.get_bytes(key), len(files)))
        files.append(key)
    arrays = [np.concatenate([part[i] for part in parts]) if parts else _empty()[i] for i in range(6)]
    duplicate_keys = _duplicate_url_keys(store)
    state = ArchiveState(
        duplicate_url_key=duplicate_keys,
        files=files, url_key=arrays[0], hash_key=arrays[1], simhash=arrays[2], fetched_day=arrays[3],
        file=arrays[4], row=arrays[5], reader=store.get_bytes, near_distance=near_distance,
        near_since_day=int(now.timestamp() * 1_000_000) // _DAY_US - near_window_days,
        loaded_from={"snapshot": snapshots[-1] if snapshots else None, "files_read": len(delta),
                     "rows": int(len(arrays[0])), "seconds": round(time.monotonic() - started, 3)},
    )
    return state, len(delta)


def _read_data_file(data: bytes, file_index: int):
    table = pq.read_table(io.BytesIO(data), columns=_DELTA_COLUMNS)
    count = table.num_rows
    url_key = np.fromiter((url_key64(u) for u in table.column("canonical_url").to_pylist()), np.uint64, count)
    hash_key = np.fromiter((hash_key64(h) for h in table.column("content_hash").to_pylist()), np.uint64, count)
    simhash = table.column("simhash").to_numpy().astype(np.int64).view(np.uint64)
    fetched = table.column("fetched_at").cast(pa.int64()).to_numpy() // _DAY_US
    return (url_key, hash_key, simhash, fetched.astype(np.int32), np.full(count, file_index, np.uint32),
            np.arange(count, dtype=np.uint32))


def _duplicate_url_keys(store) -> np.ndarray:
    """Canonical-URL keys of the pages earlier runs fetched and recorded as duplicates."""
    keys = []
    for key in store.list("duplicates/"):
        if not key.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(store.get_bytes(key)), columns=["url", "fetched"])
        for url, fetched in zip(table.column("url").to_pylist(), table.column("fetched").to_pylist()):
            if fetched:
                keys.append(url_key64(canonicalize_url(url)))
    return np.array(keys, dtype=np.uint64)


def load_validators(store, *, keep: int = 24) -> dict[str, dict]:
    """ETag / Last-Modified of feeds and sitemaps, from the newest runs' files (newest wins per URL)."""
    validators: dict[str, dict] = {}
    for key in store.list(VALIDATORS_PREFIX)[-keep:]:
        try:
            validators.update(json.loads(store.get_bytes(key)))
        except (ValueError, OSError):
            logger.warning("ignoring unreadable validators file %s", key)
    return validators


@dataclass(slots=True)
class RunState:
    """What a run knows of earlier runs: their articles, and the validators of their feeds and sitemaps."""

    articles: ArchiveState
    validators: dict[str, dict]
    uncovered_files: int  #: data files no snapshot covers yet
