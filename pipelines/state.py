"""What earlier runs archived, kept in the archive itself, so a fresh container knows it from ARCHIVE_URI alone.

The state is the committed data: an article counts as seen once its Parquet
file is published under ``articles/``, and not before; an alias once its
``articles/`` or ``duplicates/`` row is published; a failed URL once its
``rejects/`` row is. Loading it reads

* the newest snapshot, ``state/snapshots/<crawl_id>/``: ``.npy`` arrays of
  fixed-size keys (memory-mapped, not sorted at load) and a ``manifest.json``,
  written last, naming the data files of every dataset it covers; and
* the data files no snapshot covers yet (the recent runs), a few columns each.

What it holds, per kind of key (64-bit keys of canonical URLs):

* **articles**: URL key, content-hash key, SimHash, fetch day and where the
  row lives (a row id over the listed files), about 36 bytes a row;
* **aliases**: every other URL that led to an archived article (the URL it was
  fetched from, each redirect hop, a variant such as AMP whose rel=canonical
  named it, a link recognised as a known URL) and the pages recorded as
  duplicates, each with the key of its original: 17 bytes each;
* **failures**: URLs that failed permanently (404, 410, a redirect off the
  site, too large, not HTML), with how often and when last: 14 bytes each.

Runs never modify each other's files: two runs at once each publish their own
data files, and later runs merge them. Snapshots are additive too: a newer one
supersedes, and never replaces, an older one.

Lookups are binary searches over sorted numpy arrays; near-duplicate search
covers articles fetched in the last ``DEDUP_NEAR_WINDOW_DAYS`` days, with the
pigeonhole block index. Details of a matched row (its id, canonical URL, run,
version, HTTP validators) are read from its data file only when needed, one
row group of a few columns (a ranged read on S3), and never on the reactor
thread: callers run ``details`` in a thread.

The discovery state (``state/discovery/<crawl_id>.json``, written by complete
runs) keeps each robots.txt, sitemap, sitemap index and feed a run read: its
validators for the next conditional request, when it was last seen, and, for a
robots.txt or an index, the sitemaps it lists, so that a 304 still leads to them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.fingerprints import canonicalize_url
from pipelines.simhash_index import SimhashIndex

logger = logging.getLogger(__name__)

SNAPSHOT_PREFIX = "state/snapshots/"
DISCOVERY_PREFIX = "state/discovery/"
ARTICLES_PREFIX = "articles/"
DATASET_PREFIXES = {"articles": "articles/", "duplicates": "duplicates/", "rejects": "rejects/"}
_DAY_US = 86_400_000_000
_DETAIL_COLUMNS = ["article_id", "canonical_url", "crawl_id", "version", "first_seen_at", "fetched_at",
                   "content_hash", "http_etag", "http_last_modified"]
#: a snapshot's arrays. Articles: url_key (sorted), simhash, fetched_day, row_id (row across the listed files, in
#: order), hash_sorted and hash_order (the row of each hash_sorted entry). Aliases: alias_key (sorted),
#: alias_target (URL key of the original), alias_kind. Failures: failed_key (sorted, unique), failed_count,
#: failed_day (the last failure).
ARTICLE_ARRAYS = ("url_key", "simhash", "fetched_day", "row_id", "hash_sorted", "hash_order")
ALIAS_ARRAYS = ("alias_key", "alias_target", "alias_kind")
FAILURE_ARRAYS = ("failed_key", "failed_count", "failed_day")
SNAPSHOT_ARRAYS = ARTICLE_ARRAYS + ALIAS_ARRAYS + FAILURE_ARRAYS
SNAPSHOT_MANIFEST = "manifest.json"
SNAPSHOT_VERSION = 2
DISCOVERY_VERSION = 1
DISCOVERY_FILES_READ = 8  #: newest discovery files merged at start (each complete run writes all it knows)

ALIAS = 0  #: another URL of an archived article
DUPLICATE = 1  #: a page recorded as an exact or near copy of an archived article

#: rejects reasons that are failures of the URL itself, not of the moment: not requested again for a while.
#: (404 and 410 are ``http_error`` rows with that status.) 5xx, 429, timeouts and connection errors are not.
PERMANENT_FAILURES = frozenset({"offsite", "too_large", "not_html"})
PERMANENT_HTTP_STATUSES = frozenset({404, 410})
#: reasons a request may succeed on the next try: a feed or sitemap that listed such a URL is not recorded as
#: seen (no validators kept), so the next run reads it whole and requests the URL again
TRANSIENT_FAILURES = frozenset({"download_timeout", "dns_error", "connection_error", "download_error",
                                "robots_unavailable", "extract_timeout", "worker_crashed"})
MAX_BACKOFF_DOUBLINGS = 8


def is_permanent_failure(reason: str, http_status: int | None) -> bool:
    """Whether a rejects row says the URL itself is bad (gone, off the site, too large, not a page)."""
    if reason == "http_error":
        return http_status in PERMANENT_HTTP_STATUSES
    return reason in PERMANENT_FAILURES


def is_transient_failure(reason: str, http_status: int | None) -> bool:
    """Whether a rejects row says the request may succeed next time (5xx, 429, timeouts, connections)."""
    if reason == "http_error":
        return http_status is not None and (http_status >= 500 or http_status == 429)
    return reason in TRANSIENT_FAILURES


def backoff_days(failures: int, retry_after_days: int) -> int:
    """Days a URL that failed permanently ``failures`` times is not requested: ``retry_after_days``, doubled for
    each failure after the first."""
    return retry_after_days * 2 ** min(max(failures - 1, 0), MAX_BACKOFF_DOUBLINGS)


def state_url_key(canonical_url: str) -> int:
    """64-bit key of a canonical URL (collisions: about one in 10^6 at 10 million URLs)."""
    return int.from_bytes(hashlib.blake2b(canonical_url.encode(), digest_size=8).digest(), "big")


def hash_key64(content_hash: str) -> int:
    """64-bit key of a content hash (its first 16 hex digits)."""
    return int(content_hash[:16], 16)


def aliases_of(canonical_url: str, urls) -> list[str]:
    """The canonical forms of ``urls`` (the URL fetched, its redirect hops, a linked variant) other than
    ``canonical_url`` itself: the other URLs under which that article is known."""
    seen = {canonical_url}
    aliases = []
    for url in urls:
        if not url:
            continue
        canonical = canonicalize_url(url)
        if canonical not in seen:
            seen.add(canonical)
            aliases.append(canonical)
    return aliases


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


@dataclass(frozen=True, slots=True)
class KnownUrl:
    """What the archive knows of a canonical URL."""

    kind: str  #: article (its canonical URL), alias (another URL of it) or duplicate (a copy of it)
    position: tuple[int, int] | None  #: the archived article's row (None: the original's row is not loaded)


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
        """The SimHash index over the rows fetched since ``since_day`` (the near-duplicate window)."""
        recent = np.flatnonzero(self.fetched_day >= since_day)
        self.near_rows = len(recent)
        self._near = SimhashIndex(near_distance, hashes=self.simhash[recent], rows=recent)

    def find_near(self, query) -> tuple[int, int] | None:
        """(row, distance) of the closest recent row within the near distance."""
        return self._near.nearest(query)


class _AliasTable:
    """URL keys of aliases and duplicates, sorted, each with the URL key of its original and its kind."""

    def __init__(self, key, target, kind, *, is_sorted: bool = False) -> None:
        if not is_sorted:
            order = np.argsort(key, kind="stable")
            key, target, kind = key[order], target[order], kind[order]
        self.key, self.target, self.kind = key, target, kind

    @classmethod
    def empty(cls) -> "_AliasTable":
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint8), is_sorted=True)

    def __len__(self) -> int:
        return len(self.key)

    def find(self, key) -> tuple[int, int] | None:
        """(target URL key, kind) of ``key``; an alias wins over a duplicate."""
        lo = int(np.searchsorted(self.key, key, "left"))
        if lo == len(self.key) or self.key[lo] != key:
            return None
        hi = int(np.searchsorted(self.key, key, "right"))
        at = lo + int(np.argmin(self.kind[lo:hi])) if hi - lo > 1 else lo
        return int(self.target[at]), int(self.kind[at])


class _FailureTable:
    """URL keys that failed permanently, unique and sorted, with how many times and the day of the last."""

    def __init__(self, key, count, day, *, is_sorted: bool = False) -> None:
        if not is_sorted:
            key, inverse = np.unique(key, return_inverse=True)
            totals = np.zeros(len(key), np.int64)
            np.add.at(totals, inverse, count)
            last = np.full(len(key), np.iinfo(np.int32).min, np.int32)
            np.maximum.at(last, inverse, day)
            count, day = np.minimum(totals, np.iinfo(np.uint16).max).astype(np.uint16), last
        self.key, self.count, self.day = key, count, day

    @classmethod
    def empty(cls) -> "_FailureTable":
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.uint16), np.zeros(0, np.int32), is_sorted=True)

    def __len__(self) -> int:
        return len(self.key)

    def find(self, key) -> tuple[int, int] | None:
        at = int(np.searchsorted(self.key, key, "left"))
        if at == len(self.key) or self.key[at] != key:
            return None
        return int(self.count[at]), int(self.day[at])


class ArchivedKeys:
    """Every article, alias and permanent failure of the published data files, searchable by URL, content and
    SimHash.

    Positions are ``(layer, row)`` pairs: layer 0 is the snapshot, layer 1 the files published after it, and one
    more layer for each refresh that read files other writers committed while the run goes on (``with_files``).
    """

    def __init__(self, *, files: list[str], rows_per_file: list[int], layers: list[_Layer], store,
                 near_distance: int, loaded_from: dict, aliases: list[_AliasTable] | None = None,
                 failures: list[_FailureTable] | None = None, covered: dict[str, list[str]] | None = None,
                 table_versions: dict[str, int] | None = None) -> None:
        self.table_versions = table_versions or {}  #: dataset -> the table version whose files these are
        self.files = files  #: the articles files whose rows the layers hold, in row-id order
        self.rows_per_file = rows_per_file
        self._offsets = np.concatenate([[0], np.cumsum(rows_per_file, dtype=np.int64)])
        self.layers = layers
        self.aliases = aliases or [_AliasTable.empty()]
        self.failures = failures or [_FailureTable.empty()]
        self.covered = covered or {"duplicates": [], "rejects": []}  #: the other datasets' files read
        self._store = store  #: for details: open_input(key)
        self.near_distance = near_distance
        self.loaded_from = loaded_from
        self._lock = threading.Lock()
        self._row_groups: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self._file_meta: OrderedDict[int, tuple[pq.FileMetaData, np.ndarray]] = OrderedDict()
        self.detail_reads = 0  #: row groups read from data files (for tests and the manifest)

    def __len__(self) -> int:
        return sum(len(layer) for layer in self.layers)

    @property
    def near_rows(self) -> int:
        return sum(layer.near_rows for layer in self.layers)

    @property
    def alias_count(self) -> int:
        return sum(len(table) for table in self.aliases)

    @property
    def failure_count(self) -> int:
        return sum(len(table) for table in self.failures)

    # --- refreshing: the files other writers published since --------------------------------------------------

    def unread(self, data_keys: dict[str, list[str]]) -> dict[str, list[str]]:
        """Of ``data_keys`` (dataset -> data file keys), the files this state has not read."""
        read = {"articles": set(self.files), **{dataset: set(keys) for dataset, keys in self.covered.items()}}
        return {dataset: [key for key in keys if key not in read.get(dataset, set())]
                for dataset, keys in data_keys.items()}

    def with_files(self, delta: dict[str, list[str]], *, table_versions: dict[str, int], near_window_days: int,
                   now: datetime | None = None) -> "ArchivedKeys":
        """A new state: this one and the rows of the data files in ``delta`` (dataset -> keys, published since this
        one was loaded). Layers and tables are only appended, so every position of this state stays valid in the
        new one. Reads the store: call it in a thread."""
        now = now or datetime.now(timezone.utc)
        since_day = int(now.timestamp()) // 86_400 - near_window_days
        files, rows_per_file = list(self.files), list(self.rows_per_file)
        covered = {dataset: list(keys) for dataset, keys in self.covered.items()}
        layer, alias_table, failure_table = _read_files(self._store, delta, files, rows_per_file, covered,
                                                        near_distance=self.near_distance, since_day=since_day)
        read = sum(len(keys) for keys in delta.values())
        refreshed = ArchivedKeys(
            files=files, rows_per_file=rows_per_file, store=self._store, near_distance=self.near_distance,
            layers=self.layers + ([layer] if layer is not None else []),
            aliases=self.aliases + ([alias_table] if alias_table is not None else []),
            failures=self.failures + ([failure_table] if failure_table is not None else []),
            covered=covered, table_versions={**self.table_versions, **table_versions},
            loaded_from={**self.loaded_from, "refreshed_files": self.loaded_from.get("refreshed_files", 0) + read},
        )
        refreshed.detail_reads = self.detail_reads
        return refreshed

    # --- lookups (in memory: safe on the reactor thread) --------------------------------------------------------

    def find_url(self, key: int) -> tuple[int, int] | None:
        """Position of the newest row with this canonical URL key, or None."""
        key = np.uint64(key)
        found = [(i, row) for i, layer in enumerate(self.layers) if (row := layer.find_url(key)) is not None]
        if not found:
            return None
        return max(found, key=lambda position: int(self.layers[position[0]].fetched_day[position[1]]))

    def find_alias(self, key: int) -> tuple[int, int] | None:
        """(URL key of the original, ALIAS or DUPLICATE) when ``key`` is another URL of an archived article."""
        key = np.uint64(key)
        found = [hit for table in self.aliases if (hit := table.find(key)) is not None]
        return min(found, key=lambda hit: hit[1]) if found else None

    def known(self, canonical_url: str) -> KnownUrl | None:
        """Whether the archive knows ``canonical_url``: as an article's canonical URL, as another URL of an
        article (an alias) or as a page recorded as a copy of one."""
        key = state_url_key(canonical_url)
        position = self.find_url(key)
        if position is not None:
            return KnownUrl("article", position)
        alias = self.find_alias(key)
        if alias is None:
            return None
        target, kind = alias
        return KnownUrl("alias" if kind == ALIAS else "duplicate", self.find_url(target))

    def failure(self, canonical_url: str) -> tuple[int, int] | None:
        """(permanent failures, day of the last) of ``canonical_url``, or None."""
        key = np.uint64(state_url_key(canonical_url))
        found = [hit for table in self.failures if (hit := table.find(key)) is not None]
        if not found:
            return None
        return sum(count for count, _ in found), max(day for _, day in found)

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
            found = layer.find_near(query)
            if found is not None and (best is None or found[1] < best[1]):
                best = ((i, found[0]), found[1])
        return best

    def fetched_day(self, position: tuple[int, int]) -> int:
        """Day (since 1970-01-01, UTC) the row at ``position`` was fetched."""
        return int(self.layers[position[0]].fetched_day[position[1]])

    # --- details (reads a data file: call it in a thread, never on the reactor) ------------------------------

    def details(self, position: tuple[int, int]) -> ArchivedArticle:
        """The archived row at ``position``: one row group of a few columns of its data file (a ranged read on
        S3); the last few row groups read are kept. Thread-safe."""
        row_id = int(self.layers[position[0]].row_id[position[1]])
        file_index = int(np.searchsorted(self._offsets, row_id, "right")) - 1
        row = row_id - int(self._offsets[file_index])
        metadata, group_offsets = self._metadata(file_index)
        group = int(np.searchsorted(group_offsets, row, "right")) - 1
        with self._lock:
            table = self._row_groups.get((file_index, group))
            if table is not None:
                self._row_groups.move_to_end((file_index, group))
        if table is None:
            with self._store.open_input(self.files[file_index]) as source:
                table = pq.ParquetFile(source, metadata=metadata).read_row_group(group, columns=_DETAIL_COLUMNS)
            with self._lock:
                self.detail_reads += 1
                self._row_groups[(file_index, group)] = table
                while len(self._row_groups) > 16:
                    self._row_groups.popitem(last=False)
        at = row - int(group_offsets[group])
        return ArchivedArticle(**{name: table.column(name)[at].as_py() for name in _DETAIL_COLUMNS})

    def _metadata(self, file_index: int) -> tuple[pq.FileMetaData, np.ndarray]:
        with self._lock:
            cached = self._file_meta.get(file_index)
        if cached is not None:
            return cached
        with self._store.open_input(self.files[file_index]) as source:
            metadata = pq.ParquetFile(source).metadata
        offsets = np.cumsum([0] + [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)])
        with self._lock:
            self._file_meta[file_index] = (metadata, offsets)
            while len(self._file_meta) > 64:
                self._file_meta.popitem(last=False)
        return metadata, offsets

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
        aliases = _AliasTable(*(np.concatenate([getattr(t, name) for t in self.aliases]) for name in ("key", "target", "kind")))
        failures = _FailureTable(*(np.concatenate([getattr(t, name) for t in self.failures]) for name in ("key", "count", "day")))
        arrays = {name: getattr(merged, name) for name in ARTICLE_ARRAYS}
        arrays.update(alias_key=aliases.key, alias_target=aliases.target, alias_kind=aliases.kind,
                      failed_key=failures.key, failed_count=failures.count, failed_day=failures.day)
        objects = {}
        for name in SNAPSHOT_ARRAYS:
            sink = io.BytesIO()
            np.save(sink, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            objects[f"{name}.npy"] = sink.getvalue()
        manifest = {"version": SNAPSHOT_VERSION, "rows": len(merged), "aliases": len(aliases), "failures": len(failures),
                    "table_versions": self.table_versions,
                    "files": self.files, "rows_per_file": self.rows_per_file, "covered": self.covered,
                    "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in objects.items()}}
        objects[SNAPSHOT_MANIFEST] = json.dumps(manifest).encode()
        return objects


def write_state_snapshot(store, *, snapshot_id: str, near_distance: int, data_keys: dict[str, list[str]],
                         table_versions: dict[str, int] | None = None) -> ArchivedKeys:
    """A new snapshot of everything in ``data_keys`` (the files of the tables' versions ``table_versions``), its
    manifest written last, under ``state/snapshots/<snapshot_id>/`` (ids sort by time: a crawl id)."""
    state, _ = load_state(store, near_distance=near_distance, near_window_days=0, data_keys=data_keys,
                          table_versions=table_versions)
    for name, data in state.snapshot_objects().items():  # manifest.json last: then it counts
        store.put_bytes(f"{SNAPSHOT_PREFIX}{snapshot_id}/{name}", data)
    return state


def _empty_articles() -> dict:
    return {"url_key": np.zeros(0, np.uint64), "hash_key": np.zeros(0, np.uint64), "simhash": np.zeros(0, np.uint64),
            "fetched_day": np.zeros(0, np.int32), "row_id": np.zeros(0, np.uint32)}


def load_state(store, *, near_distance: int, near_window_days: int, now: datetime | None = None,
               data_keys: dict[str, list[str]] | None = None,
               table_versions: dict[str, int] | None = None) -> tuple[ArchivedKeys, int]:
    """The state of the archive in ``store``; also how many data files no snapshot covers yet. ``data_keys``: the
    files of each table's version ``table_versions[dataset]`` (a crawl's), which the state and its snapshots
    then name."""
    started = time.monotonic()
    now = now or datetime.now(timezone.utc)
    since_day = int(now.timestamp()) // 86_400 - near_window_days
    if data_keys is None:  # (a crawl passes the files of the tables' current versions)
        data_keys = {dataset: [k for k in store.list(prefix) if k.endswith(".parquet") and k.startswith(f"{prefix}dt=")]
                     for dataset, prefix in DATASET_PREFIXES.items()}
    snapshots = sorted(k.rsplit("/", 1)[0] for k in store.list(SNAPSHOT_PREFIX) if k.endswith("/" + SNAPSHOT_MANIFEST))
    files: list[str] = []
    rows_per_file: list[int] = []
    layers: list[_Layer] = []
    aliases: list[_AliasTable] = []
    failures: list[_FailureTable] = []
    covered: dict[str, list[str]] = {"duplicates": [], "rejects": []}
    if snapshots:
        manifest = json.loads(store.get_bytes(f"{snapshots[-1]}/{SNAPSHOT_MANIFEST}"))
        files, rows_per_file = list(manifest["files"]), list(manifest["rows_per_file"])
        # version 1 snapshots held articles only: their duplicates and rejects are read from the files
        names = SNAPSHOT_ARRAYS if manifest.get("version", 1) >= 2 else ARTICLE_ARRAYS
        # memory-mapped, read-only: pages are read as lookups touch them (a mapped file outlives its name)
        with tempfile.TemporaryDirectory(prefix="news-archive-state-") as scratch:
            arrays = {name: np.load(store.local_path(f"{snapshots[-1]}/{name}.npy", Path(scratch)), mmap_mode="r")
                      for name in names}
        if any(len(arrays[name]) != manifest["rows"] for name in ARTICLE_ARRAYS):
            raise ValueError(f"state snapshot {snapshots[-1]} is inconsistent with its manifest")
        layers.append(_Layer(**{name: arrays[name] for name in ARTICLE_ARRAYS},
                             near_distance=near_distance, near_since_day=since_day))
        if names is SNAPSHOT_ARRAYS:
            if len(arrays["alias_key"]) != manifest["aliases"] or len(arrays["failed_key"]) != manifest["failures"]:
                raise ValueError(f"state snapshot {snapshots[-1]} is inconsistent with its manifest")
            aliases.append(_AliasTable(arrays["alias_key"], arrays["alias_target"], arrays["alias_kind"], is_sorted=True))
            failures.append(_FailureTable(arrays["failed_key"], arrays["failed_count"], arrays["failed_day"], is_sorted=True))
            covered = {dataset: list(keys) for dataset, keys in manifest.get("covered", {}).items()}
        current = {key for keys in data_keys.values() for key in keys}
        gone = [key for key in [*files, *covered.get("duplicates", []), *covered.get("rejects", [])] if key not in current]
        if gone:  # compaction rewrote files the snapshot covers: it no longer describes the tables
            logger.info("state snapshot %s covers %d file(s) the tables no longer hold (compacted); reading the "
                        "tables whole", snapshots[-1], len(gone))
            snapshots, files, rows_per_file, layers, aliases, failures = [], [], [], [], [], []
            covered = {"duplicates": [], "rejects": []}
    known_articles = set(files)
    delta = {"articles": [k for k in data_keys.get("articles", []) if k not in known_articles]}
    for dataset in ("duplicates", "rejects"):
        done = set(covered.get(dataset, []))
        delta[dataset] = [k for k in data_keys.get(dataset, []) if k not in done]
    layer, alias_table, failure_table = _read_files(store, delta, files, rows_per_file, covered,
                                                    near_distance=near_distance, since_day=since_day)
    if layer is not None or not layers:
        layers.append(layer or _Layer(**_empty_articles(), near_distance=near_distance, near_since_day=since_day))
    aliases += [alias_table] if alias_table is not None else []
    failures += [failure_table] if failure_table is not None else []
    files_read = sum(len(keys) for keys in delta.values())
    state = ArchivedKeys(
        files=files, rows_per_file=rows_per_file, layers=layers, store=store, near_distance=near_distance,
        aliases=aliases, failures=failures, covered=covered,
        table_versions=table_versions or {},
        loaded_from={"snapshot": snapshots[-1] if snapshots else None, "files_read": files_read,
                     "table_versions": table_versions or {},
                     "rows": sum(len(layer) for layer in layers), "aliases": sum(len(t) for t in aliases),
                     "failures": sum(len(t) for t in failures), "seconds": round(time.monotonic() - started, 3)},
    )
    return state, files_read


def _read_files(store, delta: dict[str, list[str]], files: list[str], rows_per_file: list[int],
                covered: dict[str, list[str]], *, near_distance: int, since_day: int):
    """The rows of the data files in ``delta`` (dataset -> keys) as one article layer, one alias table and one
    failure table (each None when there is nothing); ``files``, ``rows_per_file`` and ``covered`` are extended
    with what was read, article row ids continuing after ``rows_per_file``'s."""
    article_parts, alias_parts, failure_parts = [], [], []
    for key in delta.get("articles", []):
        part, part_aliases = _read_articles_file(store.get_bytes(key), sum(rows_per_file))
        article_parts.append(part)
        alias_parts.append(part_aliases)
        files.append(key)
        rows_per_file.append(len(part["url_key"]))
    for key in delta.get("duplicates", []):
        alias_parts.append(_read_duplicates_file(store.get_bytes(key)))
        covered.setdefault("duplicates", []).append(key)
    for key in delta.get("rejects", []):
        failure_parts.append(_read_rejects_file(store.get_bytes(key)))
        covered.setdefault("rejects", []).append(key)
    layer = _Layer(**{name: np.concatenate([part[name] for part in article_parts]) for name in article_parts[0]},
                   near_distance=near_distance, near_since_day=since_day) if article_parts else None
    alias_table = _AliasTable(*(np.concatenate([p[i] for p in alias_parts]) for i in range(3))) if alias_parts else None
    failure_table = (_FailureTable(*(np.concatenate([p[i] for p in failure_parts]) for i in range(3)))
                     if failure_parts else None)
    return layer, alias_table, failure_table


def _columns(table: pa.Table, name: str) -> list:
    """A column as Python values; all nulls when the file predates the column (an older schema version)."""
    return table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows


def _read(data: bytes, wanted: list[str]) -> pa.Table:
    source = pq.ParquetFile(io.BytesIO(data))
    return source.read(columns=[name for name in wanted if name in source.schema_arrow.names])


def _alias_arrays(entries: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not entries:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint8)
    keys, targets, kinds = zip(*entries)
    return np.array(keys, np.uint64), np.array(targets, np.uint64), np.array(kinds, np.uint8)


def _read_articles_file(data: bytes, first_row_id: int) -> tuple[dict, tuple]:
    """Article arrays of one data file, and its aliases (the URL fetched and the redirect hops, when they are
    not the canonical URL)."""
    table = _read(data, ["canonical_url", "url", "redirect_urls", "content_hash", "simhash", "fetched_at"])
    count = table.num_rows
    canonical = table.column("canonical_url").to_pylist()
    url_keys = np.fromiter((state_url_key(u) for u in canonical), np.uint64, count)
    entries = []
    for target, own, url, hops in zip(url_keys.tolist(), canonical, _columns(table, "url"),
                                       _columns(table, "redirect_urls")):
        entries.extend((state_url_key(alias), target, ALIAS) for alias in aliases_of(own, [url, *(hops or [])]))
    arrays = {
        "url_key": url_keys,
        "hash_key": np.fromiter((hash_key64(h) for h in table.column("content_hash").to_pylist()), np.uint64, count),
        "simhash": table.column("simhash").to_numpy().astype(np.int64).view(np.uint64),
        "fetched_day": (table.column("fetched_at").cast(pa.int64()).to_numpy() // _DAY_US).astype(np.int32),
        "row_id": np.arange(first_row_id, first_row_id + count, dtype=np.uint32),
    }
    return arrays, _alias_arrays(entries)


def _read_duplicates_file(data: bytes) -> tuple:
    """Every URL a duplicates row names (the page or link, its redirect hops, its declared canonical URL),
    keyed to its original: an alias for kind url, a duplicate for exact and near copies."""
    table = _read(data, ["url", "canonical_url", "kind", "duplicate_of_url", "redirect_urls"])
    entries = []
    for url, canonical, kind, original, hops in zip(
            _columns(table, "url"), _columns(table, "canonical_url"), _columns(table, "kind"),
            _columns(table, "duplicate_of_url"), _columns(table, "redirect_urls")):
        target = state_url_key(original)
        label = ALIAS if kind == "url" else DUPLICATE
        entries.extend((state_url_key(alias), target, label) for alias in aliases_of(original, [url, *(hops or []), canonical]))
    return _alias_arrays(entries)


def _read_rejects_file(data: bytes) -> tuple:
    """The URLs of permanent failures (the URL and the redirect hops that led to it), with the failure day."""
    table = _read(data, ["url", "reason", "http_status", "fetched_at", "redirect_urls"])
    days = (table.column("fetched_at").cast(pa.int64()).to_numpy() // _DAY_US).astype(np.int32).tolist()
    keys, found_days = [], []
    for url, reason, status, day, hops in zip(_columns(table, "url"), _columns(table, "reason"),
                                              _columns(table, "http_status"), days, _columns(table, "redirect_urls")):
        if not is_permanent_failure(reason, status):
            continue
        for failed in {canonicalize_url(u) for u in [url, *(hops or [])] if u}:
            keys.append(state_url_key(failed))
            found_days.append(day)
    return np.array(keys, np.uint64), np.ones(len(keys), np.uint16), np.array(found_days, np.int32)


# --- discovery documents ---------------------------------------------------------------------------------------

def lastmod_instant(value: str | None) -> datetime | None:
    """A sitemap ``<lastmod>`` (W3C datetime) as a UTC instant; a date alone stands for the end of that day (it
    may have changed at any time of it); None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc) + timedelta(days=1)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant.astimezone(timezone.utc) if instant.tzinfo else instant.replace(tzinfo=timezone.utc)


def discovery_entry(document) -> dict:
    """A ``DiscoveredDocument`` as the JSON the next run reads."""
    return {"kind": document.kind, "etag": document.etag, "last_modified": document.last_modified,
            "fetched_at": document.fetched_at.astimezone(timezone.utc).isoformat(),
            "children": [list(child) for child in document.children]}


def discovery_bytes(crawl_id: str, documents: dict[str, dict]) -> bytes:
    return json.dumps({"version": DISCOVERY_VERSION, "crawl_id": crawl_id, "documents": documents},
                      sort_keys=True).encode()


def load_discovery(store, *, keep: int = DISCOVERY_FILES_READ) -> dict[str, dict]:
    """The robots.txt files, sitemaps and feeds of the newest complete runs, per URL the most recently seen.
    (``state/validators/`` files of older releases are not read: their feeds and sitemaps are fetched whole once.)"""
    documents: dict[str, dict] = {}
    for key in [k for k in store.list(DISCOVERY_PREFIX) if k.endswith(".json")][-keep:]:
        try:
            data = json.loads(store.get_bytes(key))
            entries = data["documents"] if data.get("version") == DISCOVERY_VERSION else {}
        except (ValueError, KeyError, TypeError, OSError):
            logger.warning("ignoring unreadable discovery state %s", key)
            continue
        for url, entry in entries.items():
            if url not in documents or entry.get("fetched_at", "") >= documents[url].get("fetched_at", ""):
                documents[url] = entry
    return documents


@dataclass(slots=True)
class EarlierRuns:
    """What a run knows of earlier runs: their articles, aliases and failures, and the documents they read."""

    archived: ArchivedKeys  #: the articles, aliases and failures of the tables
    discovery: dict[str, dict]  #: URL -> discovery_entry of a robots.txt, sitemap or feed
    uncovered_files: int  #: data files no snapshot covers yet
