"""Telling responses apart by their content, and reading feeds and sitemaps safely."""

from __future__ import annotations

import gzip

import pytest
from scrapy.http import HtmlResponse, Response, TextResponse, XmlResponse

from crawler import documents
from crawler.documents import SitemapEntry
from pipelines.records import SitemapNews

SITEMAP_INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://e.com/sitemap-news.xml</loc></sitemap></sitemapindex>"""
NEWS_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://e.com/2024/05/03/a/</loc><news:news><news:publication><news:name>E</news:name>
  <news:language>en</news:language></news:publication><news:publication_date>2024-05-03</news:publication_date>
  <news:title>A</news:title></news:news></url></urlset>"""
RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>E</title>
  <item><title>A</title><link>https://e.com/a/</link></item>
  <item><title>B</title><guid isPermaLink="true">https://e.com/b/</guid></item></channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>E</title>
  <entry><title>A</title><link rel="alternate" href="https://e.com/a/"/><link rel="enclosure" href="https://e.com/a.mp3"/></entry>
  <entry><title>C</title><link href="https://e.com/c/"/></entry></feed>"""
RDF = b"""<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
  <item rdf:about="https://e.com/r/"><title>R</title><link>https://e.com/r/</link></item></rdf:RDF>"""
ROBOTS = b"User-agent: *\nDisallow: /private/\n\nSitemap: https://e.com/sitemap_index.xml\n"


def kind(body: bytes, url="https://e.com/x", content_type="application/xml", cls=Response):
    response = cls(url=url, body=body, headers={"Content-Type": content_type})
    return documents.document_kind(response, documents.xml_body(response, 10 * 2**20))


@pytest.mark.parametrize(
    ("body", "url", "content_type", "expected"),
    [
        (SITEMAP_INDEX, "https://e.com/s", "application/xml", "sitemap"),
        (NEWS_SITEMAP, "https://e.com/s", "text/xml", "sitemap"),
        (gzip.compress(NEWS_SITEMAP), "https://e.com/s.xml.gz", "application/gzip", "sitemap"),
        (RSS, "https://e.com/feed/", "application/rss+xml", "feed"),
        (ATOM, "https://e.com/atom", "text/xml", "feed"),
        (RDF, "https://e.com/rdf", "application/rdf+xml", "feed"),
        (ROBOTS, "https://e.com/robots.txt", "text/plain", "robots"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "https://e.com/", "text/html", "html"),
        (b"%PDF-1.7 binary", "https://e.com/a.pdf", "application/pdf", "other"),
        (b"", "https://e.com/", "text/html", "other"),
    ],
)
def test_document_kind_from_content(body, url, content_type, expected):
    assert kind(body, url, content_type) == expected


def test_sitemaps_and_feeds_are_read():
    assert documents.sitemap_entries(SITEMAP_INDEX) == (
        "sitemapindex", [SitemapEntry("https://e.com/sitemap-news.xml", None, None)])
    assert documents.sitemap_entries(NEWS_SITEMAP) == ("urlset", [SitemapEntry(
        "https://e.com/2024/05/03/a/", None, SitemapNews(title="A", publication_date="2024-05-03", publication="E",
                                                         language="en"))])
    assert documents.feed_entries(RSS) == ["https://e.com/a/", "https://e.com/b/"]
    assert documents.feed_entries(ATOM) == ["https://e.com/a/", "https://e.com/c/"]
    assert documents.feed_entries(RDF) == ["https://e.com/r/"]
    assert documents.robots_sitemaps(ROBOTS, "https://e.com/robots.txt") == ["https://e.com/sitemap_index.xml"]


def test_entities_are_never_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = f"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>
<rss version="2.0"><channel><item><link>https://e.com/&x;</link></item></channel></rss>""".encode()
    assert "TOP-SECRET" not in "".join(documents.feed_entries(xxe))
    laughs = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<rss version="2.0"><channel><item><link>https://e.com/&d;</link></item></channel></rss>"""
    assert all(len(url) < 100 for url in documents.feed_entries(laughs))


# --- Google News sitemap blocks ------------------------------------------------------------------------------

GOOGLE_NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
FULL_BLOCK = """<{p}news><{p}publication><{p}name>The Ledger</{p}name><{p}language>en</{p}language></{p}publication>
<{p}genres>Blog, OpEd</{p}genres><{p}publication_date>2026-11-20T06:07:00+01:00</{p}publication_date>
<{p}title>Senate passes the budget</{p}title><{p}keywords>Senate, budget , Senate,,Taxes</{p}keywords>
<{p}stock_tickers>NASDAQ:AMAT, NYSE:IBM</{p}stock_tickers><{p}access>Subscription</{p}access></{p}news>"""
FULL_NEWS = SitemapNews(title="Senate passes the budget", publication_date="2026-11-20T06:07:00+01:00",
                        publication="The Ledger", language="en", keywords=("Senate", "budget", "Taxes"),
                        genres=("Blog", "OpEd"), stock_tickers=("NASDAQ:AMAT", "NYSE:IBM"), access="Subscription")


def _urlset(block: str, declarations: str) -> bytes:
    return (f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" {declarations}>'
            f"<url><loc>https://e.com/a</loc>{block}</url><url><loc>https://e.com/b</loc></url></urlset>").encode()


@pytest.mark.parametrize(("prefix", "declarations"), [
    ("news:", f'xmlns:news="{GOOGLE_NEWS}"'),
    ("gn:", f'xmlns:gn="{GOOGLE_NEWS}"'),  # Google's namespace under another prefix
    ("", ""),  # the block in the default namespace: the news elements declare their own
    ("news:", ""),  # the prefix never declared: lxml recovers, the tag keeps its prefix
], ids=["news", "other-prefix", "default-namespace", "undeclared-prefix"])
def test_news_block_is_read_under_any_prefix(prefix, declarations):
    block = FULL_BLOCK.format(p=prefix)
    if prefix == "":
        block = block.replace("<news>", f'<news xmlns="{GOOGLE_NEWS}">', 1)
    kind, entries = documents.sitemap_entries(_urlset(block, declarations))
    assert kind == "urlset"
    assert entries == [SitemapEntry("https://e.com/a", None, FULL_NEWS), SitemapEntry("https://e.com/b", None, None)]


def test_news_block_with_missing_fields_keeps_what_it_has():
    block = ("<news:news><news:publication><news:name> The  Ledger </news:name></news:publication>"
             "<news:title></news:title><news:keywords/></news:news>")
    _, entries = documents.sitemap_entries(_urlset(block, f'xmlns:news="{GOOGLE_NEWS}"'))
    assert entries[0].news == SitemapNews(publication="The Ledger")
    empty = "<news:news><news:title>  </news:title></news:news>"
    _, entries = documents.sitemap_entries(_urlset(empty, f'xmlns:news="{GOOGLE_NEWS}"'))
    assert entries[0].news is None


def test_hostile_news_values_are_bounded():
    keywords = ", ".join(f"keyword number {i}" for i in range(60_000))  # about 1 MB
    assert len(keywords) > 1_000_000
    block = (f"<news:news><news:title>{'T' * 500_000}</news:title><news:keywords>{keywords}</news:keywords>"
             f"<news:stock_tickers>{', '.join(f'X:{i}' for i in range(100))}</news:stock_tickers></news:news>")
    _, entries = documents.sitemap_entries(_urlset(block, f'xmlns:news="{GOOGLE_NEWS}"'))
    news = entries[0].news
    assert news.keywords == tuple(f"keyword number {i}" for i in range(50))
    assert news.title == "T" * 1000
    assert news.stock_tickers == tuple(f"X:{i}" for i in range(10))
    one_term = f"<news:news><news:keywords>{'k' * 1_000_000}</news:keywords></news:news>"
    _, entries = documents.sitemap_entries(_urlset(one_term, f'xmlns:news="{GOOGLE_NEWS}"'))
    assert entries[0].news.keywords == ("k" * 200,)
