"""Scrapy's offsite filter, refusing where the request's errback sees it.

Scrapy's ``OffsiteMiddleware`` also refuses an off-site request when it is
scheduled, and a request refused there reaches no errback: a redirect to
another site would vanish. The spider only requests on-site URLs, so what
this filter catches are redirects; refused in the downloader instead, each
becomes a ``rejects`` row with reason ``offsite``.
"""

from __future__ import annotations

from scrapy.downloadermiddlewares.offsite import OffsiteMiddleware
from scrapy.exceptions import IgnoreRequest


class OffsiteRefused(IgnoreRequest):
    reject_reason = "offsite"


class RecordedOffsiteMiddleware(OffsiteMiddleware):
    def request_scheduled(self, request, spider) -> None:
        """Scheduled as any request: ``process_request`` refuses it in the downloader, errback included."""

    def process_request(self, request, spider=None) -> None:
        try:
            super().process_request(request)
        except IgnoreRequest as exc:
            raise OffsiteRefused(str(exc)) from None
