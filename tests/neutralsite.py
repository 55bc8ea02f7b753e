"""The corpus served under neutral URLs, with listing pages that have long text, for the article-detection tests.

Publishers' article URLs are often opaque: ``/p/123.html``, WordPress' ``/?p=4411``, a UUID. ``build_neutral_site``
serves every news and magazine page of ../shared/corpus unchanged under such URLs, in turn, and beside them the
listing pages a publisher has, each with many teasers long enough that text length alone would take them for an
article: the home page, section pages (one under a neutral ``/?cat=<n>``), a tag page, a search results page,
pagination, an author page. Some listings carry ``og:type website`` or a JSON-LD CollectionPage, some say nothing;
some wrap teasers in ``<article>`` cards with a byline and a ``<time>`` each, some in plain ``<div>``s. The corpus'
own two news index pages (one carries NewsArticle markup) are served too, at ``/p/index-<id>.html``.
"""

from __future__ import annotations

import html
import json
import uuid

from crawler.localsite import Page
from newssite import corpus_page, corpus_records

PAGE_TYPES = ("news", "magazine_or_blog_article")


def neutral_path(n: int) -> str:
    """The n-th article's URL path: ``/p/<n>.html``, ``/?p=<n>`` or ``/a/<uuid>``, in turn."""
    return (f"/p/{n}.html", f"/?p={n}", f"/a/{uuid.UUID(int=n + 1)}")[n % 3]


def _excerpt(body: str, limit: int) -> str:
    text = " ".join(body.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


#: (path, title, style): the listing pages and how each is marked up
LISTINGS = [
    ("/", "Latest news", {"og": "website", "cards": "article", "per_page": 40, "excerpt": 220}),
    ("/category/world/", "World", {"og": "website", "cards": "article", "per_page": 25, "excerpt": 300}),
    ("/?cat=7", "Politics", {"og": None, "cards": "div", "per_page": 25, "excerpt": 400}),
    ("/tag/elections/", "Tag: elections", {"og": None, "cards": "div", "per_page": 20, "excerpt": 350,
                                           "jsonld": "CollectionPage"}),
    ("/?s=climate", "Search results for “climate”", {"og": None, "cards": "div", "per_page": 20, "excerpt": 500,
                                                     "jsonld": "SearchResultsPage"}),
    ("/page/2/", "Latest news, page 2", {"og": "website", "cards": "article", "per_page": 40, "excerpt": 220}),
    ("/author/jane-doe/", "Jane Doe", {"og": "profile", "cards": "article", "per_page": 15, "excerpt": 600,
                                       "bio": True}),
]


def build_neutral_site(base_url: str) -> tuple[dict[str, Page], dict[str, str], list[str]]:
    """(pages, article path -> corpus id, listing paths: the corpus' index pages, then LISTINGS). The home page
    and the sitemap link every article; the sitemap every listing but the home page."""
    base = base_url.rstrip("/")
    pages: dict[str, Page] = {}
    ids: dict[str, str] = {}
    stories = []
    for rec in corpus_records():
        if rec.rec.get("page_type") not in PAGE_TYPES:
            continue
        path = neutral_path(len(ids))
        pages[path] = corpus_page(rec)
        ids[path] = rec.id
        stories.append((path, rec.rec.get("title") or rec.id, rec.rec.get("body") or "",
                        (rec.rec.get("authors") or [rec.rec.get("byline") or "Staff"])[0] or "Staff"))
    listing_paths = []
    for rec in corpus_records():  # the corpus' own listings (news index pages), under neutral URLs too
        if rec.rec.get("page_type") == "news_index_page":
            path = f"/p/index-{rec.id}.html"
            pages[path] = corpus_page(rec)
            listing_paths.append(path)
    for number, (path, title, style) in enumerate(LISTINGS):
        chosen = stories[number * 11:] + stories[: number * 11]
        if path == "/":
            chosen = stories  # the home page links every story
        pages[path] = _listing(title, chosen[: len(stories) if path == "/" else style["per_page"]], style)
        listing_paths.append(path)
    urls = "".join(f"<url><loc>{html.escape(base + path)}</loc></url>" for path in [*ids, *listing_paths] if path != "/")
    pages["/sitemap.xml"] = Page(body=(f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/'
                                       f'schemas/sitemap/0.9">{urls}</urlset>').encode(), content_type="application/xml")
    pages["/robots.txt"] = Page(body=f"User-agent: *\nDisallow:\n\nSitemap: {base}/sitemap.xml\n".encode(),
                                content_type="text/plain; charset=utf-8")
    return pages, ids, listing_paths


def _listing(title: str, stories: list, style: dict) -> Page:
    head = f"<title>{html.escape(title)} | The Corpus Times</title>"
    if style.get("og"):
        head += f'<meta property="og:type" content="{style["og"]}">'
    if style.get("jsonld"):
        head += ('<script type="application/ld+json">'
                 + json.dumps({"@context": "https://schema.org", "@type": style["jsonld"], "name": title}) + "</script>")
    cards = []
    for n, (path, story_title, body, author) in enumerate(stories):
        inner = (f'<h2 class="entry-title"><a href="{html.escape(path)}">{html.escape(story_title)}</a></h2>'
                 f'<p class="byline">By {html.escape(author)}</p><time datetime="2026-11-{1 + n % 28:02d}">'
                 f"{1 + n % 28} November 2026</time>"
                 f"<p>{html.escape(_excerpt(body, style['excerpt']))}</p>"
                 f'<a class="more" href="{html.escape(path)}">Read more</a>')
        tag = "article" if style["cards"] == "article" else "div"
        cards.append(f'<{tag} class="post teaser">{inner}</{tag}>')
    bio = ("<section class=\"author-bio\"><p>Jane Doe has covered politics, climate and the economy for The Corpus "
           "Times since 2009, reporting from Brussels, Nairobi and Washington. She writes a weekly column on the "
           "people who run the institutions most of us never see, and how they decide what happens next.</p>"
           "</section>") if style.get("bio") else ""
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{head}</head><body><header>'
            f'<a href="/">The Corpus Times</a><nav><a href="/category/world/">World</a> <a href="/?cat=7">Politics</a>'
            f' <a href="/tag/elections/">Elections</a></nav></header><main><h1>{html.escape(title)}</h1>{bio}'
            f'{"".join(cards)}<nav class="pagination"><a href="/page/2/">Next page</a></nav></main>'
            f"<footer><p>Copyright 2026 The Corpus Times</p></footer></body></html>")
    return Page(body=page.encode("utf-8"))
