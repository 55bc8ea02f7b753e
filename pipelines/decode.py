"""Decode step, first thing in an extraction worker: a page's bytes and its Content-Type -> the page as text.

The crawler hands the worker the body as received (after Content-Encoding) and the Content-Type header, and
the worker decodes them exactly as Scrapy's ``TextResponse.text`` would (``scrapy/http/response/text.py``): the
BOM, then the header's charset, then the page's own declaration (``<meta charset>``, within its first 4 KB), then
detection (ASCII, UTF-8, then charset-normalizer), each through w3lib, as Scrapy does it; except that an
undeclared page read by detection is windows-1252 whenever that fits as well as the detector's pick: the
detector breaks ties among single-byte code pages by order, and its cp1250 turned a French "coûte" into "coűte".
windows-1252 is what browsers assume. So the crawler never decodes a page, nor holds a second copy of it as text.
"""

from __future__ import annotations

from charset_normalizer import from_bytes
from w3lib.encoding import (html_body_declared_encoding, html_to_unicode, http_content_type_encoding, read_bom,
                            resolve_encoding)

_DETECT_BYTES = 256 * 1024  #: how much of an undeclared page the windows-1252 tie-break reads
_DEFAULT_ENCODING = "ascii"  #: Scrapy's TextResponse._DEFAULT_ENCODING


def declared_encoding(body: bytes, content_type: str | None) -> str | None:
    """What the page says it is: its BOM, the Content-Type's charset, its ``<meta>`` declaration (Scrapy's
    ``TextResponse._declared_encoding``)."""
    return read_bom(body)[0] or http_content_type_encoding(content_type or "") or html_body_declared_encoding(body)


def page_text(body: bytes, content_type: str | None) -> str:
    """``body`` as text (see the module's docstring); never raises: undecodable bytes become U+FFFD."""
    declared = declared_encoding(body, content_type)
    if declared is not None:
        return html_to_unicode(f"charset={declared}", body)[1]
    encoding, text = html_to_unicode(content_type or "", body, auto_detect_fun=_auto_detect,
                                     default_encoding=_DEFAULT_ENCODING)
    if encoding in ("ascii", "utf-8", "cp1252"):
        return text
    matches = from_bytes(body[:_DETECT_BYTES])
    best = matches.best()
    western = next((match for match in matches if "cp1252" in match.could_be_from_charset), None)
    if best is None or western is None:
        return text
    if (western.chaos, -western.coherence) <= (best.chaos, -best.coherence):
        return body.decode("cp1252", errors="replace")
    return text


def _auto_detect(text: bytes) -> str | None:
    """Scrapy's ``TextResponse._auto_detect_fun``."""
    for encoding in (_DEFAULT_ENCODING, "utf-8"):
        try:
            text.decode(encoding)
        except UnicodeError:
            continue
        return resolve_encoding(encoding)
    match = from_bytes(text).best()
    return resolve_encoding(match.encoding) if match else None
