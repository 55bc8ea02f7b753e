"""Storage step: closed files -> the archive, behind a small protocol chosen by the URI's scheme.

A store publishes a complete local file under a key so that it appears whole
or not at all, and writes small objects (the run manifest) the same way.
``LocalStore`` is a folder (the default, ``./archive``); ``s3_store.py`` has the
S3 store, and ``stores.py`` chooses one by the URI's scheme.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from pipelines.exceptions import BadArchiveURI, PublishError

#: characters allowed in every key segment the archive builds (ASCII only: no NUL, no lookalike, no escape)
_SAFE_KEY = re.compile(r"[A-Za-z0-9._=-]+(?:/[A-Za-z0-9._=-]+)*")
_CRAWL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_SEGMENT_BYTES = 200  #: a file name (255 bytes on common file systems) with room for the staging suffix
MAX_KEY_BYTES = 1024  #: an S3 object key, prefix included
#: ``LocalStore`` staging names, ``.<name>.<uuid4 hex>.tmp``; a killed run can leave one behind
_STAGING = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")
STALE_STAGING_SECONDS = 3600  #: staging lasts seconds; one older than this belongs to no live run
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECURITY_TOKEN")


def redact(text: str) -> str:
    """``text`` with URL user info and the values of AWS credential variables masked."""
    text = _USERINFO.sub("***@", text)
    for name in _SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


@dataclass(frozen=True, slots=True)
class PublishedFile:
    key: str  #: relative to the archive root, e.g. articles/dt=2026-11-25/<crawl_id>-00001.parquet
    rows: int
    bytes: int
    sha256: str


class ArchiveStore(Protocol):
    uri: str

    def publish(self, local_path: Path, key: str, *, rows: int, sha256: str, keep_local: bool = False) -> PublishedFile:
        """Make ``local_path`` visible under ``key``, whole; the local file is gone afterwards, unless
        ``keep_local`` (the caller removes it once the file is committed to its table)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object under ``key``, whole or not at all."""

    def exists(self, key: str) -> bool: ...

    def default_spool_dir(self) -> Path:
        """Where Parquet files are written before they are published."""

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (relative to the archive root), sorted."""

    def get_bytes(self, key: str) -> bytes:
        """The whole object under ``key``."""

    def local_path(self, key: str, scratch: Path) -> Path:
        """A local file holding the object under ``key``: the file itself, or a download into ``scratch``."""

    def open_input(self, key: str) -> BinaryIO:
        """A seekable reader of the object under ``key`` that reads only the ranges asked for."""

    def table_location(self, dataset: str) -> tuple[str, dict[str, str]]:
        """Where the Delta table of ``dataset`` is, for deltalake: its URI and storage options."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the archive root or be hidden from readers: only ``[A-Za-z0-9._=-]``
    segments of at most 200 bytes, none empty or starting with a dot (``.``, ``..``, staging names)."""
    if (not _SAFE_KEY.fullmatch(key) or len(key) > MAX_KEY_BYTES
            or any(part.startswith(".") or len(part) > MAX_SEGMENT_BYTES for part in key.split("/"))):
        raise PublishError(f"unsafe archive key refused: {key[:300]!r}")
    return key


def check_crawl_id(crawl_id: str) -> str:
    """A crawl id names files, a spool folder and the manifest: one safe segment, refused otherwise."""
    if not isinstance(crawl_id, str) or not _CRAWL_ID.fullmatch(crawl_id):
        raise BadArchiveURI(f"ARCHIVE_CRAWL_ID must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit: "
                            f"{str(crawl_id)[:200]!r}")
    return crawl_id


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(final: Path, data: bytes, *, staging: Path) -> None:
    """``data`` to ``staging``, synced, then renamed over ``final``: a reader sees the old file or the whole
    new one, never part of it; on failure the staging file is removed."""
    try:
        with open(staging, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, final)
    except OSError:
        staging.unlink(missing_ok=True)
        raise


class LocalStore:
    """An archive in a local folder. Publishing is a rename inside the folder's file system (atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = root.as_uri()

    def check_writable(self) -> None:
        """Create the root if needed and prove a file can be written there, or raise BadArchiveURI. A missing
        parent is not created: it is more likely a volume that is not mounted than a folder to make."""
        if self.root.exists() and not self.root.is_dir():
            raise BadArchiveURI(f"archive folder {self.root} is not writable: it is a file")
        if not self.root.parent.is_dir():
            raise BadArchiveURI(f"archive folder {self.root} is not writable: {self.root.parent} does not exist "
                                f"(a volume not mounted?); create it first")
        try:
            self.root.mkdir(exist_ok=True)
            probe = self.root / f".write-probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise BadArchiveURI(f"archive folder {self.root} is not writable: {exc.strerror or exc}") from exc

    def default_spool_dir(self) -> Path:
        return self.root / "_spool"

    def remove_stale_staging(self, older_than: float | None = None) -> int:
        """Delete staging files (``.<name>.<uuid>.tmp``) that killed runs left, once older than ``older_than``
        seconds by their inode change time (a hard link sets it), so a live run's staging is never touched.
        Nothing else is removed. How many were removed."""
        removed = 0
        cutoff = time.time() - (STALE_STAGING_SECONDS if older_than is None else older_than)
        for folder, folders, names in os.walk(self.root):
            if Path(folder) == self.root:
                folders[:] = [name for name in folders if name != "_spool"]
            for name in names:
                path = Path(folder, name)
                try:
                    if _STAGING.fullmatch(name) and path.lstat().st_ctime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:  # published or removed meanwhile
                    pass
        return removed

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list(self, prefix: str) -> list[str]:
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def local_path(self, key: str, scratch: Path) -> Path:
        return self._path(key)

    def open_input(self, key: str) -> BinaryIO:
        """A seekable reader of ``key``: reads fetch only the ranges asked for (a Parquet footer, a row group)."""
        return self._path(key).open("rb")

    def table_location(self, dataset: str) -> tuple[str, dict[str, str]]:
        return str(self.root.resolve() / check_key(dataset)), {}

    def publish(self, local_path: Path, key: str, *, rows: int, sha256: str, keep_local: bool = False) -> PublishedFile:
        final = self._path(key)
        size = local_path.stat().st_size
        if final.exists():
            if final.stat().st_size == size and file_sha256(final) == sha256:
                if not keep_local:  # published before, by a run that died before it could clean its spool
                    local_path.unlink()
                return PublishedFile(key=key, rows=rows, bytes=size, sha256=sha256)
            raise PublishError(f"{key} already exists in the archive with other content; refusing to overwrite it")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            try:
                os.link(local_path, staging)  # same file system: no copy
            except OSError:
                shutil.copyfile(local_path, staging)
            _fsync(staging)
            if staging.stat().st_size != size:
                raise PublishError(f"{key}: size changed while publishing")
            os.replace(staging, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            staging.unlink(missing_ok=True)
            raise PublishError(f"could not publish {key}: {exc}") from exc
        if not keep_local:
            local_path.unlink()
        return PublishedFile(key=key, rows=rows, bytes=size, sha256=sha256)

    def put_bytes(self, key: str, data: bytes) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(final, data, staging=final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp"))
        except OSError as exc:
            raise PublishError(f"could not write {key}: {exc}") from exc


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
