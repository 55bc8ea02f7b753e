"""Request fingerprints on canonical URLs, so Scrapy's duplicate filter fetches an article once
whatever tracking parameters or fragments its links carry."""

from __future__ import annotations

from scrapy.utils.request import fingerprint

from pipelines.fingerprints import canonicalize_url


class CanonicalRequestFingerprinter:
    @classmethod
    def from_crawler(cls, crawler):
        return cls()

    def fingerprint(self, request) -> bytes:
        return fingerprint(request.replace(url=canonicalize_url(request.url)))
