"""Tell a response's kind from the response itself, and read the links out of discovery documents.

Kinds: ``robots`` (a robots.txt), ``sitemap`` (urlset, sitemap index, Google
News sitemap; gzip allowed), ``feed`` (RSS 0.9x/2.0, RSS 1.0/RDF, Atom),
``html``, or ``other``. XML is parsed with entity resolution and network
access off (no billion laughs, no external entities) and within a size limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from scrapy.http import Response, TextResponse
from scrapy.utils._compression import _DecompressionMaxSizeExceeded
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

_ROBOTS_LINE = re.compile(rb"^\s*(user-agent|disallow|allow|sitemap|crawl-delay)\s*:", re.I | re.M)
_XML_ROOT = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(urlset|sitemapindex|rss|RDF|feed|html)\b")
_HTML_START = re.compile(rb"<(!doctype\s+html|html|head|body)\b", re.I)
#: what PDFs, images, archives and JSON start with: not HTML, whatever the Content-Type says
_NOT_MARKUP = re.compile(rb"^(%PDF-|PK\x03\x04|\x89PNG|GIF8|\xff\xd8\xff|\x1f\x8b|[{\[])")
_XML_PARSER_ARGS = dict(resolve_entities=False, no_network=True, recover=True, huge_tree=False, remove_comments=True)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    url: str


class DocumentTooLarge(ValueError):
    """A gzip file (``.xml.gz``) that unpacks to more than the size limit: a gzip bomb, not read further."""


def xml_body(response: Response, max_size: int) -> bytes:
    """The response body, gunzipped when it is a gzip file (``.xml.gz``), within ``max_size`` (else
    ``DocumentTooLarge``, having held at most about ``max_size`` bytes)."""
    body = response.body
    if body[:2] == b"\x1f\x8b":
        try:
            body = gunzip(body, max_size=max_size)
        except _DecompressionMaxSizeExceeded as exc:
            raise DocumentTooLarge(f"gzip body unpacks to more than {max_size} bytes") from exc
    return body


def document_kind(response: Response, body: bytes) -> str:
    """What the response is, decided from its content (and content type), not from what the user said."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
    utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    if not head or (b"\x00" in head and not utf16) or _NOT_MARKUP.match(head):
        return "other"  # empty, binary or JSON
    if head.startswith(b"<"):
        if _HTML_START.match(head) or "html" in content_type and b"<?xml" not in head[:6]:
            return "html"
        match = _XML_ROOT.search(head)
        if match:
            root = match.group(1).decode()
            if root in ("urlset", "sitemapindex"):
                return "sitemap"
            if root in ("rss", "RDF", "feed"):
                return "feed"
            return "html"
        return "html" if "html" in content_type else "other"
    if _ROBOTS_LINE.search(head) and response.url.rstrip("/").endswith("robots.txt"):
        return "robots"
    if isinstance(response, TextResponse) and "html" in content_type:
        return "html"
    return "other"


def robots_sitemaps(body: bytes, base_url: str) -> list[str]:
    """The ``Sitemap:`` lines of a robots.txt (Scrapy's parser)."""
    return list(sitemap_urls_from_robots(body, base_url=base_url))


def sitemap_entries(body: bytes) -> tuple[str, list[tuple[str, str | None]]]:
    """(``sitemapindex`` or ``urlset``, its entries as (<loc>, <lastmod> as written or None)), with Scrapy's
    hardened sitemap parser."""
    sitemap = Sitemap(body)
    entries = [(entry["loc"], (entry.get("lastmod") or "").strip() or None) for entry in sitemap if entry.get("loc")]
    return sitemap.type, entries


def feed_entries(body: bytes) -> list[str]:
    """Item links of an RSS, RDF or Atom feed, in document order."""
    parser = etree.XMLParser(**_XML_PARSER_ARGS)
    root = etree.fromstring(body, parser=parser)
    if root is None:
        return []
    urls: list[str] = []
    for item in root.iter("{*}item", "{*}entry"):
        link = None
        for child in item:
            name = etree.QName(child).localname if isinstance(child.tag, str) else ""
            if name == "link":
                href = child.get("href")
                rel = child.get("rel", "alternate")
                if href and rel == "alternate":
                    link = href.strip()
                    break
                if not href and child.text and child.text.strip():
                    link = child.text.strip()
                    break
        if link is None:
            for child in item:
                if isinstance(child.tag, str) and etree.QName(child).localname == "guid":
                    if child.get("isPermaLink", "true") == "true" and (child.text or "").strip().startswith("http"):
                        link = child.text.strip()
        if link:
            urls.append(link)
    return urls
