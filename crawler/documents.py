"""Tell a response's kind from the response itself, and read the links out of discovery documents.

Kinds: ``robots`` (a robots.txt), ``sitemap`` (urlset, sitemap index, Google
News sitemap; gzip allowed), ``feed`` (RSS 0.9x/2.0, RSS 1.0/RDF, Atom),
``html``, or ``other``. A sitemap entry's Google News block is read with its
URL. XML is parsed with entity resolution and network
access off (no billion laughs, no external entities) and within a size limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree
from scrapy.http import Response, TextResponse
from scrapy.utils._compression import _DecompressionMaxSizeExceeded
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import sitemap_urls_from_robots

from pipelines.publisher import MAX_TERMS, split_terms
from pipelines.records import SitemapNews

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


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    loc: str  #: as written (maybe relative)
    lastmod: str | None = None  #: as written
    news: SitemapNews | None = None  #: a urlset entry's Google News block


#: the news block's text fields: (element, attribute, longest value kept)
_NEWS_TEXT = {"title": ("title", 1000), "publication_date": ("publication_date", 100), "access": ("access", 100)}
_PUBLICATION_TEXT = {"name": ("publication", 500), "language": ("language", 35)}
_NEWS_LISTS = {"keywords": ("keywords", MAX_TERMS), "genres": ("genres", 10), "stock_tickers": ("stock_tickers", 10)}


def sitemap_entries(body: bytes) -> tuple[str, list[SitemapEntry]]:
    """(``sitemapindex`` or ``urlset``, its entries in document order: <loc>, <lastmod>, and for a urlset entry its
    Google News block). Parsed as Scrapy's Sitemap parses (entities and network off, recovering from errors; an
    entry without <loc> skipped), reading what Scrapy's drops: the ``<news:news>`` block, found by its local name
    under whatever prefix (or none) the sitemap binds Google's namespace to."""
    parser = etree.XMLParser(**_XML_PARSER_ARGS)
    root = etree.fromstring(body, parser=parser)
    if root is None:
        return "urlset", []
    entries: list[SitemapEntry] = []
    for element in root:
        loc = lastmod = None
        news = None
        for child in element:
            name = _local_name(child)
            if name == "loc":
                loc = (child.text or "").strip() or None
            elif name == "lastmod":
                lastmod = (child.text or "").strip() or None
            elif name == "news" and news is None:
                news = _news_block(child)
        if loc:
            entries.append(SitemapEntry(loc, lastmod, news))
    return _local_name(root), entries


def _local_name(element) -> str:
    """The tag without its namespace, or without a prefix the document never declared (``news:title``)."""
    if not isinstance(element.tag, str):
        return ""
    return element.tag.rpartition("}")[2].rpartition(":")[2]


def _news_block(element) -> SitemapNews | None:
    values: dict[str, object] = {}
    for child in element:
        name = _local_name(child)
        if name == "publication":
            for part in child:
                target = _PUBLICATION_TEXT.get(_local_name(part))
                if target and target[0] not in values:
                    values[target[0]] = _text(part, target[1])
        elif name in _NEWS_TEXT and _NEWS_TEXT[name][0] not in values:
            values[_NEWS_TEXT[name][0]] = _text(child, _NEWS_TEXT[name][1])
        elif name in _NEWS_LISTS and _NEWS_LISTS[name][0] not in values:
            values[_NEWS_LISTS[name][0]] = tuple(split_terms(child.text or "", limit=_NEWS_LISTS[name][1]))
    values = {key: value for key, value in values.items() if value}
    return SitemapNews(**values) if values else None


def _text(element, limit: int) -> str | None:
    return " ".join((element.text or "")[: limit * 4].split())[:limit].strip() or None


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
