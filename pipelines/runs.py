"""The archive's runs, read back from their manifests (``runs/<crawl_id>.json``), newest first.

Crawl ids begin with the run's start instant (``20261125T143800Z-...``), so the manifests' keys sort by start.
A manifest that cannot be read or parsed is skipped with a warning: one bad file does not hide the others.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

logger = logging.getLogger(__name__)

RUNS_PREFIX = "runs/"
#: manifests read at once (an S3 GET each)
READ_THREADS = 8


@dataclass(kw_only=True, slots=True)
class RunSummary:
    """What the status, the report and site health need of one run's manifest."""

    crawl_id: str
    job: str  #: crawl, reextract, backfill (the run's ARCHIVE_JOB)
    status: str  #: complete, partial, failed, unreachable, incomplete
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict = field(default_factory=dict)
    sites: dict | None = None  #: per-site counts (``pipelines/site_counts.py``); None in older manifests
    unreachable_sites: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def run_keys(store) -> list[str]:
    """Keys of every run manifest, newest first."""
    return sorted((key for key in store.list(RUNS_PREFIX) if key.endswith(".json")), reverse=True)


def load_runs(store, *, limit: int | None = None) -> list[RunSummary]:
    """The newest ``limit`` runs (all when None), newest first."""
    keys = run_keys(store)[:limit] if limit else run_keys(store)
    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="runs-read") as pool:
        loaded = list(pool.map(lambda key: _load(store, key), keys))
    return [run for run in loaded if run is not None]


def _load(store, key: str) -> RunSummary | None:
    try:
        manifest = json.loads(store.get_bytes(key))
        return summary(manifest)
    except Exception as exc:  # a manifest someone broke: say which, read the others
        logger.warning("run manifest %s could not be read: %s: %s", key, type(exc).__name__, exc)
        return None


def summary(manifest: dict) -> RunSummary:
    return RunSummary(
        crawl_id=manifest["crawl_id"],
        job=(manifest.get("settings") or {}).get("ARCHIVE_JOB") or "crawl",
        status=manifest.get("status") or "unknown",
        started_at=_instant(manifest.get("started_at")),
        finished_at=_instant(manifest.get("finished_at")),
        counts=manifest.get("counts") or {},
        sites=manifest.get("sites"),
        unreachable_sites=list(manifest.get("unreachable_sites") or []),
        errors=list(manifest.get("errors") or []),
    )


def _instant(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None
