"""Telling responses apart by their content, and reading feeds and sitemaps safely."""

from __future__ import annotations

import gzip

import pytest
from scrapy.http import HtmlResponse, Response, TextResponse, XmlResponse

from crawler import documents

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
    assert documents.sitemap_entries(SITEMAP_INDEX) == ("sitemapindex", [("https://e.com/sitemap-news.xml", None)])
    assert documents.sitemap_entries(NEWS_SITEMAP) == ("urlset", [("https://e.com/2024/05/03/a/", None)])
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
