"""The response headers as received, kept for raw capture before Scrapy rewrites them.

Scrapy's ``HttpCompressionMiddleware`` (590) decompresses the body and drops ``Content-Encoding``; a WARC
record must still say how the body came (``pipelines/warc.py`` keeps it as ``X-Crawler-Content-Encoding``).
This downloader middleware sits next to the downloader, sees every answer first, and keeps its headers in
``meta["archive_received_headers"]``.
"""

from __future__ import annotations

RECEIVED_HEADERS = "archive_received_headers"


def header_pairs(headers) -> list[tuple[str, str]]:
    """Scrapy's headers as (name, value) pairs, every value of a repeated header kept."""
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, values in headers.items() for value in values]


class ReceivedHeaders:
    def process_response(self, request, response, spider=None):
        request.meta[RECEIVED_HEADERS] = header_pairs(response.headers)  # the response's meta, once tied to it
        return response
