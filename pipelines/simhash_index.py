"""Near-duplicates among many 64-bit SimHashes (``fingerprints.simhash``), by Hamming distance.

For the dedup step (this run's articles) and the archive state (earlier runs') alike. Its own module, apart from
``fingerprints``: the extraction workers hash bodies and need none of numpy.
"""

from __future__ import annotations

import numpy as np

from pipelines.exceptions import ArchiveConfigError


class SimhashIndex:
    """64-bit SimHashes searchable by Hamming distance <= ``max_distance``, each with an integer row.

    The pigeonhole trick: two hashes within distance k agree exactly on at least one of k+1 bit blocks. Each
    block keeps its values sorted, with the full hashes and rows in the same order, so a lookup reads one
    contiguous slice per block and compares only the hashes that share a block with it (with k = 7, eight
    8-bit blocks: about 1/32 of the rows, at random). Built in bulk (the archive's recent articles), or grown
    one hash at a time (a run's articles): added hashes wait in a buffer that lookups scan directly, merged
    into the sorted blocks once it holds a quarter of them, so adding n hashes costs O(n log n) in all.
    ``nearest`` returns the closest, the lowest row among equals (the first added, for a growing index).
    """

    MIN_MERGE = 1024

    def __init__(self, max_distance: int, hashes=None, rows=None) -> None:
        if not 0 <= max_distance < 32:
            raise ArchiveConfigError(f"near-duplicate distance must be within 0..31, got {max_distance}")
        self.max_distance = max_distance
        blocks = max_distance + 1
        edges = [round(i * 64 / blocks) for i in range(blocks + 1)]
        self._masks = []
        for i in range(blocks):
            width = edges[i + 1] - edges[i]
            dtype = np.uint8 if width <= 8 else np.uint16 if width <= 16 else np.uint64
            self._masks.append((np.uint64(edges[i]), np.uint64((1 << width) - 1), dtype))
        hashes = np.zeros(0, np.uint64) if hashes is None else np.asarray(hashes, np.uint64)
        rows = np.arange(len(hashes)) if rows is None else np.asarray(rows)
        rows = rows.astype(np.int32 if not len(rows) or int(rows.max()) < 2**31 else np.int64)  # k+1 copies are kept
        self._pending_hashes = np.zeros(64, np.uint64)
        self._pending_rows = np.zeros(64, np.int64)
        self._pending = 0
        self._build(hashes, rows)

    def __len__(self) -> int:
        return self._size + self._pending

    def _build(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        self._size = len(hashes)
        self._hashes, self._rows = hashes, rows
        self._blocks = []
        for shift, mask, dtype in self._masks:
            values = ((hashes >> shift) & mask).astype(dtype)
            order = np.lexsort((rows, values))  # by block value, then row: a slice's first minimum is its lowest row
            self._blocks.append((values[order], hashes[order], rows[order]))

    def add(self, value: int, row: int) -> None:
        if self._pending == len(self._pending_hashes):
            self._pending_hashes = np.resize(self._pending_hashes, 2 * self._pending)
            self._pending_rows = np.resize(self._pending_rows, 2 * self._pending)
        self._pending_hashes[self._pending] = value
        self._pending_rows[self._pending] = row
        self._pending += 1
        if self._pending >= max(self.MIN_MERGE, self._size // 4):
            self._build(np.concatenate([self._hashes, self._pending_hashes[: self._pending]]),
                        np.concatenate([self._rows, self._pending_rows[: self._pending]]))
            self._pending = 0

    def nearest(self, value: int) -> tuple[int, int] | None:
        """(row, distance) of the closest hash within ``max_distance``, or None."""
        query = np.uint64(value)
        best = (self.max_distance + 1, 0)  # (distance, row)
        for (shift, mask, dtype), (values, hashes, rows) in zip(self._masks, self._blocks):
            key = dtype((query >> shift) & mask)
            lo = int(np.searchsorted(values, key, "left"))
            hi = int(np.searchsorted(values, key, "right"))
            if hi > lo:
                distances = np.bitwise_count(hashes[lo:hi] ^ query)
                at = int(distances.argmin())  # rows ascend within a slice: the lowest row of the least distance
                best = min(best, (int(distances[at]), int(rows[lo + at])))
        if self._pending:  # in the order added, rows not necessarily ascending
            distances = np.bitwise_count(self._pending_hashes[: self._pending] ^ query)
            least = int(distances.min())
            if least <= best[0]:
                best = min(best, (least, int(self._pending_rows[: self._pending][distances == least].min())))
        return None if best[0] > self.max_distance else (best[1], best[0])
