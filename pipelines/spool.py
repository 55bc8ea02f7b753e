"""The spool: where closed files wait, on local disk, until the store has them.

Each run writes under ``<spool root>/<crawl_id>/`` with the archive's own key
layout, and holds an exclusive lock on ``<crawl_id>/.lock`` while it lives. A
run folder that is left behind (the store was unreachable, or the process
died) and whose lock is free belongs to nobody: the next run publishes its
complete files under the same keys and commits them to their tables, discards
its ``.inprogress`` files (those rows were never committed, so their pages are
fetched again), and publishes its manifest last.

A file stays in the spool until its table commit is made: before committing,
its commit number is written beside it (``<name>.parquet.commit.json``, the
intent), so that whoever commits it after a crash uses the same number, and the
table's transaction version tells whether that commit was made already.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.storage import write_atomically

MANIFEST_DIR = "runs"


@dataclass(frozen=True, slots=True)
class SpooledFile:
    key: str
    path: Path


class RunSpool:
    """This run's spool folder, locked for the life of the run."""

    def __init__(self, root: Path, crawl_id: str) -> None:
        self.root = root
        self.crawl_id = crawl_id
        self.path = root / crawl_id
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / ".lock", "w")  # noqa: SIM115 (held for the life of the run)
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def manifest_path(self) -> Path:
        return self.path / MANIFEST_DIR / f"{self.crawl_id}.json"

    def release(self) -> None:
        """Unlock; remove the folder when nothing is left in it."""
        self._lock.close()
        remove_if_empty(self.path)


def leftover_runs(root: Path, *, exclude: str) -> list[tuple[Path, object]]:
    """Run folders under ``root`` whose owner is gone, each with its lock held: (folder, lock handle)."""
    found = []
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != exclude):
        lock = open(folder / ".lock", "a")  # noqa: SIM115
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()  # a live run owns it
            continue
        found.append((folder, lock))
    return found


def complete_files(folder: Path) -> list[SpooledFile]:
    """The closed Parquet files in a run folder, by key; unfinished ``.inprogress`` files are deleted."""
    files = []
    for path in sorted(folder.rglob("*")):
        if path.name.endswith(".inprogress"):
            path.unlink()
        elif path.is_file() and path.suffix == ".parquet":
            files.append(SpooledFile(path.relative_to(folder).as_posix(), path))
    return files


INTENT_SUFFIX = ".commit.json"


def intent_path(path: Path) -> Path:
    """Where the commit intent of the spooled file ``path`` is kept."""
    return path.with_name(path.name + INTENT_SUFFIX)


def write_intent(path: Path, intent: dict) -> None:
    """Record, durably, the commit a spooled file is about to be part of."""
    write_atomically(intent_path(path), json.dumps(intent).encode(), staging=path.with_name(path.name + ".intent.tmp"))


def read_intent(path: Path) -> dict | None:
    target = intent_path(path)
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def remove_committed(path: Path) -> None:
    """A committed file leaves the spool, its intent after it."""
    path.unlink(missing_ok=True)
    intent_path(path).unlink(missing_ok=True)


def orphan_intents(folder: Path) -> list[Path]:
    """Intents whose file is gone (removed after its commit, before its intent): nothing left to do for them."""
    return [p for p in folder.rglob("*" + INTENT_SUFFIX) if not p.with_name(p.name[: -len(INTENT_SUFFIX)]).exists()]


def complete_warc_files(folder: Path) -> list[SpooledFile]:
    """The closed WARC files in a run folder, by key (an unfinished one was deleted by ``complete_files``: the rows
    that point into it were never closed either)."""
    return [SpooledFile(path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*.warc.gz"))]


def spooled_manifest(folder: Path) -> tuple[Path, dict] | None:
    paths = sorted((folder / MANIFEST_DIR).glob("*.json"))
    if not paths:
        return None
    return paths[0], json.loads(paths[0].read_text(encoding="utf-8"))


def write_json(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, staging=path.with_suffix(".json.tmp"))


def remove_if_empty(root: Path) -> None:
    """Remove ``root`` and its sub-folders when they hold no file but a lock."""
    if not root.is_dir():
        return
    lock = root / ".lock"
    if not any(p.is_file() and p != lock for p in root.rglob("*")):
        lock.unlink(missing_ok=True)
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            folder.rmdir()
        root.rmdir()
