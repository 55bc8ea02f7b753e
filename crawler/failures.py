"""Why a request failed, as a reason for the ``rejects`` dataset.

Scrapy hands a request's errback the exception that ended it: a download error
(DNS, refused connection, timeout), a body over ``DOWNLOAD_MAXSIZE`` (cut off
while downloading, or while decompressing a gzip/brotli bomb), an error status
filtered by ``HttpErrorMiddleware``, or an ``IgnoreRequest`` from a downloader
middleware. An exception may name its own reason in a ``reject_reason``
attribute (the containment middlewares do); otherwise it is classified here.
"""

from __future__ import annotations

from dataclasses import dataclass

from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils._compression import _DecompressionMaxSizeExceeded
from twisted.internet import error as twisted_errors

_TIMEOUTS = (DownloadTimeoutError, twisted_errors.TimeoutError)
_DNS_ERRORS = (CannotResolveHostError, twisted_errors.DNSLookupError)
_CONNECTION_ERRORS = (DownloadConnectionRefusedError, twisted_errors.ConnectError, twisted_errors.ConnectionLost,
                      twisted_errors.ConnectionDone)


@dataclass(frozen=True, slots=True)
class FetchFailure:
    reason: str  #: too_large, http_error, download_timeout, dns_error, connection_error, ignored, download_error...
    detail: str
    http_status: int | None = None


def classify_failure(exc: BaseException) -> FetchFailure:
    """The reason a request ended in ``exc`` instead of a page."""
    detail = f"{type(exc).__name__}: {exc}".removesuffix(": ")[:500]
    own = getattr(exc, "reject_reason", None)
    if own:
        return FetchFailure(own, detail)
    if isinstance(exc, HttpError):
        return FetchFailure("http_error", str(exc.response.status), exc.response.status)
    # http11 cancels the download when the body passes DOWNLOAD_MAXSIZE (or its Content-Length says it will);
    # HttpCompressionMiddleware raises IgnoreRequest when decompressing passes it
    if isinstance(exc, DownloadCancelledError) or isinstance(exc.__cause__, _DecompressionMaxSizeExceeded):
        return FetchFailure("too_large", str(exc)[:500] or "the body passed DOWNLOAD_MAXSIZE while downloading")
    if isinstance(exc, _TIMEOUTS):
        return FetchFailure("download_timeout", detail)
    if isinstance(exc, _DNS_ERRORS):
        return FetchFailure("dns_error", detail)
    if isinstance(exc, _CONNECTION_ERRORS):
        return FetchFailure("connection_error", detail)
    if isinstance(exc, IgnoreRequest):
        return FetchFailure("ignored", detail)
    return FetchFailure("download_error", detail)


#: reasons that mean the site could not be reached at all (as opposed to answering with an error page)
UNREACHABLE_REASONS = frozenset({"dns_error", "connection_error", "download_timeout", "download_error",
                                 "robots_unavailable"})


def is_unreachable(outcome: FetchFailure) -> bool:
    """Whether a failed request says its site could not be reached: no address, no connection, no answer in
    time, or an answer of 5xx / 429 (also when robots.txt answered so and the site is closed for the run)."""
    if outcome.reason == "http_error":
        return outcome.http_status is not None and (outcome.http_status >= 500 or outcome.http_status == 429)
    return outcome.reason in UNREACHABLE_REASONS
