"""How the archive state scales: load time, memory and lookup cost for N archived articles (default 10 million).

Builds a state snapshot of N synthetic article rows (random 64-bit URL and
content keys and SimHashes, fetch days spread over a year), N/2 aliases (other
URLs of those articles: redirect hops, variants, recorded duplicates) and N/10
permanently failed URLs in a temporary archive folder, then, in a fresh child process so that memory is measured
alone, loads it with ``pipelines.state.load_state`` exactly as a crawl does at
start-up, and times lookups of known and unknown keys.

Run: python benchmarks/state_scale.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.state import (SNAPSHOT_PREFIX, ArchivedKeys, _AliasTable, _FailureTable, _Layer,  # noqa: E402
                             load_state)
from pipelines.storage import LocalStore  # noqa: E402

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


def build(root: Path, rows: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    today = int(NOW.timestamp()) // 86_400
    layer = _Layer(
        url_key=rng.integers(0, 2**64, rows, dtype=np.uint64),
        hash_key=rng.integers(0, 2**64, rows, dtype=np.uint64),
        simhash=rng.integers(0, 2**64, rows, dtype=np.uint64),
        fetched_day=(today - rng.integers(0, 365, rows)).astype(np.int32),
        row_id=np.arange(rows, dtype=np.uint32),
        near_distance=7, near_since_day=today + 1,
    )
    per_file = 100_000
    files = [f"articles/dt=2026-01-01/run-{i:05d}.parquet" for i in range((rows + per_file - 1) // per_file)]
    counts = [min(per_file, rows - i * per_file) for i in range(len(files))]
    aliases = _AliasTable(rng.integers(0, 2**64, rows // 2, dtype=np.uint64),
                          layer.url_key[rng.integers(0, rows, rows // 2)], np.zeros(rows // 2, np.uint8))
    failures = _FailureTable(rng.integers(0, 2**64, rows // 10, dtype=np.uint64), np.ones(rows // 10, np.uint16),
                             (today - rng.integers(0, 365, rows // 10)).astype(np.int32))
    state = ArchivedKeys(files=files, rows_per_file=counts, layers=[layer], store=None, near_distance=7, loaded_from={},
                         aliases=[aliases], failures=[failures])
    store = LocalStore(root)
    for name, data in state.snapshot_objects().items():
        store.put_bytes(f"{SNAPSHOT_PREFIX}bench/{name}", data)


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in KiB (VmHWM: peak resident set)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(root: Path, lookups: int) -> dict:
    """In the child process: load, then look up."""
    rss_before = _status_kb("VmRSS")
    started = time.perf_counter()
    # the tables' files are the snapshot's (a crawl passes the files of the tables' current versions)
    covered = json.loads((root / SNAPSHOT_PREFIX / "bench" / "manifest.json").read_text())["files"]
    state, _ = load_state(LocalStore(root), near_distance=7, near_window_days=30, now=NOW,
                          data_keys={"articles": covered})
    load_seconds = time.perf_counter() - started
    rss_peak, rss_after = _status_kb("VmHWM"), _status_kb("VmRSS")
    rng = np.random.default_rng(2)
    [layer] = state.layers
    known = layer.url_key[rng.integers(0, len(state), lookups)].tolist()
    unknown = rng.integers(0, 2**64, lookups, dtype=np.uint64).tolist()
    hashes = layer.hash_sorted[rng.integers(0, len(state), lookups)].tolist()
    timings = {}
    [aliases], [failures] = state.aliases, state.failures
    alias_keys = aliases.key[rng.integers(0, len(aliases), lookups)].tolist()
    failed_keys = failures.key[rng.integers(0, len(failures), lookups)].tolist()
    for name, keys, lookup in (("url known", known, state.find_url), ("url unknown", unknown, state.find_url),
                               ("content hash", hashes, state.find_hash), ("alias", alias_keys, state.find_alias),
                               ("alias unknown", unknown, state.find_alias),
                               ("failed url", failed_keys, lambda key: failures.find(np.uint64(key)))):
        started = time.perf_counter()
        found = sum(lookup(key) is not None for key in keys)
        timings[name] = ((time.perf_counter() - started) / len(keys) * 1e6, found)
    recent = np.flatnonzero(layer.fetched_day >= int(NOW.timestamp()) // 86_400 - 30)[:1000]
    near_probes = [int(v) ^ (0b1011 << 20) for v in layer.simhash[recent]] + unknown[:1000]
    started = time.perf_counter()
    found = sum(state.find_near(v) is not None for v in near_probes)
    timings["near (30-day window)"] = ((time.perf_counter() - started) / len(near_probes) * 1e6, found)
    rss_after_lookups = _status_kb("VmRSS")
    return {"rss_after_lookups_mb": rss_after_lookups / 1024, "rows": len(state), "aliases": state.alias_count,
            "failures": state.failure_count, "near_window_rows": state.near_rows, "load_seconds": load_seconds,
            "peak_rss_mb": rss_peak / 1024, "rss_after_load_mb": rss_after / 1024, "rss_before_load_mb": rss_before / 1024,
            "lookup_us": {k: round(v[0], 2) for k, v in timings.items()},
            "found": {k: v[1] for k, v in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.lookups)))
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "archive"
        started = time.perf_counter()
        build(root, args.rows)
        size = sum(p.stat().st_size for p in root.rglob("*.npy"))
        print(f"built a state snapshot of {args.rows:,} rows ({size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - started:.1f} s")
        output = subprocess.run([sys.executable, __file__, "--child", str(root), "--lookups", str(args.lookups)],
                                check=True, capture_output=True, text=True).stdout
        result = json.loads(output)
    state_mb = result["peak_rss_mb"] - result["rss_before_load_mb"]
    print(f"loaded {result['rows']:,} article rows, {result['aliases']:,} aliases and {result['failures']:,} failed URLs "
          f"in {result['load_seconds']:.2f} s")
    print(f"memory: {state_mb:.0f} MB for the state at peak ({result['rss_after_load_mb'] - result['rss_before_load_mb']:.0f} MB "
          f"once loaded); whole process peak {result['peak_rss_mb']:.0f} MB, of which "
          f"{result['rss_before_load_mb']:.0f} MB interpreter and libraries before loading")
    print(f"after the lookups below the process holds {result['rss_after_lookups_mb']:.0f} MB "
          f"(the memory-mapped arrays are read in as lookups touch them)")
    print(f"near-duplicate window: {result['near_window_rows']:,} rows fetched in the last 30 days")
    for name, micros in result["lookup_us"].items():
        print(f"  lookup {name:22s} {micros:8.2f} µs each   (found {result['found'][name]:,})")


if __name__ == "__main__":
    main()
