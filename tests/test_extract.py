"""The extraction core and the article decision, on small pages written here."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipelines.extract import article_title, build_options, extract_page
from pipelines.pagemeta import PageMeta
from pipelines.pagetype import classify_page, url_shape

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
OPTIONS = build_options()

PARAGRAPHS = [
    "The harbour authority approved a new breakwater on Tuesday after three years of debate, "
    "committing the town to the largest public works project in its history.",
    "Engineers said the structure would protect the inner basin from winter storms that have "
    "damaged fishing boats and flooded the quay several times since the old wall was breached.",
    "Opponents argued the cost, estimated at forty million euros, would crowd out spending on "
    "schools and roads, and that the environmental review had been rushed through the council.",
    "The mayor said construction would start in the spring and last about two years, with most of "
    "the money coming from a regional fund for coastal protection and climate adaptation.",
]


def article_html(*, head: str = "", footer: str = "", paragraphs=PARAGRAPHS) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html lang="en-GB"><head><meta charset="utf-8">
<title>Town approves breakwater | Harbour Herald</title>{head}</head><body>
<nav><a href="/">Home</a> <a href="/section/news/">News</a> <a href="/about/">About</a></nav>
<article><h1>Town approves breakwater</h1><p class="byline">By <a rel="author" href="/author/ann">Ann Example</a></p>
{body}</article><footer>{footer}</footer></body></html>"""


ARTICLE_HEAD = '<meta property="og:type" content="article">'
URL = "https://herald.example/2024/05/03/town-approves-new-breakwater/"


def test_article_fields():
    head = ARTICLE_HEAD + (
        '<meta property="article:published_time" content="2024-05-03T09:30:00+02:00">'
        '<meta property="article:modified_time" content="2024-05-04T10:00:00Z">'
        '<meta name="author" content="Ann Example">'
        '<meta property="og:site_name" content="Harbour Herald">'
    )
    result = extract_page(article_html(head=head), URL, OPTIONS, min_chars=300, now=NOW)
    article = result.article
    assert result.reason == "article", result.detail
    assert article.title == "Town approves breakwater"
    assert article.authors == ["Ann Example"]
    assert article.body.split("\n\n") == PARAGRAPHS
    assert article.published_at == datetime(2024, 5, 3, 7, 30, tzinfo=timezone.utc)
    assert article.published_at_source == "meta"
    assert article.modified_at == datetime(2024, 5, 4, 10, 0, tzinfo=timezone.utc)
    assert article.language == "en"
    assert article.site_name == "Harbour Herald"
    assert article.canonical_url == URL


def test_copyright_footer_is_not_a_publication_date():
    result = extract_page(article_html(head=ARTICLE_HEAD, footer="© 2019 Harbour Herald. All rights reserved."),
                          "https://herald.example/news/town-approves-new-breakwater-plan", OPTIONS, min_chars=300, now=NOW)
    assert result.article is not None
    assert result.article.published_at is None
    assert result.article.published_date is None


def test_jsonld_date_and_headline_win():
    jsonld = """<script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
      {"@type": "WebPage"}, {"@type": "NewsArticle", "headline": "Town approves breakwater",
       "datePublished": "2021-03-04T23:30-08:00", "author": [{"@type": "Person", "name": "Ann Example"}]}]}</script>"""
    result = extract_page(article_html(head=jsonld), URL, OPTIONS, min_chars=300, now=NOW)
    assert result.article.published_at == datetime(2021, 3, 5, 7, 30, tzinfo=timezone.utc)
    assert result.article.published_at_raw == "2021-03-04T23:30-08:00"
    assert result.article.published_at_source == "jsonld"


@pytest.mark.parametrize("raw", ["03/04/2021", "2099-01-01T08:00:00Z"])
def test_unreadable_date_statement_gives_no_date_but_is_kept(raw):
    """Ambiguous (March 4 or April 3?) or in the future: no date, and no guess by trafilatura's date search."""
    head = ARTICLE_HEAD + f'<meta property="article:published_time" content="{raw}">'
    article = extract_page(article_html(head=head), URL, OPTIONS, min_chars=300, now=NOW).article
    assert (article.published_at, article.published_date) == (None, None)
    assert (article.published_at_raw, article.published_at_source) == (raw, "meta")


def test_modified_date_beside_the_published_one():
    head = ARTICLE_HEAD + (
        '<meta property="article:modified_time" content="2021-03-06T10:00:00+01:00">'
        '<meta property="article:published_time" content="2021-03-04T23:30-08:00">'
    )
    article = extract_page(article_html(head=head), URL, OPTIONS, min_chars=300, now=NOW).article
    assert article.published_at == datetime(2021, 3, 5, 7, 30, tzinfo=timezone.utc)
    assert article.published_at_raw == "2021-03-04T23:30-08:00"
    assert article.modified_at == datetime(2021, 3, 6, 9, 0, tzinfo=timezone.utc)
    assert article.modified_at_raw == "2021-03-06T10:00:00+01:00"


def test_nesting_past_the_parser_limit_is_rejected_not_truncated():
    deep = article_html(head=ARTICLE_HEAD).replace("<article>", "<article>" + "<div>" * 300)
    result = extract_page(deep, URL, OPTIONS, min_chars=300, now=NOW)
    assert (result.article, result.reason) == (None, "too_deep")
    assert extract_page(article_html(head=ARTICLE_HEAD).replace("<article>", "<article>" + "<div>" * 200), URL,
                        OPTIONS, min_chars=300, now=NOW).reason == "article"


def test_page_of_links_is_not_an_article_whatever_its_url():
    links = "".join(f'<li><a href="/2024/04/{i % 28 + 1:02d}/story-{i}/">Story {i}: the council meets again '
                    f"over the harbour plan</a></li>" for i in range(60))
    html = f"<html><head><title>Latest</title></head><body><h1>Latest</h1><ul>{links}</ul></body></html>"
    result = extract_page(html, "https://herald.example/2024/05/03/the-latest-stories-roundup/", OPTIONS,
                          min_chars=300, now=NOW)
    assert result.reason == "not_article" and "body_links:1.00(-3)" in result.detail


def test_same_site_canonical_is_followed_and_cross_site_ignored():
    same = ARTICLE_HEAD + '<link rel="canonical" href="https://www.herald.example/2024/05/03/breakwater?utm_source=x">'
    other = ARTICLE_HEAD + '<link rel="canonical" href="https://aggregator.example/story/123">'
    assert extract_page(article_html(head=same), URL, OPTIONS, min_chars=300, now=NOW).article.canonical_url == (
        "https://www.herald.example/2024/05/03/breakwater"
    )
    assert extract_page(article_html(head=other), URL, OPTIONS, min_chars=300, now=NOW).article.canonical_url == URL


def test_listing_page_is_not_an_article():
    # teasers long enough that the page is not merely too short: its own signals say it is a listing
    items = "".join(
        f'<li><a href="/2024/05/0{i}/story-number-{i}-with-a-long-slug/">Story number {i} with a long headline '
        f"about the harbour</a><p>Teaser for story {i}: the harbour board met again on Tuesday evening.</p></li>"
        for i in range(1, 10)
    )
    html = (f'<html><head><meta property="og:type" content="website"><title>News</title></head><body>'
            f"<h1>News</h1><ul>{items}</ul></body></html>")
    result = extract_page(html, "https://herald.example/section/news/", OPTIONS, min_chars=300, now=NOW)
    assert (result.article, result.reason) == (None, "not_article")
    assert result.detail.startswith("structured:website(-1) url:listing(-1) score=-2 chars="), result.detail


def test_empty_page_is_dropped_with_a_reason():
    for html, reason in (("", "empty"), ("<html><body></body></html>", "empty"),
                         ("<html><body><p>Short.</p></body></html>", "too_short")):
        result = extract_page(html, URL, OPTIONS, min_chars=300, now=NOW)
        assert (result.article, result.reason) == (None, reason), html


@pytest.mark.parametrize(
    ("url", "shape"),
    [
        ("https://e.com/", "listing"),
        ("https://e.com/world/", "listing"),
        ("https://e.com/tag/nato/", "listing"),
        ("https://e.com/section/world/page/2/", "listing"),
        ("https://e.com/news?page=3", "listing"),
        ("https://e.com/about/", "utility"),
        ("https://e.com/contact-us", "utility"),
        ("https://e.com/2021/02/23/pentagon-says/", "article"),
        ("https://e.com/world/europe-68123456", "article"),
        ("https://e.com/politics/minister-resigns-after-budget-vote", "article"),
        ("https://e.com/hl?a=20170309-35097838-cnetj-sci", "article"),
        ("https://e.com/?p=4411", "unknown"),  # a WordPress post, not pagination
        ("https://e.com/?paged=2", "listing"),
        ("https://e.com/?cat=7", "unknown"),  # a query and no path
    ],
)
def test_url_shape(url, shape):
    assert url_shape(url) == shape


def test_structured_signals_outweigh_an_unknown_url():
    meta = PageMeta(og_type="article")
    assert classify_page("https://e.com/x/y", meta, "A paragraph of the story. " * 32, min_chars=300).is_article
    listing = PageMeta(og_type="website", jsonld_types={"collectionpage"})
    assert not classify_page("https://e.com/x/y", listing, "A teaser of a story. " * 60, min_chars=300).is_article


STORY = [f"Paragraph {i} of the story: the harbour board met on Tuesday, and its members argued over the plan "
         f"until late in the evening." for i in range(10)]


def _story_page(paragraphs: list[str], *, head: str = "", after: str = "") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<html><head><title>The harbour plan</title>{head}</head><body><header><a href='/'>Herald</a></header>"
            f"<main><h1>The harbour board argues over the plan</h1>{body}{after}</main></body></html>")


@pytest.mark.parametrize("url", ["https://herald.example/p/4411.html", "https://herald.example/?p=4411",
                                 "https://herald.example/a/0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
                                 "https://herald.example/index.php?id=8842133"])
def test_a_story_is_an_article_whatever_its_url_looks_like(url):
    result = extract_page(_story_page(STORY), url, OPTIONS, min_chars=300, now=NOW)
    assert result.reason == "article", result.detail
    assert "paragraphs:10(+2)" in result.detail


def test_a_story_whose_paragraphs_carry_many_links_is_still_an_article():
    linked = [p.replace("the harbour board met on Tuesday", "<a href='/board'>the harbour board</a> "
                        "<a href='/tuesday'>met on Tuesday</a>").replace("argued over the plan",
                        "<a href='/plan'>argued over the plan</a>") for p in STORY]
    page = _story_page(linked, head='<meta property="og:type" content="website">')
    result = extract_page(page, "https://herald.example/p/1.html", OPTIONS, min_chars=300, now=NOW)
    assert result.reason == "article", result.detail


def test_teaser_cards_are_a_listing_however_long_and_whatever_the_page_claims():
    cards = "".join(f'<article class="card"><h2><a href="/p/{i}.html">Story {i}: the harbour board meets again'
                    f'</a></h2><p class="byline">By Ann Example</p><p>{STORY[i % 10]} {STORY[(i + 1) % 10]}</p>'
                    f"</article>" for i in range(12))
    head = '<script type="application/ld+json">{"@type": "NewsArticle", "headline": "Latest"}</script>'
    page = f"<html><head><title>Latest</title>{head}</head><body><h1>Latest</h1><main>{cards}</main></body></html>"
    result = extract_page(page, "https://herald.example/?cat=7", OPTIONS, min_chars=300, now=NOW)
    assert result.reason == "not_article"
    assert "teasers:1.00(-6)" in result.detail and "structured:article(+3)" in result.detail, result.detail


def test_a_page_of_links_with_one_line_teasers_is_not_an_article():
    items = "".join(f'<li><a href="/p/{i}.html">Story {i}: the council meets again over the harbour plan</a>'
                    f"<br>The board argues late into the night.</li>" for i in range(40))
    page = f"<html><head><title>Archive</title></head><body><h1>Archive</h1><ul>{items}</ul></body></html>"
    result = extract_page(page, "https://herald.example/p/archive.html", OPTIONS, min_chars=300, now=NOW)
    assert result.reason == "not_article", result.detail


def test_title_site_suffix_is_stripped():
    url = "https://www.golem.de/news/x.html"
    assert article_title("Akkutechnik: Hat Quantumscape genug Akkus? - Golem.de", None, url) == (
        "Akkutechnik: Hat Quantumscape genug Akkus?"
    )
    assert article_title("Headline about the harbour – Diplomatic Times", "Diplomatic Times", url) == (
        "Headline about the harbour"
    )
    assert article_title("Ukraine: Ziele, Chancen, Risiken", "DW", url) == "Ukraine: Ziele, Chancen, Risiken"


@pytest.mark.parametrize(("head", "attributes", "signal"), [
    ("", ' itemscope itemtype="https://schema.org/NewsArticle"', "structured:article(+3)"),
    ('<script type="application/ld+json">[{"@type": "BreadcrumbList"}, {"@type": ["ReportageNewsArticle"]}]'
     "</script>", "", "structured:article(+3)"),
    ('<script type="application/ld+json">{"@graph": [{"@type": "WebPage"}, {"@type": "BlogPosting"}]}</script>', "",
     "structured:article(+3)"),
    ('<meta property="article:published_time" content="2024-05-03T08:00:00Z">', "", "date:stated(+1)"),
], ids=["microdata", "jsonld-array", "jsonld-graph", "published-time"])
def test_structured_data_wherever_it_is_stated(head, attributes, signal):
    page = _story_page(STORY[:3], head=head).replace("<main>", f"<main{attributes}>")
    result = extract_page(page, "https://herald.example/p/4411.html", OPTIONS, min_chars=300, now=NOW)
    assert signal in result.detail, result.detail
    assert result.reason == "article"


@pytest.mark.needs_corpus
def test_trafilaturas_document_is_bare_extractions_less_the_license_and_a_stated_date():
    # pipelines/trafilatura_document.py runs trafilatura's own steps without two the archive never reads: every
    # other field of the Document is the same as bare_extraction's, body included, for every corpus page
    from lxml.html import tostring
    from trafilatura import bare_extraction
    from trafilatura.utils import load_html
    from trafilatura.xml import xmltotxt

    from pipelines.decode import page_text
    from pipelines.extract import PRUNE_XPATH
    from pipelines.trafilatura_document import trafilatura_document
    from test_decode import corpus_pages

    options = build_options()
    pages = corpus_pages()
    assert len(pages) == 351
    compared = licensed = 0
    for page_id, body in pages:
        tree = load_html(page_text(body, "text/html"))
        before = tostring(tree)
        expected = bare_extraction(tree, options=options, prune_xpath=PRUNE_XPATH)
        for date_stated in (False, True):
            got = trafilatura_document(tree, options, prune_xpath=PRUNE_XPATH, date_stated=date_stated)
            assert (got is None) == (expected is None), page_id
            if got is None:
                continue
            want = expected.as_dict()
            licensed += bool(want["license"]) and not date_stated
            want["license"] = None
            if date_stated:
                want["date"] = None
            have = got.as_dict()
            assert xmltotxt(have.pop("body"), False) == xmltotxt(want.pop("body"), False), page_id
            have.pop("commentsbody"), want.pop("commentsbody")
            assert have == want, page_id
            compared += 1
        assert tostring(tree) == before, "the page's own tree is left as it was"
    assert compared >= 2 * 340 and licensed > 0  # nearly every page gives a document; some state a license
