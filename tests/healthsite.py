"""Local publishers that publish every day, and break the way publishers break, for the site-health tests.

``HealthSite(name, stories)`` is a small news site whose ``edition(day)`` (a ``LocalSite.pages`` map) has the
stories of that day and the days before: a home page linking the latest stories (by short links that redirect,
and one dead link), a Google News sitemap of the last two days, robots.txt naming it, and the story pages
(validators as nginx sends them, so an unchanged page answers 304). Day 1 has ``backlog`` stories, each later day
``per_day`` more.

Two breakages, from a given day on:

- ``layout="script"``: the site moved to client-side rendering. Story pages still carry their headline, byline,
  date and JSON-LD, but the body is in a ``<script type="application/json">`` blob that the page's JavaScript
  would render; trafilatura finds no body in it.
- ``sitemap_emptied=True``: the Google News sitemap lists nothing, and the home page (whose links a JavaScript
  widget now renders) none either: no new story is found.

The stories' text is real: paragraphs of the shared corpus' ground-truth bodies, one corpus record per story.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from crawler.localsite import Page

FIRST_DAY = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Story:
    n: int
    day: int
    title: str
    author: str
    paragraphs: tuple[str, ...]

    @property
    def path(self) -> str:
        published = self.published
        return f"/news/{published:%Y/%m/%d}/story-{self.n}.html"

    @property
    def published(self) -> datetime:
        return FIRST_DAY + timedelta(days=self.day - 1, minutes=7 * self.n)


def corpus_texts(corpus_dir: Path, count: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """(title, author, paragraphs) of ``count`` corpus records with long bodies of at least five paragraphs."""
    truth = json.loads((corpus_dir / "fundus" / "ground_truth.json").read_text(encoding="utf-8"))
    texts = []
    for key in sorted(truth):
        record = truth[key]
        paragraphs = tuple(p.strip() for p in record["body"].split("\n\n") if len(p.strip()) > 80)
        if len(paragraphs) >= 5 and sum(map(len, paragraphs)) > 1500 and record.get("title"):
            authors = record.get("authors") or ["Staff Reporter"]
            texts.append((record["title"], authors[0], paragraphs[:12]))
        if len(texts) == count:
            return texts
    raise AssertionError(f"the corpus has fewer than {count} long bodies")


class HealthSite:
    def __init__(self, name: str, texts: list, *, backlog: int = 4, per_day: int = 3) -> None:
        self.name = name
        self.backlog = backlog
        self.per_day = per_day
        self.texts = texts
        self.base_url = ""  #: set once its LocalSite is started
        self.layout_from: int | None = None  #: the day from which story bodies are rendered by script
        self.sitemap_emptied_from: int | None = None

    def stories(self, day: int) -> list[Story]:
        """Every story online on ``day``, oldest first."""
        count = self.backlog + self.per_day * (day - 1)
        if count > len(self.texts):
            raise AssertionError(f"{self.name}: {count} stories need as many corpus texts")
        stories = []
        for n in range(count):
            published_day = 1 if n < self.backlog else 2 + (n - self.backlog) // self.per_day
            title, author, paragraphs = self.texts[n]
            stories.append(Story(n=n, day=published_day, title=title, author=author, paragraphs=paragraphs))
        return stories

    def new_on(self, day: int) -> list[Story]:
        return [story for story in self.stories(day) if story.day == day]

    def edition(self, day: int) -> dict[str, Page]:
        scripted = self.layout_from is not None and day >= self.layout_from
        emptied = self.sitemap_emptied_from is not None and day >= self.sitemap_emptied_from
        now = FIRST_DAY + timedelta(days=day - 1, hours=1)
        stories = self.stories(day)
        pages: dict[str, Page] = {
            "/robots.txt": Page(body=f"User-agent: *\nAllow: /\nSitemap: {self.base_url}/sitemap-news.xml\n".encode(),
                                content_type="text/plain", last_modified=FIRST_DAY),
        }
        latest = [] if emptied else [story for story in stories if story.day >= day - 1]
        pages["/sitemap-news.xml"] = Page(body=self._news_sitemap(latest), content_type="application/xml",
                                          last_modified=now)
        pages["/"] = Page(body=self._home([] if emptied else stories[-8:]), last_modified=now)
        pages["/news/2026/11/01/withdrawn-story.html"] = Page(body=b"<h1>Not found</h1>", status=404)
        for story in stories:
            pages[f"/s/{story.n}"] = Page(body=b"", status=301, headers={"Location": self.base_url + story.path})
            pages[story.path] = Page(body=self._story(story, scripted=scripted),
                                     last_modified=now if scripted else story.published)
        return pages

    # --- markup ---------------------------------------------------------------------------------------------

    def _chrome(self, title: str, head: str, main: str) -> bytes:
        return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
                f"</title>{head}</head><body><header><a href=\"/\">{html.escape(self.name)}</a><nav>"
                f"<a href=\"/\">Home</a> <a href=\"/news/\">News</a> <a href=\"/about/\">About</a></nav></header>"
                f"<main>{main}</main><footer><p>Copyright 2019-2026 {html.escape(self.name)}. All rights "
                f"reserved.</p><a href=\"/privacy/\">Privacy</a></footer></body></html>").encode()

    def _home(self, stories: list[Story]) -> bytes:
        items = "".join(f"<li><a href=\"/s/{story.n}\">{html.escape(story.title)}</a></li>"
                        for story in reversed(stories))
        items += "<li><a href=\"/news/2026/11/01/withdrawn-story.html\">A story since withdrawn</a></li>"
        script = "" if stories else "<div id=\"latest\" data-src=\"/api/latest.json\"></div>"
        return self._chrome(f"{self.name}: latest news", '<meta property="og:type" content="website">',
                            f"<h1>Latest news</h1><ul>{items}</ul>{script}")

    def _story(self, story: Story, *, scripted: bool) -> bytes:
        url = self.base_url + story.path
        when = story.published.isoformat()
        ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": story.title,
              "datePublished": when, "author": {"@type": "Person", "name": story.author},
              "mainEntityOfPage": url}
        head = (f"<link rel=\"canonical\" href=\"{url}\"><meta property=\"og:type\" content=\"article\">"
                f"<meta property=\"article:published_time\" content=\"{when}\">"
                f"<script type=\"application/ld+json\">{json.dumps(ld)}</script>")
        if scripted:
            body = ("<div id=\"article-body\"></div><script type=\"application/json\" id=\"__NEXT_DATA__\">"
                    + json.dumps({"props": {"paragraphs": list(story.paragraphs)}}).replace("</", "<\\/")
                    + "</script>")
        else:
            body = "".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs)
        main = (f"<article><h1>{html.escape(story.title)}</h1><p class=\"byline\">By "
                f"<span class=\"author\">{html.escape(story.author)}</span></p>"
                f"<time datetime=\"{when}\">{story.published:%d %B %Y}</time>{body}</article>")
        return self._chrome(f"{story.title} | {self.name}", head, main)

    def _news_sitemap(self, stories: list[Story]) -> bytes:
        entries = "".join(
            f"<url><loc>{self.base_url}{story.path}</loc><news:news><news:publication><news:name>"
            f"{html.escape(self.name)}</news:name><news:language>en</news:language></news:publication>"
            f"<news:publication_date>{story.published.isoformat()}</news:publication_date>"
            f"<news:title>{html.escape(story.title)}</news:title></news:news></url>" for story in stories)
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><urlset "
                "xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\" "
                "xmlns:news=\"http://www.google.com/schemas/sitemap-news/0.9\">" + entries + "</urlset>").encode()
