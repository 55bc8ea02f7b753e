"""A static site served on loopback: the offline demo and the tests crawl it.

The server binds 127.0.0.1 on a port the OS picks, serves an in-memory map of
paths to pages with an ETag (answering 304 to a matching If-None-Match, as
static file servers do), and counts every request and answer so tests can
assert what was fetched, or wait for one (``wait_for``). A page can be held
back (``Page.hold``): its answer waits until the event is set, so a test can
make one page come only after others, or keep a crawl running until it has
seen what it waits for.

A page given a ``last_modified`` time is served as nginx serves a static file:
``Last-Modified`` and an ETag made of the file's mtime and size, and conditional
requests answered by nginx's not_modified filter (``if_modified_since exact``).
Every request is also kept in order in ``LocalSite.log`` with the validators it
carried.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(kw_only=True, slots=True)
class Page:
    """One resource of the site: body bytes, content type, status and extra headers."""

    body: bytes  #: sent as is (already compressed when headers say Content-Encoding)
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    sized: bool = True  #: False: no Content-Length; the body is streamed and the connection closed after it
    delay: float = 0.0  #: seconds to wait before answering this page (on top of the site's delay)
    #: the file's mtime (UTC): a 200 page then carries Last-Modified and an nginx ETag and answers
    #: conditional requests as nginx does; None: a content-hash ETag, 304 on a matching If-None-Match only
    last_modified: datetime | None = None
    hold: threading.Event | None = None  #: the answer waits until this event is set


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One request as the site saw it: path with query, the status answered, the validators sent."""

    path: str
    status: int
    if_none_match: str | None
    if_modified_since: str | None
    user_agent: str | None = field(default=None, compare=False)  #: the client's User-Agent: which crawler asked


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def http_date(moment: datetime) -> str:
    """``moment`` as an HTTP date (``Sun, 29 Nov 2026 06:00:00 GMT``); a naive datetime is taken as UTC."""
    return format_datetime(_utc(moment), usegmt=True)


def nginx_etag(moment: datetime, size: int) -> str:
    """The ETag nginx gives a static file: ``"<mtime seconds in hex>-<size in hex>"``."""
    return f'"{int(_utc(moment).timestamp()):x}-{size:x}"'


def not_modified(mtime: datetime, etag: str, if_none_match: str | None, if_modified_since: str | None
                 ) -> bool:
    """nginx's not_modified filter (``if_modified_since exact``) for a 200 answer: 304 when a validator is
    present, an If-Modified-Since (if any) names exactly ``mtime`` and an If-None-Match (if any) is ``*``
    or lists ``etag`` (comma-separated, ``W/`` ignored on either side, as ``ngx_http_test_if_match``)."""
    if if_none_match is None and if_modified_since is None:
        return False
    if if_modified_since is not None:
        try:
            since = _utc(parsedate_to_datetime(if_modified_since))  # nginx compares the parsed time
        except (TypeError, ValueError, IndexError):
            return False
        if int(since.timestamp()) != int(_utc(mtime).timestamp()):
            return False
    if if_none_match is not None and if_none_match != "*":
        wanted = etag.removeprefix("W/")
        if not any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(",")):
            return False
    return True


class LocalSite:
    """Serve ``pages`` (path with query -> Page) on ``host`` (127.0.0.1 unless another loopback address), port 0.

    ``pages`` may be filled after ``start()``, once the base URL is known, since
    sitemaps and feeds hold absolute URLs.
    """

    def __init__(self, pages: dict[str, Page] | None = None, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, Page] = dict(pages or {})
        self.host = host
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()  #: (path, status) of every answer, counted once written
        self.log: list[LogEntry] = []  #: every request, in order, logged before its answer is sent
        self.delay = 0.0  #: seconds to wait before each answer (a slow site)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  #: notified on every request and every answer sent
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the site is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with site._changed:
                    site.requests[self.path] += 1
                    site._changed.notify_all()
                if site.delay:
                    time.sleep(site.delay)
                page = site.pages.get(self.path)
                if page is None:
                    page = Page(body=b"<html><body><h1>Not found</h1></body></html>", status=404)
                if page.delay:
                    time.sleep(page.delay)
                if page.hold is not None:
                    page.hold.wait()
                if_none_match = self.headers.get("If-None-Match")
                if_modified_since = self.headers.get("If-Modified-Since")
                if page.last_modified is None:
                    etag = '"' + hashlib.sha1(page.body).hexdigest()[:16] + '"'  # as static file servers do
                    unchanged = page.status == 200 and if_none_match == etag
                elif page.status == 200:  # nginx: validators on files only, not on redirects or errors
                    etag = nginx_etag(page.last_modified, len(page.body))
                    unchanged = not_modified(page.last_modified, etag, if_none_match, if_modified_since)
                else:
                    etag, unchanged = None, False
                if unchanged:
                    self._answer(304, page, etag, b"")
                else:
                    self._answer(page.status, page, etag, page.body)

            def _answer(self, status: int, page: Page, etag: str | None, body: bytes) -> None:
                with site._lock:  # before the answer: a client that has it finds it logged
                    site.log.append(LogEntry(self.path, status, self.headers.get("If-None-Match"),
                                             self.headers.get("If-Modified-Since"), self.headers.get("User-Agent")))
                self.send_response(status)
                self.send_header("Content-Type", page.content_type)
                if page.sized:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                if etag is not None:
                    self.send_header("ETag", etag)
                if page.last_modified is not None and page.status == 200:
                    self.send_header("Last-Modified", http_date(page.last_modified))
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                view = memoryview(body)
                try:
                    for start in range(0, len(body), 2**20):
                        self.wfile.write(view[start:start + 2**20])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (a size limit): not the server's error
                with site._changed:
                    site.statuses[(self.path, status)] += 1
                    site._changed.notify_all()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fetched(self, path: str) -> int:
        """How many times ``path`` (with its query) was requested."""
        with self._lock:
            return self.requests[path]

    def wait_for(self, condition, timeout: float) -> bool:
        """Wait until ``condition(site)`` holds, checked at every request and every answer sent (under the
        site's lock, so ``requests`` and ``statuses`` are read consistently); False if ``timeout`` s passed."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout)

    def __enter__(self) -> "LocalSite":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
