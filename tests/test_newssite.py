"""Fast checks of the local news-site builder used by the end-to-end crawl tests."""

from __future__ import annotations

import difflib
import hashlib
import re
import urllib.request
from collections import deque
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import lxml.etree
import lxml.html
import pytest

from conftest import COPY_LISTINGS
from crawler.localsite import LocalSite
from newssite import (
    ATOM_NS,
    NEWS_SITEMAP_NS,
    SITEMAP_NS,
    START_PATHS,
    WIRE_SENTENCE,
    build_corpus_site,
    build_news_site,
    corpus_records,
)

pytestmark = pytest.mark.needs_corpus  # the site is built from the corpus

BASE = "http://127.0.0.1:43210"
START = START_PATHS
TRACKING = re.compile(r"^(utm_[a-z]+|fbclid|gclid)$")


@pytest.fixture(scope="module")
def site():
    return build_news_site(BASE)


def _strip_tracking(path: str) -> str:
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING.match(k)]
    return parts.path + ("?" + urlencode(query) if query else "")


def _is_html(page) -> bool:
    return page.content_type.startswith("text/html")


def _html_links(page_path: str, body: bytes) -> list[str]:
    """Same-site hrefs of <a> and feed <link rel=alternate>, as path+query."""
    doc = lxml.html.fromstring(body)
    hrefs = [a.get("href") for a in doc.iter("a") if a.get("href")]
    hrefs += [
        link.get("href")
        for link in doc.iter("link")
        if link.get("href") and "alternate" in (link.get("rel") or "") and "xml" in (link.get("type") or "")
    ]
    out = []
    for href in hrefs:
        url = urljoin(BASE + page_path, href.strip())
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" == BASE:
            out.append(parts.path + ("?" + parts.query if parts.query else ""))
    return out


def _xml_links(body: bytes) -> list[str]:
    root = lxml.etree.fromstring(body)
    urls = [el.text for el in root.iter(f"{{{SITEMAP_NS}}}loc")]
    urls += [el.text for el in root.iter("link") if el.text]  # RSS
    urls += [el.get("href") for el in root.iter(f"{{{ATOM_NS}}}link") if el.get("rel", "alternate") == "alternate"]
    out = []
    for url in urls:
        parts = urlsplit(url.strip())
        if f"{parts.scheme}://{parts.netloc}" == BASE:
            out.append(parts.path + ("?" + parts.query if parts.query else ""))
    return out


def _crawl(site):
    """BFS like a polite crawler: robots sitemaps, feeds, sitemaps and HTML links; tracking
    parameters stripped; /private/ skipped. Returns {path: html hops from home}."""
    depth: dict[str, int] = {}
    queue = deque((p, 0) for p in START)
    while queue:
        path, d = queue.popleft()
        path = _strip_tracking(path)
        if path in depth or path not in site.pages or path.startswith("/private/"):
            continue
        depth[path] = d
        page = site.pages[path]
        if path == "/robots.txt":
            links = [urlsplit(line.split(":", 1)[1].strip()).path for line in page.body.decode().splitlines()
                     if line.lower().startswith("sitemap:")]
            queue.extend((p, 0) for p in links)
        elif _is_html(page):
            queue.extend((p, d + 1) for p in _html_links(path, page.body))
        elif "xml" in page.content_type:
            queue.extend((p, d) for p in _xml_links(page.body))
    return depth


def test_every_article_copy_and_alias_is_served(site):
    assert len(site.articles) == 15
    assert len({a.path for a in site.articles}) == len(site.articles)
    for path in [a.path for a in site.articles] + list(site.exact_copies) + list(site.near_copies) + list(
        site.canonical_aliases
    ) + site.non_articles + site.disallowed:
        assert path in site.pages, path
        assert site.pages[path].status == 200
        assert "?" not in path
    for original in [*site.exact_copies.values(), *site.near_copies.values(), *site.canonical_aliases.values()]:
        assert original in {a.path for a in site.articles}
    langs = {a.language for a in site.articles}
    assert len(langs) >= 5 and "en" in langs


def test_build_is_deterministic(site):
    again = build_news_site(BASE)
    assert list(again.pages) == list(site.pages)
    assert all(again.pages[p].body == site.pages[p].body for p in site.pages)
    assert again.articles == site.articles


def test_corpus_articles_are_served_unchanged(site):
    by_id = {r.id: r for r in corpus_records()}
    for art in site.articles:
        if art.source_id == "reference":
            continue
        rec = by_id[art.source_id]
        assert hashlib.sha256(site.pages[art.path].body).hexdigest() == rec.rec["source_html_sha256"]
        assert art.body == rec.rec["body"] and len(art.body) >= 1500
        assert art.authors


def test_reference_article(site):
    ref = site.article("/2021/02/23/pentagon-says-us-soldiers-will-not-be-part-of-nato-deployment/")
    assert ref.source_id == "reference"
    assert ref.title == "PENTAGON Says U.S. Soldiers Will Not Be Part of NATO Deployment of 3,500 More Troops To IRAQ"
    assert ref.authors == ["Gary Raynaldo"]
    paragraphs = ref.body.split("\n\n")
    assert len(paragraphs) == 4
    assert paragraphs[0].startswith("U.S. Soldiers Will Not Be Part of a NATO Deployment of 3,500 additional")
    assert paragraphs[1].startswith("“…while we certainly support")
    assert paragraphs[2] == "-Pentagon press secretary John Kirby said at press conference February 23, 2021."
    assert paragraphs[3].endswith("bigger combat operations.")
    assert all("  " not in p and p == p.strip() for p in paragraphs)
    for word in ("Browse By", "Print Friendly", "PDF & Email", "DoDo photo"):
        assert word not in ref.body
    html = site.pages[ref.path].body.decode()
    for needle in (
        'class="entry-title"', 'rel="author" href="/author/gary-raynaldo/"', '<meta name="author" content="Gary Raynaldo">',
        'datetime="2021-02-23T18:05:00-05:00"', '"@type": "NewsArticle"', "Browse By", "Print Friendly, PDF &amp; Email",
        "DoDo photo by Lisa Ferdinando", "&copy; 2019 Diplomatic Times", "<blockquote", 'id="commentform"',
        '<meta property="og:type" content="article">', f'<link rel="canonical" href="{BASE}{ref.path}">',
    ):
        assert needle in html, needle


def test_copies_and_alias(site):
    (alias, original), = site.canonical_aliases.items()
    assert f'<link rel="canonical" href="{BASE}{original}">' in site.pages[alias].body.decode()
    for copy, original in site.exact_copies.items():
        body = site.pages[copy].body.decode("utf-8", "replace")
        assert f'rel="canonical" href="{BASE}{original}"' not in body
        assert f'content="{BASE}{original}"' not in body
    corpus_copies = [c for c, o in site.exact_copies.items() if site.article(o).source_id != "reference"]
    assert corpus_copies and all(site.pages[c].body == site.pages[site.exact_copies[c]].body for c in corpus_copies)


def test_copies_are_linked_only_from_the_pages_the_crawl_test_holds_back(site):
    # the end-to-end crawl holds these pages back until the originals are answered (conftest.news_crawl)
    copies = {*site.exact_copies, *site.near_copies, *site.canonical_aliases}
    def links(path, page):
        found = _html_links(path, page.body) if _is_html(page) else []
        found += _xml_links(page.body) if "xml" in page.content_type else []
        return {_strip_tracking(link) for link in found} - {path}  # a page is not found through itself

    linking = {path for path, page in site.pages.items() if copies & links(path, page)}
    assert linking == set(COPY_LISTINGS)


def test_near_copy_differs_but_shares_most_words(site):
    (copy, original), = site.near_copies.items()
    orig = site.article(original)
    assert len(orig.body) >= 2500
    doc = lxml.html.fromstring(site.pages[copy].body)
    assert doc.xpath('//meta[@property="og:type"]/@content') == ["article"]
    text = "\n\n".join(" ".join(p.text_content().split()) for p in doc.xpath('//div[@class="entry-content"]/p'))
    assert text != orig.body
    assert text.startswith("(Wire service) — ") and text.endswith(WIRE_SENTENCE)
    a, b = re.findall(r"\w+", orig.body.lower()), re.findall(r"\w+", text.lower())
    shingles = lambda w: {tuple(w[i : i + 3]) for i in range(len(w) - 2)}  # noqa: E731
    sa, sb = shingles(a), shingles(b)
    assert len(sa & sb) / len(sa | sb) > 0.9
    ops = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    assert [op[0] for op in ops].count("replace") == 3  # three words swapped for synonyms
    assert [op[0] for op in ops].count("insert") == 2  # the wire prefix and the closing sentence
    title = doc.xpath("//h1")[0].text_content()
    assert title != orig.title and title.startswith(orig.title)


def test_robots_txt(site):
    page = site.pages["/robots.txt"]
    assert page.content_type.startswith("text/plain")
    lines = page.body.decode().splitlines()
    assert "User-agent: *" in lines
    assert "Disallow: /private/" in lines
    assert f"Sitemap: {BASE}/sitemap_index.xml" in lines
    assert all(p.startswith("/private/") for p in site.disallowed)
    home_links = _html_links("/", site.pages["/"].body)
    assert any(p in home_links for p in site.disallowed)


def test_sitemaps_parse_with_the_right_namespaces(site):
    index = lxml.etree.fromstring(site.pages["/sitemap_index.xml"].body)
    assert index.tag == f"{{{SITEMAP_NS}}}sitemapindex"
    locs = [el.text for el in index.iter(f"{{{SITEMAP_NS}}}loc")]
    assert locs == [f"{BASE}/sitemap-news.xml", f"{BASE}/sitemap-pages.xml"]

    news = lxml.etree.fromstring(site.pages["/sitemap-news.xml"].body)
    assert news.tag == f"{{{SITEMAP_NS}}}urlset" and news.nsmap.get("news") == NEWS_SITEMAP_NS
    urls = news.findall(f"{{{SITEMAP_NS}}}url")
    assert urls
    for url in urls:
        assert url.findtext(f"{{{SITEMAP_NS}}}loc").startswith(BASE + "/")
        entry = url.find(f"{{{NEWS_SITEMAP_NS}}}news")
        assert entry.find(f"{{{NEWS_SITEMAP_NS}}}publication/{{{NEWS_SITEMAP_NS}}}name").text
        assert re.match(r"\d{4}-\d\d-\d\dT", entry.findtext(f"{{{NEWS_SITEMAP_NS}}}publication_date"))
        assert entry.findtext(f"{{{NEWS_SITEMAP_NS}}}title")

    plain = lxml.etree.fromstring(site.pages["/sitemap-pages.xml"].body)
    assert plain.tag == f"{{{SITEMAP_NS}}}urlset"
    for path in ("/sitemap_index.xml", "/sitemap-news.xml", "/sitemap-pages.xml"):
        assert "xml" in site.pages[path].content_type


def test_feeds_parse(site):
    assert site.pages["/feed/"].content_type.startswith("application/rss+xml")
    assert site.pages["/atom.xml"].content_type.startswith("application/atom+xml")
    rss = lxml.etree.fromstring(site.pages["/feed/"].body)
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    assert rss.findall("channel/item")
    atom = lxml.etree.fromstring(site.pages["/atom.xml"].body)
    assert atom.tag == f"{{{ATOM_NS}}}feed" and atom.findall(f"{{{ATOM_NS}}}entry")
    head = lxml.html.fromstring(site.pages["/"].body)
    assert head.xpath('//link[@rel="alternate"][@type="application/rss+xml"]/@href') == ["/feed/"]
    assert head.xpath('//link[@rel="alternate"][@type="application/atom+xml"]/@href') == ["/atom.xml"]


def test_exclusive_discovery_routes(site):
    assert site.only_in_news_sitemap and site.only_in_rss and site.only_in_atom
    html_links = set()
    for path, page in site.pages.items():
        if _is_html(page):  # (a page's own fragment links don't count)
            html_links.update(_strip_tracking(p) for p in _html_links(path, page.body) if p != path)
    sources = {
        "news": {_strip_tracking(p) for p in _xml_links(site.pages["/sitemap-news.xml"].body)},
        "pages": {_strip_tracking(p) for p in _xml_links(site.pages["/sitemap-pages.xml"].body)},
        "rss": {_strip_tracking(p) for p in _xml_links(site.pages["/feed/"].body)},
        "atom": {_strip_tracking(p) for p in _xml_links(site.pages["/atom.xml"].body)},
    }
    for paths, only in ((site.only_in_news_sitemap, "news"), (site.only_in_rss, "rss"), (site.only_in_atom, "atom")):
        for path in paths:
            assert path not in html_links
            assert {name for name, found in sources.items() if path in found} == {only}, path


def test_everything_is_reachable_within_three_html_hops(site):
    depth = _crawl(site)
    wanted = [a.path for a in site.articles] + [*site.exact_copies, *site.near_copies, *site.canonical_aliases]
    wanted += site.non_articles
    for path in wanted:
        assert path in depth, path
        assert depth[path] <= 3, (path, depth[path])
    assert not any(p.startswith("/private/") for p in depth)


def test_tracking_links(site):
    assert len(site.tracking_links) >= 4
    params = set()
    article_paths = {a.path for a in site.articles}
    for link in site.tracking_links:
        path, _, query = link.partition("?")
        assert path in article_paths
        keys = {k for k, _ in parse_qsl(query)}
        assert keys and all(TRACKING.match(k) for k in keys)
        params |= keys
        assert site.pages[link].body == site.pages[path].body
    assert {"utm_source", "fbclid", "gclid"} <= params
    home_links = _html_links("/", site.pages["/"].body)
    assert any("utm_source=" in p for p in home_links)
    assert any("fbclid=" in p for p in home_links) and any("gclid=" in p for p in home_links)


def test_generated_html_pages(site):
    corpus_bodies = {site.pages[a.path].body for a in site.articles if a.source_id != "reference"}
    for path, page in site.pages.items():
        if not _is_html(page) or page.body in corpus_bodies:
            continue
        assert page.content_type == "text/html; charset=utf-8", path
        text = page.body.decode("utf-8")
        assert '<meta charset="utf-8">' in text
        doc = lxml.html.fromstring(page.body)
        for a in doc.iter("a"):
            href = a.get("href")
            assert href, path
            if href == "#":
                continue
            url = urljoin(BASE + path, href)
            assert url.startswith(BASE + "/"), (path, href)  # no other hosts or schemes
            target = urlsplit(url)
            assert target.path + ("?" + target.query if target.query else "") in site.pages, (path, href)
    for path in site.non_articles:
        doc = lxml.html.fromstring(site.pages[path].body)
        assert doc.xpath('//meta[@property="og:type"]/@content') == ["website"], path
        assert b"NewsArticle" not in site.pages[path].body
    for path in ("/about/", "/contact/"):
        doc = lxml.html.fromstring(site.pages[path].body)
        prose = " ".join(" ".join(p.text_content().split()) for p in doc.xpath('//div[@class="entry-content"]/p'))
        assert 400 <= len(prose) <= 900, (path, len(prose))


def test_served_by_localsite_with_query_strings(site):
    with LocalSite() as local:
        served = build_news_site(local.base_url, n_corpus_articles=4)
        local.pages.update(served.pages)
        link = served.tracking_links[0]
        with urllib.request.urlopen(local.base_url + link) as resp:
            assert resp.status == 200
            assert resp.read() == served.pages[link].body
        assert local.fetched(link) == 1
        robots = urllib.request.urlopen(local.base_url + "/robots.txt").read().decode()
        assert f"Sitemap: {local.base_url}/sitemap_index.xml" in robots
    assert served.only_in_news_sitemap and served.only_in_rss and served.only_in_atom


def test_corpus_site():
    pages, ids = build_corpus_site(BASE)
    records = {r.id: r for r in corpus_records()}
    assert len(ids) == len(set(ids.values())) == sum(
        1 for r in records.values() if r.rec["page_type"] in ("news", "magazine_or_blog_article")
    )
    assert 300 <= len(ids) <= 400
    home = _html_links("/", pages["/"].body)
    sitemap = _xml_links(pages["/sitemap.xml"].body)
    assert set(home) == set(ids) == set(sitemap)
    for path, pid in ids.items():
        assert path.isascii() and path.startswith("/") and "?" not in path and " " not in path
        page = pages[path]
        assert hashlib.sha256(page.body).hexdigest() == records[pid].rec["source_html_sha256"]
        assert page.content_type == "text/html" or page.content_type.startswith("text/html; charset=")
    assert any(p.startswith("/corpus/") for p in ids)  # pages without a url
    types = {pid: pages[path].content_type for path, pid in ids.items()}
    assert types["at-DerStandard_2024_05_03"] == "text/html; charset=utf-8"
    # declares GB2312 but the stored bytes are UTF-8: the server states what the bytes are
    assert types["cn-People_2024_04_24"] == "text/html; charset=utf-8"
    # two conflicting meta charsets, bytes valid UTF-8: likewise
    assert types["it-CorriereDellaSera_2025_02_04"] == "text/html; charset=utf-8"
