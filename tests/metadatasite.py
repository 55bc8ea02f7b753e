"""A local publisher that states a lot about its stories outside their bodies, for the publisher-metadata tests.

"The Ledger": a home page, robots.txt naming a Google News sitemap, and seven story pages whose text is real
(paragraphs of the shared corpus' ground-truth bodies). The sitemap binds Google's news namespace to two
prefixes (``news:`` and ``n:``) and carries, for its entries, every ``news:`` field (title, publication date,
keywords, publication name and language, genres, stock tickers, access), some entries only a few. Stories:

- ``free``: JSON-LD in an ``@graph`` with ``isAccessibleForFree: true``, articleSection and keywords, plus
  ``article:section``/``article:tag``/``keywords`` meta tags that overlap them; in the sitemap only.
- ``paywalled``: ``isAccessibleForFree: false`` and ``hasPart`` marking ``.paywall`` (the paywalled paragraphs are
  in the HTML); linked from the home page under a tracking-parameter variant, and in the sitemap (``n:`` prefix,
  a date without a time).
- ``teaser``: ``isAccessibleForFree: "False"``, ``hasPart`` marking ``.paywall``, which the page does not carry:
  one short lead paragraph and a subscription box; in the sitemap.
- ``lead_only``: like the teaser but with a lead long enough to be an article; linked from the home page.
- ``late``: linked from the home page and in the sitemap; a test holds the sitemap until this story's row is
  written, so its sitemap fields reach a row already written.
- ``redirected``: the sitemap lists a short URL that redirects (301) to the story.
- ``unlisted``: linked from the home page only, stating nothing of the kind.

The home page also carries a dead link (404). Pages answer conditional requests (ETag, as static servers do).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

from crawler.localsite import Page

GOOGLE_NEWS = "http://www.google.com/schemas/sitemap-news/0.9"
SITE_NAME = "The Ledger"
HOME_QUERY = "?utm_source=home&utm_medium=web"  #: the home page links one story with tracking parameters


@dataclass(frozen=True)
class Story:
    role: str
    path: str
    title: str
    author: str
    paragraphs: tuple[str, ...]
    jsonld: dict = field(default_factory=dict)  #: merged into the NewsArticle object
    meta: tuple[tuple[str, str, str], ...] = ()  #: (attribute, name, content) of extra <meta> tags
    paywalled_from: int | None = None  #: paragraphs from this one are in <div class="paywall">
    paywall_box: bool = False  #: a "subscribe to read on" box instead of the rest
    graph: bool = False  #: JSON-LD as an @graph with a WebPage


def stories(texts: list[tuple[str, str, tuple[str, ...]]]) -> dict[str, Story]:
    """The site's stories, made from (title, author, paragraphs) corpus texts (seven of them)."""
    free, paywalled, teaser, lead_only, late, redirected, unlisted = texts[:7]
    paywall_part = {"hasPart": {"@type": "WebPageElement", "isAccessibleForFree": False, "cssSelector": ".paywall"}}
    return {story.role: story for story in [
        Story("free", "/2026/11/20/senate-passes-budget.html", free[0], free[1], free[2],
              jsonld={"isAccessibleForFree": True, "articleSection": "Politics", "keywords": ["Senate", "Budget"]},
              meta=(("property", "article:section", "Politics"), ("property", "article:section", "US News"),
                    ("property", "article:tag", "Congress"), ("property", "article:tag", "senate"),
                    ("name", "keywords", "Senate, Fiscal policy")),
              graph=True),
        Story("paywalled", "/2026/11/20/port-strike-talks.html", paywalled[0], paywalled[1], paywalled[2],
              jsonld={"isAccessibleForFree": False, "articleSection": ["Business", "Labour"], **paywall_part},
              paywalled_from=2),
        Story("teaser", "/2026/11/20/inside-the-budget-deal.html", teaser[0], teaser[1], (teaser[2][0][:180],),
              jsonld={"isAccessibleForFree": "False", **paywall_part}, paywall_box=True),
        Story("lead_only", "/2026/11/21/markets-rally.html", lead_only[0], lead_only[1], lead_only[2][:3],
              jsonld={"isAccessibleForFree": False, **paywall_part}, paywall_box=True),
        Story("late", "/2026/11/21/storm-warning.html", late[0], late[1], late[2],
              meta=(("property", "article:tag", "Weather"),)),
        Story("redirected", "/2026/11/21/school-funding.html", redirected[0], redirected[1], redirected[2]),
        Story("unlisted", "/2026/11/19/harbour-reopens.html", unlisted[0], unlisted[1], unlisted[2]),
    ]}


#: what the sitemap says of each story it lists: (prefix, loc path or None for the story's own, fields)
SITEMAP = {
    "free": ("news:", None, {
        "publication": ("The Ledger", "en"), "genres": "Blog, OpEd", "publication_date": "2026-11-20T06:07:00+01:00",
        "title": "Senate passes the budget, at last", "keywords": "Budget, Taxes, senate, Appropriations",
        "stock_tickers": "NYSE:GS, NASDAQ:AMAT", "access": "Registration"}),
    "paywalled": ("n:", None, {
        "publication": ("The Ledger", "en"), "publication_date": "2026-11-20", "title": "Port strike talks resume",
        "keywords": "Labour, Shipping"}),
    "teaser": ("news:", None, {
        "publication": ("The Ledger", "en"), "publication_date": "2026-11-20T09:30:00Z",
        "title": "Inside the budget deal", "access": "Subscription"}),
    "late": ("news:", None, {
        "publication": ("The Ledger Weekend", "en-GB"), "publication_date": "2026-11-21T05:45:00-05:00",
        "title": "Storm warning for the coast", "keywords": "Weather, Coast, weather"}),
    "redirected": ("n:", "/s/6", {
        "publication": ("The Ledger", "en"), "publication_date": "2026-11-21T07:00:00+00:00",
        "title": "School funding formula changes", "keywords": "Education"}),
}


class MetadataSite:
    def __init__(self, texts) -> None:
        self.stories = stories(texts)
        self.base_url = ""  #: set once its LocalSite is started

    def url(self, role: str) -> str:
        return self.base_url + self.stories[role].path

    def pages(self) -> dict[str, Page]:
        pages = {
            "/robots.txt": Page(body=f"User-agent: *\nAllow: /\nSitemap: {self.base_url}/sitemap-news.xml\n".encode(),
                                content_type="text/plain"),
            "/sitemap-news.xml": Page(body=self.news_sitemap(), content_type="application/xml"),
            "/": Page(body=self.home()),
            "/s/6": Page(body=b"", status=301, headers={"Location": self.url("redirected")}),
        }
        for story in self.stories.values():
            pages[story.path] = Page(body=self.story(story))
        # the page a tracking-parameter link leads to is the story, as on a publisher's server
        pages[self.stories["paywalled"].path + HOME_QUERY] = pages[self.stories["paywalled"].path]
        return pages

    def news_sitemap(self) -> bytes:
        entries = []
        for role, (p, loc, fields) in SITEMAP.items():
            name, language = fields["publication"]
            parts = [f"<{p}publication><{p}name>{html.escape(name)}</{p}name><{p}language>{language}</{p}language>"
                     f"</{p}publication>"]
            for tag in ("genres", "publication_date", "title", "keywords", "stock_tickers", "access"):
                if tag in fields:
                    parts.append(f"<{p}{tag}>{html.escape(fields[tag])}</{p}{tag}>")
            where = self.base_url + (loc or self.stories[role].path)
            entries.append(f"<url><loc>{where}</loc><lastmod>2026-11-21</lastmod><{p}news>{''.join(parts)}</{p}news>"
                           f"</url>")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
                f'xmlns:news="{GOOGLE_NEWS}" xmlns:n="{GOOGLE_NEWS}">\n' + "\n".join(entries) + "\n</urlset>\n").encode()

    def home(self) -> bytes:
        links = [("paywalled", HOME_QUERY), ("lead_only", ""), ("late", ""), ("unlisted", "")]
        items = "".join(f'<li><a href="{self.stories[role].path}{query}">{html.escape(self.stories[role].title)}</a></li>'
                        for role, query in links)
        items += '<li><a href="/2026/11/01/withdrawn-story.html">A story since withdrawn</a></li>'
        return self._chrome(f"{SITE_NAME}: latest news", '<meta property="og:type" content="website">',
                            f"<h1>Latest news</h1><ul>{items}</ul>")

    def story(self, story: Story) -> bytes:
        url = self.base_url + story.path
        article = {"@type": "NewsArticle", "headline": story.title, "datePublished": "2026-11-20T06:00:00+00:00",
                   "author": {"@type": "Person", "name": story.author}, **story.jsonld}
        if story.graph:
            ld = {"@context": "https://schema.org", "@graph": [
                {"@type": "WebPage", "@id": url, "name": story.title}, article]}
        else:
            ld = {"@context": "https://schema.org", **article}
        head = (f'<link rel="canonical" href="{url}"><meta property="og:type" content="article">'
                + "".join(f'<meta {attribute}="{name}" content="{html.escape(content)}">'
                          for attribute, name, content in story.meta)
                + f'<script type="application/ld+json">{json.dumps(ld)}</script>')
        cut = story.paywalled_from if story.paywalled_from is not None else len(story.paragraphs)
        body = "".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs[:cut])
        if story.paywalled_from is not None:
            body += ('<div class="paywall">' + "".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs[cut:])
                     + "</div>")
        if story.paywall_box:
            body += ('<aside class="subscribe-box"><p>Subscribe to The Ledger to read the rest of this story.</p>'
                     '<a href="/subscribe/">Subscribe</a></aside>')
        main = (f'<article><h1>{html.escape(story.title)}</h1><p class="byline">By <span class="author">'
                f"{html.escape(story.author)}</span></p>{body}</article>")
        return self._chrome(f"{story.title} | {SITE_NAME}", head, main)

    def _chrome(self, title: str, head: str, main: str) -> bytes:
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f'{head}</head><body><header><a href="/">{SITE_NAME}</a><nav><a href="/">Home</a> '
                f'<a href="/about/">About</a></nav></header><main>{main}</main><footer><p>Copyright 2019-2026 '
                f"{SITE_NAME}. All rights reserved.</p></footer></body></html>").encode()
