"""The store an ``ARCHIVE_URI`` names: a folder (``storage.LocalStore``) or S3 (``s3_store.S3Store``), chosen by
its scheme; anything else is refused with the reason, before any page is fetched."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipelines.exceptions import BadArchiveURI
from pipelines.storage import ArchiveStore, LocalStore, redact


def store_from_uri(uri: str, s3_options=None) -> ArchiveStore:
    """The store for ``uri``: a folder path, ``file://`` URI or ``s3://bucket/prefix`` (with ``s3_options``,
    an ``S3Options``). Anything else is refused with the reason."""
    if not uri or not uri.strip():
        raise BadArchiveURI("ARCHIVE_URI is empty; give a folder path, file:// URI or s3://bucket/prefix")
    uri = uri.strip()
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise BadArchiveURI(f"file:// URI with a host is not a local folder: {uri!r}")
        path = unquote(parts.path)
        if not path:
            raise BadArchiveURI(f"file:// URI without a path: {uri!r}")
        return LocalStore(Path(path))
    if scheme == "s3":  # boto3 imported only for an S3 archive (~9 MB of a local crawl's memory otherwise)
        from pipelines.s3_store import S3Store

        return S3Store.from_uri(uri, s3_options)
    if scheme and len(scheme) > 1 and ("://" in uri or scheme in ("s3a", "s3n", "gs", "gcs", "az", "abfs")):
        raise BadArchiveURI(
            f"unknown archive scheme {scheme!r} in {redact(uri)!r}; use a folder path, file:// or s3://bucket/prefix"
        )
    return LocalStore(Path(uri).expanduser().absolute())
