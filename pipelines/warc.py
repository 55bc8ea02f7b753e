"""Raw capture: every page a crawl fetched kept as WARC/1.1, so the archive can be re-extracted and replayed.

``WarcFile`` is the core (no Scrapy): it appends an exchange (the request the crawler sent and the response it
got) as a ``response`` record and a ``request`` record linked by ``WARC-Concurrent-To``, each record its own
gzip member (warcio, ``gzip=True``) so that one ranged read of ``(offset, length)`` gives one record; every file
starts with a ``warcinfo`` record (software, crawl id, robots policy). It rolls files at ``max_bytes`` (1 GiB, as
Common Crawl does) and on request, and hands each closed file on, with its CDXJ index (cdxj-indexer), like the
Parquet writer does: spooled under ``warc/dt=YYYY-MM-DD/<crawl_id>-<seq>.warc.gz`` until published.

Scrapy hands the crawler a body it already decompressed: the response record stores that body with the headers
rewritten as StormCrawler does (``Content-Encoding`` and ``Transfer-Encoding`` kept as
``X-Crawler-Content-Encoding``, ``X-Crawler-Transfer-Encoding``, ``Content-Length`` the body's true length, the
one received kept as ``X-Crawler-Content-Length``), so every record replays. ``WARC-Payload-Digest`` and
``WARC-Block-Digest`` are set by warcio. ``read_record`` fetches one record back with one ranged read.
"""

from __future__ import annotations

import gzip
import importlib
import io
import logging
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import GzippingWrapper, WARCWriter
from zlib_ng import zlib_ng

from pipelines.records import Exchange
from pipelines.storage import check_key, file_sha256

logger = logging.getLogger(__name__)

WARC_PREFIX = "warc/"
SOFTWARE = f"news-archive/{version('news-archive')} (warcio/{version('warcio')})"
_REWRITTEN = {"content-encoding": "X-Crawler-Content-Encoding", "transfer-encoding": "X-Crawler-Transfer-Encoding",
              "content-length": "X-Crawler-Content-Length"}


class _GzipAtLevel(GzippingWrapper):
    def __init__(self, out, level: int) -> None:  # warcio's own wrapper: zlib at level 9
        self.compressor = zlib_ng.compressobj(level, zlib_ng.DEFLATED, zlib_ng.MAX_WBITS + 16)
        self.out = out


class LevelWARCWriter(WARCWriter):
    """warcio's WARCWriter, each record its own gzip member as with ``gzip=True``, deflated by zlib-ng (the same
    gzip format, made ~2x faster) at the ``level`` given: level 6 (gzip's default) costs a page of ~350 KB ~3 ms
    of CPU against ~12 ms with warcio's zlib at 9, for files <1 % larger (``benchmarks/warc_gzip.py``)."""

    def __init__(self, filebuf, *, level: int = 6, **kwargs) -> None:
        super().__init__(filebuf, gzip=False, **kwargs)
        self.level = level

    def _write_warc_record(self, out, record):
        return super()._write_warc_record(_GzipAtLevel(out, self.level), record)


@dataclass(frozen=True, slots=True)
class WarcPointer:
    """Where a page's response record is: cc-index-table's ``warc_filename``, ``warc_record_offset``,
    ``warc_record_length``."""

    filename: str  #: key in the archive: warc/dt=YYYY-MM-DD/<crawl_id>-<seq>.warc.gz
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class ClosedWarc:
    """A complete WARC file in the spool (and its CDXJ index beside it), ready to publish."""

    key: str
    path: Path
    records: int  #: response records (pages)
    bytes: int
    sha256: str
    first_fetched_at: datetime
    last_fetched_at: datetime
    cdxj_key: str
    cdxj_path: Path


def response_headers(exchange: Exchange) -> list[tuple[str, str]]:
    """The response's headers as the record stores them: what describes the received bytes rather than the body
    kept renamed, and a true Content-Length."""
    headers = []
    for name, value in exchange.response_headers:
        renamed = _REWRITTEN.get(name.lower())
        headers.append((renamed or name, value))
    headers.append(("Content-Length", str(len(exchange.body))))
    return headers


def request_headers(exchange: Exchange) -> list[tuple[str, str]]:
    parts = urlsplit(exchange.url)
    headers = list(exchange.request_headers)
    if not any(name.lower() == "host" for name, _ in headers):
        headers.insert(0, ("Host", parts.netloc))
    return headers


@dataclass
class _Open:
    key: str
    path: Path
    handle: object
    writer: WARCWriter
    records: int = 0
    first: datetime | None = None
    last: datetime | None = None


class WarcFile:
    """This run's WARC files in the spool: appended to one exchange at a time (thread-safe), rolled at ``max_bytes``
    or by ``roll()``; each closed file goes to ``on_closed``."""

    def __init__(self, *, spool_dir: Path, crawl_id: str, max_bytes: int = 2**30,
                 on_closed: Callable[[ClosedWarc], None] | None = None, robots: str = "obey",
                 gzip_level: int = 6) -> None:
        self.gzip_level = gzip_level
        self.spool_dir = spool_dir
        self.crawl_id = crawl_id
        self.max_bytes = max_bytes
        self.on_closed = on_closed or (lambda closed: None)
        self.robots = robots
        self._lock = threading.Lock()
        self._open: _Open | None = None
        self._seq = 0
        self.closed: list[ClosedWarc] = []
        #: files given up (a write that failed), key -> why: the pointers into them lead nowhere
        self.discarded: dict[str, str] = {}

    def write_exchange(self, exchange: Exchange) -> WarcPointer:
        """Append the exchange (response record, then its request record); where the response record is."""
        with self._lock:
            current = self._open or self._start(exchange.fetched_at)
            date = exchange.fetched_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            warc_headers = {"WARC-Date": date}
            if exchange.ip_address:
                warc_headers["WARC-IP-Address"] = exchange.ip_address
            reason = _reason(exchange.status)
            response = current.writer.create_warc_record(
                exchange.url, "response", payload=io.BytesIO(exchange.body), length=len(exchange.body),
                http_headers=StatusAndHeaders(f"{exchange.status} {reason}", response_headers(exchange),
                                              protocol=exchange.protocol),
                warc_headers_dict=warc_headers,
            )
            path = urlsplit(exchange.url)
            target = (path.path or "/") + (f"?{path.query}" if path.query else "")
            request = current.writer.create_warc_record(
                exchange.url, "request", payload=io.BytesIO(b""), length=0,
                http_headers=StatusAndHeaders(f"{exchange.method} {target} {exchange.protocol}",
                                              request_headers(exchange), is_http_request=True),
                warc_headers_dict={**warc_headers,
                                   "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID")},
            )
            offset = current.handle.tell()
            try:
                current.writer.write_record(response)
                length = current.handle.tell() - offset
                current.writer.write_record(request)
                current.handle.flush()
            except BaseException as exc:  # (a full disk) the file keeps only whole exchanges, or is given up
                self._cut(current, offset, exc)
                raise
            current.records += 1
            current.first = current.first or exchange.fetched_at
            current.last = exchange.fetched_at
            pointer = WarcPointer(current.key, offset, length)
            if current.handle.tell() >= self.max_bytes:
                self._close()
            return pointer

    def roll(self) -> ClosedWarc | None:
        """Close the open file, if it holds a record: the pointers given so far are then all in closed files."""
        with self._lock:
            return self._close() if self._open is not None and self._open.records else None

    def close(self) -> ClosedWarc | None:
        with self._lock:
            if self._open is None:
                return None
            if not self._open.records:  # a warcinfo alone: nothing to keep, nothing points into it
                self._discard(None)
                return None
            return self._close()

    def _cut(self, current: _Open, offset: int, cause: BaseException) -> None:
        """Back to the end of the last whole exchange; when even that fails, the file is given up (its
        records with it: the rows that point into it are not committed, see ``ArchivePipeline``)."""
        try:
            current.handle.seek(offset)
            current.handle.truncate(offset)
        except OSError:
            logger.exception("could not cut %s back to its last whole record; it is given up", current.key)
            self._discard(cause)

    def _discard(self, cause: BaseException | None) -> None:
        """Give the open file up, nothing of it left in the spool; ``cause``: why (None: it held no record)."""
        current, self._open = self._open, None
        if current is None:
            return
        try:
            current.handle.close()
        except OSError:
            pass
        current.path.with_name(current.path.name + ".inprogress").unlink(missing_ok=True)
        current.path.with_name(current.path.name.removesuffix(".warc.gz") + ".cdxj.tmp").unlink(missing_ok=True)
        current.path.with_name(current.path.name.removesuffix(".warc.gz") + ".cdxj").unlink(missing_ok=True)
        current.path.unlink(missing_ok=True)
        if cause is not None:
            self.discarded[current.key] = f"{type(cause).__name__}: {cause}"

    def _start(self, when: datetime) -> _Open:
        self._seq += 1
        day = when.astimezone(timezone.utc).strftime("%Y-%m-%d")
        key = check_key(f"{WARC_PREFIX}dt={day}/{self.crawl_id}-{self._seq:05d}.warc.gz")
        path = self.spool_dir.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".inprogress"), "wb")  # noqa: SIM115 (kept open until rolled)
        writer = LevelWARCWriter(handle, level=self.gzip_level, warc_version="WARC/1.1")
        self._open = _Open(key=key, path=path, handle=handle, writer=writer)
        try:
            writer.write_record(writer.create_warcinfo_record(path.name, {
                "software": SOFTWARE, "format": "WARC File Format 1.1",
                "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
                "isPartOf": self.crawl_id, "robots": self.robots,
            }))
        except BaseException as exc:
            self._discard(exc)
            raise
        return self._open

    def _close(self) -> ClosedWarc:
        current = self._open
        cdxj_key = current.key.removesuffix(".warc.gz") + ".cdxj"
        cdxj_path = current.path.with_name(current.path.name.removesuffix(".warc.gz") + ".cdxj")
        try:
            current.handle.flush()
            current.handle.close()
            current.path.with_name(current.path.name + ".inprogress").rename(current.path)
            write_cdxj(current.path, cdxj_path, current.key)
        except BaseException as exc:  # nothing half-written is left in the spool: the file is given up whole
            self._discard(exc)
            raise
        self._open = None
        closed = ClosedWarc(key=current.key, path=current.path, records=current.records,
                            bytes=current.path.stat().st_size, sha256=file_sha256(current.path),
                            first_fetched_at=current.first, last_fetched_at=current.last,
                            cdxj_key=cdxj_key, cdxj_path=cdxj_path)
        self.closed.append(closed)
        self.on_closed(closed)
        return closed


def write_cdxj(warc_path: Path, cdxj_path: Path, warc_key: str) -> None:
    """The CDXJ index of a WARC file (cdxj-indexer: SURT key, timestamp, and per record its url, mime, status,
    digest, length, offset and ``filename`` = the file's key in the archive), for pywb and Wayback-style tools."""
    CDXJIndexer = cdxj_indexer()  # noqa: N806 (a class)
    with open(cdxj_path.with_name(cdxj_path.name + ".tmp"), "w", encoding="utf-8") as out:
        with open(warc_path, "rb") as source:
            CDXJIndexer(output=out, inputs=[source], filename=warc_key, sort=True).process_all()
    cdxj_path.with_name(cdxj_path.name + ".tmp").rename(cdxj_path)


_AMF = "cdxj_indexer.amf"


def cdxj_indexer() -> type:
    """cdxj-indexer's ``CDXJIndexer``, imported when a WARC file closes, and without its AMF module until a record
    needs it.

    ``cdxj_indexer`` imports ``cdxj_indexer.amf`` as it loads, to read the Flash AMF bodies of POST requests, and
    that imports pyamf and, through it, pkg_resources: ~7 of the ~9 MB cdxj-indexer adds to a crawler
    (``python benchmarks/import_memory.py``), kept for the rest of a long crawl once its first file closed. The
    archive's WARC files hold GET exchanges. So a stand-in module named ``cdxj_indexer.amf`` is put in
    ``sys.modules`` before cdxj-indexer loads; its ``amf_parse`` imports the real module and hands it the body,
    should a POST body in AMF ever be indexed (tests/test_warc.py checks both)."""
    if "cdxj_indexer.main" not in sys.modules and _AMF not in sys.modules:
        stand_in = types.ModuleType(_AMF, "cdxj-indexer's AMF module, loaded when first used (pipelines/warc.py)")

        def amf_parse(string):
            if sys.modules.get(_AMF) is stand_in:
                del sys.modules[_AMF]
            return importlib.import_module(_AMF).amf_parse(string)

        stand_in.amf_parse = amf_parse
        sys.modules[_AMF] = stand_in
    from cdxj_indexer.main import CDXJIndexer

    return CDXJIndexer


def cdxj_responses(cdxj_path: Path) -> int:
    """The response records a CDXJ index lists (a request record has no status)."""
    with open(cdxj_path, encoding="utf-8") as index:
        return sum('"status"' in line.split(" ", 2)[2] for line in index if line.strip())


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


@dataclass(frozen=True, slots=True)
class RawPage:
    """One response record read back: the URL, the HTTP status and headers, and the body as stored."""

    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    warc_headers: list[tuple[str, str]]


class WarcRecordError(ValueError):
    """A WARC record that cannot be read back whole: short, not one gzip member, a digest that does not match,
    not an HTTP response."""


def read_record(store, filename: str, offset: int, length: int) -> RawPage:
    """The response record at ``(offset, length)`` of the WARC file ``filename`` in ``store``: one ranged read
    (on S3 one GET with a Range), one gzip member, its digests checked as it is read; WarcRecordError when it
    cannot be read back whole."""
    with store.open_input(filename) as source:
        source.seek(offset)
        data = source.read(length)
    if len(data) != length:
        raise WarcRecordError(f"{filename}: the record at {offset} is {len(data)} bytes long, not {length}")
    return parse_record(data, where=f"{filename} at {offset}")


def parse_record(data: bytes, *, where: str) -> RawPage:
    """One gzipped response record, its digests checked (warcio); WarcRecordError otherwise."""
    try:
        gzip.decompress(data)  # one whole gzip member, or a clear error here
        record = next(iter(ArchiveIterator(io.BytesIO(data), check_digests="raise")), None)
        if record is None or record.rec_type != "response" or record.http_headers is None:
            raise WarcRecordError(f"{where}: not an HTTP response record")
        body = record.content_stream().read()
        status = int(record.http_headers.get_statuscode())
    except WarcRecordError:
        raise
    except Exception as exc:  # gzip, warcio's digest and parsing errors: one outcome for every broken record
        raise WarcRecordError(f"{where}: {type(exc).__name__}: {exc}") from None
    return RawPage(url=record.rec_headers.get_header("WARC-Target-URI"), status=status,
                   headers=record.http_headers.headers, body=body, warc_headers=record.rec_headers.headers)
