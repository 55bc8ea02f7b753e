"""An archive in S3 or an S3-compatible store (MinIO, Ceph, R2...), through boto3.

Credentials and endpoint come the way every AWS tool takes them (boto3's
default chain; ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``); settings may
override endpoint, region, addressing style, storage class, server-side
encryption and the retry mode. Uploads use boto3's managed transfer
(multipart for large files; s3transfer aborts a failed multipart upload, and
a leftover one for the same key is aborted before a retry). A file is
verified after upload, by size, by its SHA-256 in the object's metadata and by
an ETag computed locally the way S3 computes it (MD5, or MD5 of part MD5s),
before the local copy is deleted. Publishing an object that is already there
with the same SHA-256 is a no-op, so a re-upload never makes a second copy.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
from s3transfer.utils import ChunksizeAdjuster

from pipelines.exceptions import BadArchiveURI, PublishError
from pipelines.storage import PublishedFile, check_key, redact

logger = logging.getLogger(__name__)

#: S3 bucket naming rules (3-63 characters, lower case, digits, dots and hyphens)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
#: by the key's last suffix: Parquet data files, WARC files (gzipped records), their CDXJ indexes
CONTENT_TYPES = {"parquet": PARQUET_CONTENT_TYPE, "gz": "application/warc", "cdxj": "text/plain; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class S3Options:
    """Settings that shape the S3 client and uploads (``ARCHIVE_S3_*``); empty means boto3's default."""

    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None  #: auto, path or virtual
    storage_class: str | None = None  #: STANDARD, STANDARD_IA, INTELLIGENT_TIERING...
    sse: str | None = None  #: AES256 or aws:kms
    sse_kms_key_id: str | None = None
    retry_mode: str = "standard"  #: standard or adaptive
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    multipart_threshold: int = 64 * 2**20
    multipart_chunksize: int = 16 * 2**20
    max_concurrency: int = 4


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket/prefix``; the prefix has no leading or trailing slash."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        raise BadArchiveURI(f"not an s3:// URI: {redact(uri)!r}")
    if "@" in parts.netloc:
        raise BadArchiveURI("an s3:// URI must not carry credentials; use the AWS credential chain")
    bucket = parts.netloc
    if not bucket:
        raise BadArchiveURI(f"s3:// URI without a bucket: {uri!r}; use s3://bucket/prefix")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise BadArchiveURI(f"invalid S3 bucket name {bucket!r} in {uri!r}")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, prefix


def s3_etag(path: Path, *, multipart_threshold: int, multipart_chunksize: int) -> str:
    """The ETag S3 gives ``path`` uploaded by boto3's managed transfer with these sizes (without SSE-KMS)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size < multipart_threshold:
            return hashlib.md5(handle.read(), usedforsecurity=False).hexdigest()
        chunk = ChunksizeAdjuster().adjust_chunksize(multipart_chunksize, size)
        digests = [hashlib.md5(part, usedforsecurity=False).digest() for part in iter(lambda: handle.read(chunk), b"")]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


class S3Store:
    """Publishes closed files under ``s3://bucket/prefix/<key>``."""

    def __init__(self, *, bucket: str, prefix: str, client, options: S3Options, session=None) -> None:
        self.session = session  #: the boto3 session whose credential chain the client uses
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.options = options
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
            max_concurrency=options.max_concurrency,
            use_threads=True,
        )

    @classmethod
    def from_uri(cls, uri: str, options: S3Options | None = None) -> "S3Store":
        options = options or S3Options()
        bucket, prefix = parse_s3_uri(uri)
        config = Config(
            retries={"mode": options.retry_mode, "max_attempts": options.max_attempts},
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            s3={"addressing_style": options.addressing_style or "auto"},
            request_checksum_calculation="when_required",  # S3-compatible stores reject boto3's default checksums
            response_checksum_validation="when_required",
            user_agent_extra="news-archive",
        )
        session = boto3.session.Session()
        client = session.client(
            "s3", endpoint_url=options.endpoint_url or None, region_name=options.region or None, config=config
        )
        return cls(bucket=bucket, prefix=prefix, client=client, options=options, session=session)

    def _key(self, key: str) -> str:
        return check_key(f"{self.prefix}/{check_key(key)}" if self.prefix else check_key(key))

    def check_writable(self) -> None:
        """Refuse, before any fetch, a bucket that does not exist, is not ours, or credentials that are missing."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise BadArchiveURI(
                f"no AWS credentials found for {self.uri} (environment, profile, container or instance role)"
            ) from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket") or status == 404:
                raise BadArchiveURI(f"bucket {self.bucket!r} does not exist ({self.uri})") from exc
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
                raise BadArchiveURI(f"access to bucket {self.bucket!r} denied ({code}); check the credentials") from exc
            raise BadArchiveURI(f"cannot use {self.uri}: {redact(str(exc))}") from exc
        except BotoCoreError as exc:
            raise BadArchiveURI(f"cannot reach the S3 endpoint for {self.uri}: {redact(str(exc))}") from exc

    def remove_stale_staging(self) -> int:
        """Nothing to do: S3 has no staging objects; a failed multipart upload is aborted by s3transfer or
        before the retry of its key (and by the bucket's lifecycle rule)."""
        return 0

    def default_spool_dir(self) -> Path:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        digest = hashlib.sha256(self.uri.encode()).hexdigest()[:16]
        return cache / "news-archive" / "spool" / digest

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        start = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][start:] for obj in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not list {prefix} in {self.uri}: {redact(str(exc))}") from None
        return sorted(keys)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not read {key} from {self.uri}: {redact(str(exc))}") from None

    def local_path(self, key: str, scratch: Path) -> Path:
        scratch.mkdir(parents=True, exist_ok=True)
        target = scratch / key.replace("/", "_")
        try:
            self.client.download_file(self.bucket, self._key(key), str(target), Config=self.transfer)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise PublishError(f"could not read {key} from {self.uri}: {redact(str(exc))}") from None
        return target

    def open_input(self, key: str) -> "S3RangeReader":
        """A seekable reader of ``key``: each read is one ranged GET, so a Parquet footer and one row group
        cost a few requests instead of a download of the file."""
        full_key = self._key(key)
        try:
            head = self._head(full_key)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not read {key} from {self.uri}: {redact(str(exc))}") from None
        if head is None:
            raise PublishError(f"{key} is not in {self.uri}")
        return S3RangeReader(self.client, self.bucket, full_key, head["ContentLength"], etag=head.get("ETag"))

    def exists(self, key: str) -> bool:
        return self._head(self._key(key)) is not None

    def table_location(self, dataset: str) -> tuple[str, dict[str, str]]:
        """The table's ``s3://`` URI and deltalake's storage options, from this store's boto3 client: the same
        endpoint, region, addressing style and credentials (boto3's chain, resolved now: deltalake looks for none
        of its own), commits by conditional PUT (no DynamoDB lock), the same encryption and timeouts."""
        endpoint = self.client.meta.endpoint_url
        credentials = (self.session or boto3.session.Session()).get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": self.client.meta.region_name or "us-east-1",
            "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true" if self._virtual_hosted(endpoint) else "false",
            "AWS_EC2_METADATA_DISABLED": "true",
            "conditional_put": "etag",
            "timeout": f"{max(1, int(self.options.read_timeout))}s",
            "connect_timeout": f"{max(1, int(self.options.connect_timeout))}s",
            "max_retries": str(self.options.max_attempts),  # retries of each request, as boto3's max attempts
        }
        if frozen is not None:
            options.update(AWS_ACCESS_KEY_ID=frozen.access_key, AWS_SECRET_ACCESS_KEY=frozen.secret_key)
            if frozen.token:
                options["AWS_SESSION_TOKEN"] = frozen.token
        if self.options.sse:
            options["AWS_SERVER_SIDE_ENCRYPTION"] = self.options.sse
            if self.options.sse_kms_key_id:
                options["AWS_SSE_KMS_KEY_ID"] = self.options.sse_kms_key_id
        return f"s3://{self.bucket}/{self._key(dataset)}", options

    def _virtual_hosted(self, endpoint: str) -> bool:
        style = self.options.addressing_style or "auto"
        return style == "virtual" or (style == "auto" and urlsplit(endpoint).hostname.endswith(".amazonaws.com"))

    def _head(self, full_key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise

    def _extra_args(self, *, sha256: str, rows: int | None, content_type: str) -> dict:
        args = {"ContentType": content_type, "Metadata": {"sha256": sha256}}
        if rows is not None:
            args["Metadata"]["rows"] = str(rows)
        if self.options.storage_class:
            args["StorageClass"] = self.options.storage_class
        if self.options.sse:
            args["ServerSideEncryption"] = self.options.sse
            if self.options.sse_kms_key_id:
                args["SSEKMSKeyId"] = self.options.sse_kms_key_id
        return args

    def abort_incomplete_uploads(self, full_key: str) -> int:
        """Abort multipart uploads of ``full_key`` left by an earlier failed attempt; how many were aborted."""
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_key):
            for upload in page.get("Uploads", []):
                if upload["Key"] == full_key:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    def publish(self, local_path: Path, key: str, *, rows: int, sha256: str, keep_local: bool = False) -> PublishedFile:
        full_key = self._key(key)
        size = local_path.stat().st_size
        try:
            head = self._head(full_key)
            if head is not None and head.get("Metadata", {}).get("sha256") == sha256 and head["ContentLength"] == size:
                logger.info("%s is already in the store with the same SHA-256; not uploaded again", key)
            else:
                if self.abort_incomplete_uploads(full_key):
                    logger.warning("aborted an incomplete multipart upload of %s left by an earlier attempt", key)
                content_type = CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")
                self.client.upload_file(
                    str(local_path), self.bucket, full_key, Config=self.transfer,
                    ExtraArgs=self._extra_args(sha256=sha256, rows=rows, content_type=content_type),
                )
                self._verify(local_path, full_key, size=size, sha256=sha256)
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise PublishError(f"could not upload {key} to {self.uri}: {redact(str(exc))}") from None
        if not keep_local:
            local_path.unlink()
        return PublishedFile(key=key, rows=rows, bytes=size, sha256=sha256)

    def _verify(self, local_path: Path, full_key: str, *, size: int, sha256: str) -> None:
        head = self._head(full_key)
        if head is None:
            raise PublishError(f"{full_key} is missing after upload")
        if head["ContentLength"] != size or head.get("Metadata", {}).get("sha256") != sha256:
            raise PublishError(f"{full_key}: stored size or SHA-256 differs from the local file")
        if self.options.sse != "aws:kms":  # SSE-KMS ETags are not MD5s
            expected = s3_etag(local_path, multipart_threshold=self.options.multipart_threshold,
                               multipart_chunksize=self.options.multipart_chunksize)
            if head["ETag"].strip('"') != expected:
                raise PublishError(f"{full_key}: stored ETag {head['ETag']} differs from the local file's {expected}")

    def put_bytes(self, key: str, data: bytes) -> None:
        full_key = self._key(key)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=full_key, Body=data,
                ContentMD5=base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode(),
                **self._extra_args(sha256=sha256, rows=None, content_type="application/json"),
            )
            head = self._head(full_key)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not write {key} to {self.uri}: {redact(str(exc))}") from None
        if head is None or head["ContentLength"] != len(data) or head.get("Metadata", {}).get("sha256") != sha256:
            raise PublishError(f"{full_key}: stored object differs from what was written")


class S3RangeReader(io.RawIOBase):
    """A read-only, seekable file over one S3 object: ``readinto`` is a ranged GET (``If-Match`` its ETag, so a
    replaced object fails instead of mixing two versions)."""

    def __init__(self, client, bucket: str, key: str, size: int, *, etag: str | None = None) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size, self._etag = client, bucket, key, size, etag
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        end = min(self._size, self._position + len(buffer))
        if end <= self._position:
            return 0
        args = {"Bucket": self._bucket, "Key": self._key, "Range": f"bytes={self._position}-{end - 1}"}
        if self._etag:
            args["IfMatch"] = self._etag
        try:
            data = self._client.get_object(**args)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"could not read {self._key}: {redact(str(exc))}") from None
        view = memoryview(buffer).cast("B")
        view[: len(data)] = data
        self._position += len(data)
        return len(data)
