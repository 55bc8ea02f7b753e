"""Meta refresh redirects read from the page's head, not from the whole page decoded in the crawler.

Scrapy's ``MetaRefreshMiddleware`` looks for ``<meta http-equiv="refresh">`` in the first 4096 characters of
``response.text``, which decodes the whole page in the crawler process (and keeps that second copy with the
response): the one per-page decoding left there once pages are decoded in the extraction workers
(``pipelines.decode``). This subclass decodes only the first 16 KiB of a page whose encoding is declared (BOM,
Content-Type, ``<meta charset>``) and reads the same 4096 characters from them; a page with no declared encoding
goes through Scrapy's own code, detection and all. The outcome is Scrapy's in every case.
"""

from __future__ import annotations

from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware
from scrapy.http import HtmlResponse
from scrapy.utils.httpobj import urlparse_cached
from w3lib.encoding import html_to_unicode
from w3lib.html import get_base_url, get_meta_refresh

from pipelines.decode import declared_encoding

_HEAD_CHARS = 4096  #: what Scrapy's get_meta_refresh reads
_HEAD_BYTES = 4 * _HEAD_CHARS  #: enough bytes for that many characters in any encoding


class HeadMetaRefreshMiddleware(MetaRefreshMiddleware):
    def process_response(self, request, response, spider=None):
        if (request.meta.get("dont_redirect", False) or request.method == "HEAD"
                or not isinstance(response, HtmlResponse)
                or urlparse_cached(request).scheme not in {"http", "https"}):
            return response
        encoding = declared_encoding(response.body, response.headers.get(b"Content-Type", b"").decode("latin-1"))
        if encoding is None:  # detection needs the whole page: Scrapy's own way
            return super().process_response(request, response)
        head = html_to_unicode(f"charset={encoding}", response.body[:_HEAD_BYTES])[1][:_HEAD_CHARS]
        base = get_base_url(head, response.url, encoding)
        interval, url = get_meta_refresh(head, base, encoding, ignore_tags=self._ignore_tags)
        if not url:
            return response
        redirected = self._redirect_request_using_get(request, response, url)
        if urlparse_cached(redirected).scheme not in {"http", "https"}:
            return response
        if interval < self._maxdelay:
            return self._redirect(redirected, request, "meta refresh")
        return response
