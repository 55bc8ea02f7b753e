"""Backfill: WARC files of other crawls (Common Crawl's CC-NEWS, or any) read as a stream, record by record.

``warc_sources`` lists what to read: local files or folders, ``s3://`` URIs, ``http(s)://`` URLs, or a CC-NEWS
month through its ``warc.paths.gz`` listing. ``open_source`` opens one as a stream, never downloaded whole.
``records`` cuts the stream into its gzip members (a WARC file of Common Crawl, and of this archive, gzips every
record on its own) and parses each alone with warcio, so one bad member costs that member only: a member that
does not inflate is skipped to the next gzip header, a truncated file ends with its last whole record, and
every record comes out with its offset and length in the file (one ranged read fetches it again). Each is a
``SourceRecord`` (a response to hand on) or a ``BadRecord`` (the reason, to count and record), or a
``SkippedRecord`` (not a page of the sites, not a response, out of the date range: counted only).

Which hosts are kept is the sites' business (exact host or registered domain, never a substring), decided by
the caller's ``keep``.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator

from pipelines.exceptions import ArchiveConfigError

MAGIC = b"\x1f\x8b\x08"
_FEED = 64 * 2**10  #: compressed bytes handed to zlib at a time
CC_NEWS_LISTING = "crawl-data/CC-NEWS/{month}/warc.paths.gz"
_CC_NEWS_NAME = re.compile(r"CC-NEWS-(\d{8})\d{6}-\d+\.warc\.gz$")
_MONTH = re.compile(r"^\d{4}/\d{2}$")


class SourceError(OSError):
    """A source that cannot be listed or opened (the reason in one line)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    offset: int
    length: int
    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes  #: decoded of its transfer and content encodings (warcio)
    warc_date: datetime


@dataclass(frozen=True, slots=True)
class BadRecord:
    offset: int
    length: int
    reason: str  #: truncated, gzip_error, too_large, digest_mismatch, bad_http_headers, revisit, not_http, bad_record
    detail: str
    url: str | None = None
    warc_date: datetime | None = None


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    offset: int
    reason: str  #: not_response (warcinfo, request, metadata), other_host, out_of_range, http_status


def warc_sources(sources: list[str], *, cc_news: str | None = None, cc_news_base: str = "https://data.commoncrawl.org/",
                 read_bytes: Callable[[str], bytes] | None = None) -> list[str]:
    """The WARC files to read, in order: each local folder's ``*.warc.gz`` (sorted), files and URIs as given, then
    the CC-NEWS month ``YYYY/MM``'s files from its listing under ``cc_news_base`` (``s3://commoncrawl/`` or
    ``https://data.commoncrawl.org/``), read with ``read_bytes``."""
    found: list[str] = []
    for source in sources:
        if "://" in source:
            found.append(source)
            continue
        path = Path(source)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*.warc.gz")))
        elif path.is_file():
            found.append(str(path))
        else:
            raise SourceError(f"no such WARC file or folder: {source}")
    if cc_news:
        check_month(cc_news)
        base = cc_news_base if cc_news_base.endswith("/") else cc_news_base + "/"
        listing = base + CC_NEWS_LISTING.format(month=cc_news)
        try:
            lines = gzip.decompress(read_bytes(listing)).decode("utf-8").split()
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read the CC-NEWS listing {listing}: {exc}") from None
        found.extend(base + line.lstrip("/") for line in lines if line.strip())
    return found


def check_month(month: str) -> str:
    """A CC-NEWS month, YYYY/MM; ArchiveConfigError otherwise (refused at start-up)."""
    if not _MONTH.match(month) or not 1 <= int(month[5:]) <= 12:
        raise ArchiveConfigError(f"--cc-news takes a month, YYYY/MM, not {month!r}")
    return month


def file_day(uri: str) -> date | None:
    """The day a CC-NEWS file was written, from its name (``CC-NEWS-20261101123456-00001.warc.gz``)."""
    match = _CC_NEWS_NAME.search(urlsplit(uri).path or uri)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def gzip_members(read: Callable[[int], bytes], *, max_bytes: int, chunk: int = 2**20) -> Iterator[tuple]:
    """The stream's gzip members, one at a time: (offset, length, inflated bytes or None, error or None). Memory
    holds one member's inflated bytes, at most ``max_bytes`` (a larger member is read through and reported
    ``too_large``) and a chunk of the compressed stream; the stream is inflated in place (a memoryview), fed to
    zlib a slice at a time, so nothing is copied per member."""
    buf = bytearray()
    pos = 0  # where the unread bytes start in buf
    base = 0  # offset in the stream of buf[pos]
    eof = False

    def available() -> int:
        return len(buf) - pos

    def fill(size: int) -> None:
        nonlocal eof, pos
        if available() >= size or eof:
            return
        if pos:  # compacted once per refill, not once per member
            del buf[:pos]
            pos = 0
        while len(buf) < size and not eof:
            data = read(chunk)
            if data:
                buf.extend(data)
            else:
                eof = True

    def advance(count: int) -> None:
        nonlocal pos, base
        pos += count
        base += count

    def resync(skip: int) -> None:
        """Drop bytes up to the next gzip header found ``skip`` bytes on or later."""
        advance(min(skip, available()))
        while True:
            found = buf.find(MAGIC, pos)
            if found >= 0:
                advance(found - pos)
                return
            keep = min(available(), len(MAGIC) - 1)  # a header may straddle two reads
            advance(available() - keep)
            if eof:
                advance(available())
                return
            fill(available() + chunk)

    while True:
        fill(len(MAGIC))
        if not available():
            return
        start = base
        if buf[pos:pos + len(MAGIC)] != MAGIC:
            resync(1)
            yield start, base - start, None, "gzip_error"
            continue
        inflater = zlib.decompressobj(31)
        out: bytearray | None = bytearray()
        size = 0
        while True:
            if not available():
                fill(chunk)
                if not available():
                    rest = inflater.flush()  # output zlib still held back (a member that ended at the last byte)
                    if inflater.eof and out is not None and size + len(rest) <= max_bytes:
                        yield start, base - start, bytes(out + rest), None
                    else:
                        yield start, base - start, None, "too_large" if inflater.eof else "truncated"
                    return
            feed = memoryview(buf)[pos:pos + _FEED]
            try:
                piece = inflater.decompress(feed, 4 * _FEED)  # bounded: a gzip bomb inflates a piece at a time
            except zlib.error:
                feed.release()
                resync(1)
                yield start, base - start, None, "gzip_error"
                break
            consumed = len(feed) - len(inflater.unused_data if inflater.eof else inflater.unconsumed_tail)
            feed.release()
            advance(consumed)
            size += len(piece)
            if out is not None and size <= max_bytes:
                out.extend(piece)
            else:
                out = None
            if inflater.eof:
                yield start, base - start, (bytes(out) if out is not None else None), \
                    (None if out is not None else "too_large")
                break


def records(read: Callable[[int], bytes], *, keep: Callable[[str], bool], max_bytes: int, chunk: int = 2**20,
            since: date | None = None, until: date | None = None,
            skip: Callable[[int], bool] = lambda offset: False) -> Iterator[SourceRecord | BadRecord | SkippedRecord]:
    """Every record of the stream, as one outcome each (see the module's doc). ``keep(url)``: whether the URL is
    one of the sites'; ``since``/``until``: the WARC-Date's day range (both included); ``skip(offset)``: a
    record already done (a resumed backfill), passed over without being parsed."""
    for offset, length, data, error in gzip_members(read, max_bytes=max_bytes, chunk=chunk):
        if skip(offset):  # (a bad record already recorded too)
            continue
        if error is not None:
            detail = {"truncated": "the file ends inside this record", "gzip_error": "not a gzip member that inflates",
                      "too_large": f"the record inflates to over {max_bytes} bytes"}[error]
            yield BadRecord(offset, length, error, detail)
            continue
        yield parse_member(data, offset, length, keep=keep, since=since, until=until)


def parse_member(data: bytes, offset: int, length: int, *, keep: Callable[[str], bool], since: date | None,
                 until: date | None) -> SourceRecord | BadRecord | SkippedRecord:
    """One inflated record, parsed alone (warcio), its digests checked. A record that is not a response, or of
    another host, is told from its WARC header block alone (most of a CC-NEWS file), without warcio."""
    kind, target = _peek(data)
    if kind is not None and kind not in ("response", "revisit"):
        return SkippedRecord(offset, "not_response")
    if target is not None and urlsplit(target).scheme in ("http", "https") and not keep(target):
        return SkippedRecord(offset, "other_host")
    url = when = None
    try:
        iterator = ArchiveIterator(io.BytesIO(data), check_digests=True)
        record = next(iterator, None)
        if record is None:
            return BadRecord(offset, length, "bad_record", "no WARC record in this gzip member")
        url = record.rec_headers.get_header("WARC-Target-URI")
        when = _warc_date(record.rec_headers.get_header("WARC-Date"))
        if record.rec_type not in ("response", "revisit"):
            return SkippedRecord(offset, "not_response")
        if not url or urlsplit(url).scheme not in ("http", "https") or record.http_headers is None:
            return BadRecord(offset, length, "not_http", f"a {record.rec_type} record of {url!r}", url, when)
        if not keep(url):
            return SkippedRecord(offset, "other_host")
        if when is not None and ((since and when.date() < since) or (until and when.date() > until)):
            return SkippedRecord(offset, "out_of_range")
        if record.rec_type == "revisit":
            return BadRecord(offset, length, "revisit", "a revisit record holds no page", url, when)
        try:
            status = int(record.http_headers.get_statuscode())
        except (TypeError, ValueError):
            return BadRecord(offset, length, "bad_http_headers",
                             f"status line {record.http_headers.statusline!r}", url, when)
        body = record.content_stream().read()
        iterator.read_to_end(record)
        if getattr(record, "digest_checker", None) is not None and record.digest_checker.passed is False:
            problems = "; ".join(str(p) for p in record.digest_checker.problems)[:300]
            return BadRecord(offset, length, "digest_mismatch", problems or "a digest does not match", url, when)
    except Exception as exc:  # warcio's parsing of a broken header block, a bad chunked or gzip body...
        return BadRecord(offset, length, "bad_http_headers" if url else "bad_record",
                         f"{type(exc).__name__}: {exc}"[:300], url, when)
    if status != 200:
        return SkippedRecord(offset, "http_status")
    return SourceRecord(offset, length, url, status, record.http_headers.headers, body,
                        when or datetime.now(timezone.utc))


def _peek(data: bytes) -> tuple[str | None, str | None]:
    """WARC-Type and WARC-Target-URI from a record's header block (None when not found plainly)."""
    end = data.find(b"\r\n\r\n", 0, 16384)
    if not data.startswith(b"WARC/") or end < 0:
        return None, None
    kind = target = None
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"warc-type":
            kind = value.strip().decode("latin-1")
        elif name == b"warc-target-uri":
            target = value.strip().decode("latin-1").strip("<>")
    return kind, target


def _warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
