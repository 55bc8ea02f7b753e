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
import tempfile
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

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
#: a snapshot's arrays: url_key (sorted), simhash, fetched_day, row_id (row across the listed files, in
#: order), hash_sorted and hash_order (the row of each hash_sorted entry)
SNAPSHOT_ARRAYS = ("url_key", "simhash", "fetched_day", "row_id", "hash_sorted", "hash_order")
SNAPSHOT_MANIFEST = "manifest.json"


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


class _Layer:
    """Article rows of some data files, with their lookup indexes: the snapshot, or the files after it.

    Rows are kept in URL-key order; per row: URL key, SimHash, fetch day and a global row id (which data
    file, which row). Content-hash keys are kept sorted, with the row each belongs to.
    """

    def __init__(self, *, url_key, simhash, fetched_day, row_id, hash_key=None, hash_sorted=None, hash_order=None,
                 near_distance: int, near_since_day: int) -> None:
        if hash_sorted is None:  # rows straight from data files: sort them
            order = np.argsort(url_key, kind="stable")
            url_key, simhash, fetched_day, row_id, hash_key = (
                url_key[order], simhash[order], fetched_day[order], row_id[order], hash_key[order])
            hash_order = np.argsort(hash_key, kind="stable").astype(np.int32 if len(hash_key) < 2**31 else np.int64)
            hash_sorted = hash_key[hash_order]
        self.url_key, self.simhash, self.fetched_day, self.row_id = url_key, simhash, fetched_day, row_id
        self.hash_sorted, self.hash_order = hash_sorted, hash_order
        self._build_near_index(near_distance, near_since_day)

    def __len__(self) -> int:
        return len(self.url_key)

    def hash_keys(self):
        """Content-hash keys in row order."""
        keys = np.empty_like(self.hash_sorted)
        keys[self.hash_order] = self.hash_sorted
        return keys

    def find_url(self, key) -> int | None:
        lo = int(np.searchsorted(self.url_key, key, "left"))
        if lo == len(self.url_key) or self.url_key[lo] != key:
            return None
        hi = int(np.searchsorted(self.url_key, key, "right"))
        return lo + int(np.argmax(self.fetched_day[lo:hi])) if hi - lo > 1 else lo

    def find_hash(self, key) -> int | None:
        lo = int(np.searchsorted(self.hash_sorted, key, "left"))
        if lo == len(self.hash_sorted) or self.hash_sorted[lo] != key:
            return None
        return int(self.hash_order[lo])

    def _build_near_index(self, near_distance: int, since_day: int) -> None:
        """Pigeonhole blocks over the recent rows: two hashes within ``near_distance`` bits agree exactly on
        one of ``near_distance + 1`` blocks. Each block keeps its values sorted, with the full hashes and row
        positions in the same order, so a lookup reads contiguous slices."""
        blocks = near_distance + 1
        edges = [round(i * 64 / blocks) for i in range(blocks + 1)]
        recent = np.flatnonzero(self.fetched_day >= since_day).astype(np.int32 if len(self) < 2**31 else np.int64)
        hashes = self.simhash[recent]
        self.near_rows = len(recent)
        self._near = []
        for i in range(blocks):
            width = edges[i + 1] - edges[i]
            shift, mask = np.uint64(edges[i]), np.uint64((1 << width) - 1)
            values = ((hashes >> shift) & mask).astype(np.uint8 if width <= 8 else np.uint16 if width <= 16 else np.uint64)
            order = np.argsort(values, kind="stable")
            self._near.append((shift, mask, values[order], hashes[order], recent[order]))

    def find_near(self, query, max_distance: int) -> tuple[int, int] | None:
        best: tuple[int, int] | None = None
        for shift, mask, values, hashes, rows in self._near:
            key = values.dtype.type((query >> shift) & mask)
            lo = np.searchsorted(values, key, "left")
            hi = np.searchsorted(values, key, "right")
            if hi == lo:
                continue
            distances = np.bitwise_count(hashes[lo:hi] ^ query)
            at = int(np.argmin(distances))
            distance = int(distances[at])
            if distance <= max_distance and (best is None or distance < best[1]):
                best = (int(rows[lo + at]), distance)
        return best


class ArchiveState:
    """Every article row of the published ``articles/`` files, searchable by URL, content and SimHash.

    Positions are ``(layer, row)`` pairs: layer 0 is the snapshot, layer 1 the files published after it.
    """

    def __init__(self, *, files: list[str], rows_per_file: list[int], layers: list[_Layer], reader,
                 near_distance: int, loaded_from: dict, duplicate_url_key=None) -> None:
        self.files = files
        self.rows_per_file = rows_per_file
        self._offsets = np.concatenate([[0], np.cumsum(rows_per_file, dtype=np.int64)])
        self.layers = layers
        self._reader = reader  #: key -> bytes (the store's get_bytes)
        self.near_distance = near_distance
        self.loaded_from = loaded_from
        self.duplicate_url_key = np.sort(duplicate_url_key if duplicate_url_key is not None else np.zeros(0, np.uint64))
        self._details: OrderedDict[int, pa.Table] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(layer) for layer in self.layers)

    @property
    def near_rows(self) -> int:
        return sum(layer.near_rows for layer in self.layers)

    # --- lookups -----------------------------------------------------------------------------------------------

    def find_url(self, key: int) -> tuple[int, int] | None:
        """Position of the newest row with this canonical URL key, or None."""
        key = np.uint64(key)
        found = [(i, row) for i, layer in enumerate(self.layers) if (row := layer.find_url(key)) is not None]
        if not found:
            return None
        return max(found, key=lambda position: int(self.layers[position[0]].fetched_day[position[1]]))

    def is_known_duplicate(self, key: int) -> bool:
        """Whether an earlier run fetched this canonical URL and recorded it as a duplicate."""
        position = int(np.searchsorted(self.duplicate_url_key, np.uint64(key)))
        return position < len(self.duplicate_url_key) and self.duplicate_url_key[position] == np.uint64(key)

    def find_hash(self, key: int) -> tuple[int, int] | None:
        """Position of an archived row with this content hash key (the snapshot's first), or None."""
        key = np.uint64(key)
        for i, layer in enumerate(self.layers):
            row = layer.find_hash(key)
            if row is not None:
                return i, row
        return None

    def find_near(self, value: int) -> tuple[tuple[int, int], int] | None:
        """(position, distance) of the closest recent row within the near distance."""
        query = np.uint64(value)
        best = None
        for i, layer in enumerate(self.layers):
            found = layer.find_near(query, self.near_distance)
            if found is not None and (best is None or found[1] < best[1]):
                best = ((i, found[0]), found[1])
        return best

    def fetched_day(self, position: tuple[int, int]) -> int:
        """Day (since 1970-01-01, UTC) the row at ``position`` was fetched."""
        return int(self.layers[position[0]].fetched_day[position[1]])

    def details(self, position: tuple[int, int]) -> ArchivedArticle:
        """The archived row at ``position``, read from its data file (a few recent files are cached)."""
        row_id = int(self.layers[position[0]].row_id[position[1]])
        file_index = int(np.searchsorted(self._offsets, row_id, "right")) - 1
        row = row_id - int(self._offsets[file_index])
        table = self._details.get(file_index)
        if table is None:
            table = pq.read_table(io.BytesIO(self._reader(self.files[file_index])), columns=_DETAIL_COLUMNS)
            self._details[file_index] = table
            if len(self._details) > 8:
                self._details.popitem(last=False)
        return ArchivedArticle(**{name: table.column(name)[row].as_py() for name in _DETAIL_COLUMNS})

    # --- snapshots ---------------------------------------------------------------------------------------------

    def snapshot_objects(self) -> dict[str, bytes]:
        """All layers merged into one snapshot: each array as a ``.npy`` object (loaded memory-mapped, with no
        sorting), and ``manifest.json``, to be written last, naming the data files it covers."""
        merged = _Layer(
            url_key=np.concatenate([layer.url_key for layer in self.layers]),
            simhash=np.concatenate([layer.simhash for layer in self.layers]),
            fetched_day=np.concatenate([layer.fetched_day for layer in self.layers]),
            row_id=np.concatenate([layer.row_id for layer in self.layers]),
            hash_key=np.concatenate([layer.hash_keys() for layer in self.layers]),
            near_distance=self.near_distance, near_since_day=2**31 - 1,
        )
        objects = {}
        for name in SNAPSHOT_ARRAYS:
            sink = io.BytesIO()
            np.save(sink, np.ascontiguousarray(getattr(merged, name)), allow_pickle=False)
            objects[f"{name}.npy"] = sink.getvalue()
        manifest = {"version": 1, "rows": len(merged), "files": self.files, "rows_per_file": self.rows_per_file,
                    "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in objects.items()}}
        objects[SNAPSHOT_MANIFEST] = json.dumps(manifest).encode()
        return objects


def _empty() -> dict:
    return {"url_key": np.zeros(0, np.uint64), "hash_key": np.zeros(0, np.uint64), "simhash": np.zeros(0, np.uint64),
            "fetched_day": np.zeros(0, np.int32), "row_id": np.zeros(0, np.uint32)}


def load_state(store, *, near_distance: int, near_window_days: int, now: datetime | None = None,
               data_keys: list[str] | None = None) -> tuple[ArchiveState, int]:
    """The state of the archive in ``store``; also how many data files no snapshot covers yet."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    since_day = int(now.timestamp()) // 86_400 - near_window_days
    keys = data_keys if data_keys is not None else [k for k in store.list(ARTICLES_PREFIX) if k.endswith(".parquet")]
    snapshots = sorted(k.rsplit("/", 1)[0] for k in store.list(SNAPSHOT_PREFIX) if k.endswith("/" + SNAPSHOT_MANIFEST))
    files: list[str] = []
    rows_per_file: list[int] = []
    layers: list[_Layer] = []
    if snapshots:
        manifest = json.loads(store.get_bytes(f"{snapshots[-1]}/{SNAPSHOT_MANIFEST}"))
        files, rows_per_file = manifest["files"], manifest["rows_per_file"]
        # memory-mapped, read-only: pages are read as lookups touch them (a mapped file outlives its name)
        with tempfile.TemporaryDirectory(prefix="news-archive-state-") as scratch:
            arrays = {name: np.load(store.local_path(f"{snapshots[-1]}/{name}.npy", Path(scratch)), mmap_mode="r")
                      for name in SNAPSHOT_ARRAYS}
        if any(len(arrays[name]) != manifest["rows"] for name in SNAPSHOT_ARRAYS):
            raise ValueError(f"state snapshot {snapshots[-1]} is inconsistent with its manifest")
        layers.append(_Layer(**arrays, near_distance=near_distance, near_since_day=since_day))
    covered = set(files)
    delta = [key for key in keys if key not in covered]
    parts = []
    for key in delta:
        part = _read_data_file(store.get_bytes(key), sum(rows_per_file))
        parts.append(part)
        files.append(key)
        rows_per_file.append(len(part["url_key"]))
    if parts or not layers:
        arrays = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else _empty()
        layers.append(_Layer(**arrays, near_distance=near_distance, near_since_day=since_day))
    state = ArchiveState(
        files=files, rows_per_file=rows_per_file, layers=layers, reader=store.get_bytes, near_distance=near_distance,
        duplicate_url_key=_duplicate_url_keys(store),
        loaded_from={"snapshot": snapshots[-1] if snapshots else None, "files_read": len(delta),
                     "rows": sum(len(layer) for layer in layers), "seconds": round(time.monotonic() - started, 3)},
    )
    return state, len(delta)


def _read_data_file(data: bytes, first_row_id: int) -> dict:
    table = pq.read_table(io.BytesIO(data), columns=_DELTA_COLUMNS)
    count = table.num_rows
    return {
        "url_key": np.fromiter((url_key64(u) for u in table.column("canonical_url").to_pylist()), np.uint64, count),
        "hash_key": np.fromiter((hash_key64(h) for h in table.column("content_hash").to_pylist()), np.uint64, count),
        "simhash": table.column("simhash").to_numpy().astype(np.int64).view(np.uint64),
        "fetched_day": (table.column("fetched_at").cast(pa.int64()).to_numpy() // _DAY_US).astype(np.int32),
        "row_id": np.arange(first_row_id, first_row_id + count, dtype=np.uint32),
    }


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
