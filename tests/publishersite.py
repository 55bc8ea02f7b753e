"""A local news publisher that changes between two crawls, for incremental-crawl tests.

``build_publisher_site(base_url)`` returns a ``PublisherSite`` ("The Northgate
Courier"): ``site.edition(1)`` and ``site.edition(2)`` are the site on two
mornings, as ``LocalSite.pages`` maps (request path with query -> Page). Every
page has a ``last_modified`` time, so ``LocalSite`` serves it as nginx serves
a static file (Last-Modified, an mtime-size ETag, 304 to matching validators).

Edition 1 (2026-11-29) has 20 stories; edition 2 (2026-11-30) keeps them all
online and adds 12: four only in the Google News sitemap, four only in the RSS
feed and four only on the home page (through short links and AMP variants).
robots.txt, the sitemap index, the old sitemaps, the section, about and
contact pages and every page of an edition-1 story keep the same bytes and
the same Last-Modified in edition 2; the home page, the news sitemap and the
feed change.

Story pages are real corpus pages (the HTML of the shared test corpus, decoded
and served as UTF-8) with their rel=canonical and og:url pointing at the
story's URL here, their relative links made absolute on the publisher they
came from (so that nothing they link on this host is missing) and a block of
tag links appended before ``</body>``. Each story also answers at:

- ``/p/<id>``: a short link, 301 to the canonical URL (the home page links these);
- ``<path>amp/`` or ``<path>?amp=1`` (alternating): the AMP variant, the same
  HTML with the same rel=canonical, an alias of the story;
- ``<path>`` without its trailing slash: 301 to the path with it.

Dead links: tag pages that answer 404 (linked from the home, section and story
pages), ``/section/discontinued/`` (410), and the short link of a deleted story
whose 301 ends on a 404. In edition 2 one page serves an edition-1 story's HTML with a
rel=canonical on another publisher's host (``offsite_canonical_variant``, linked
from the home page): the pipeline ignores an off-site canonical, so that URL is an
article URL of its own, not an alias (its body is the story's: the archive records
it as an exact duplicate of the story archived by the run before).

Only the standard library, lxml (through ``newssite``) and
``pipelines.fingerprints`` (the pipeline's SimHash, to keep the stories
distinct) are used.
"""

from __future__ import annotations

import codecs
import functools
import html
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote, urljoin
from xml.sax.saxutils import escape as xml_escape

try:
    from crawler.localsite import Page
except ModuleNotFoundError:  # run from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from crawler.localsite import Page

from newssite import (
    NEWS_SITEMAP_NS,
    SITEMAP_NS,
    CorpusRecord,
    _article_slug,
    _corpus_dir,
    _body_visible,
    _html_traits,
    _iso,
    _json_ld,
    _lang,
    _parse_date,
    _readability_authors,
    _teaser,
    corpus_content_type,
    corpus_records,
    slugify,
)
from pipelines import fingerprints

SITE_NAME = "The Northgate Courier"
HTML_TYPE = "text/html; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

#: the file times of the two editions (every page of edition 1; what edition 2 adds or changes)
EDITION_TIMES = {
    1: datetime(2026, 11, 29, 6, 0, tzinfo=timezone.utc),
    2: datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc),
}
#: no story may be dated after this
NOT_AFTER = datetime(2026, 12, 1, tzinfo=timezone.utc)

N_EDITION_1 = 20
N_NEW = {"home": 4, "news_sitemap": 4, "feed": 4}  #: edition 2's new stories by the one route that links them
HOME_SIZE = 16  #: stories in the home page's top list
LIST_SIZE = 10  #: entries of the news sitemap and of the feed
KEPT_IN_LISTS = 6  #: edition-1 stories the news sitemap and the feed of edition 2 keep
ARCHIVE_STORIES = 4  #: edition-1 stories in /sitemap-archive-2025.xml
SIMHASH_MIN_DISTANCE = 11  #: no two stories within SimHash distance 10
MIN_BODY = 1200
SHORT_ID_BASE = 48000

START_PATHS = ["/", "/robots.txt"]  #: what a crawl of the site starts from; the rest is found from these

HOME = "/"
ROBOTS = "/robots.txt"
SITEMAP_INDEX = "/sitemap_index.xml"
NEWS_SITEMAP = "/news-sitemap.xml"
ARCHIVE_SITEMAP = "/sitemap-archive-2025.xml"
PAGES_SITEMAP = "/sitemap-pages.xml"
FEED = "/feed/"
ABOUT = "/about/"
CONTACT = "/contact/"
SECTIONS = {"/section/world/": "World", "/section/business/": "Business", "/section/culture/": "Culture"}
DISCONTINUED = "/section/discontinued/"
ARCHIVE_SITEMAP_LASTMOD = datetime(2026, 1, 5, tzinfo=timezone.utc)
PAGES_SITEMAP_LASTMOD = datetime(2025, 3, 1, tzinfo=timezone.utc)

#: tag archives the CMS no longer has (404), shared among the story pages and the sections
STORY_TAGS = {
    "/tag/analysis/": "Analysis",
    "/tag/europe/": "Europe",
    "/tag/economy/": "Economy",
    "/tag/opinion/": "Opinion",
    "/tag/elections/": "Elections",
}
#: old campaign tags the home page still links (404)
HOME_TAGS = {
    "/tag/world-cup-2022/": "World Cup 2022",
    "/tag/brexit-live/": "Brexit live",
    "/tag/covid-19-updates/": "Covid-19 updates",
}
DELETED_SHORT_PATH = f"/p/{SHORT_ID_BASE}"
DELETED_STORY_PATH = "/news/2026/06/02/harbour-bridge-vote-postponed/"
DELETED_TITLE = "Harbour bridge vote postponed again"
OFFSITE_HOST = "https://other-publisher.example"

#: corpus pages a story may not be made of, and why (found by the extraction check of test_publisher_site)
SKIP: dict[str, str] = {
    "pl-Rzeczpospolita_2025_02_02": "trafilatura keeps the paywall box and the appended tag links in the "
                                    "body (2.3 times the ground truth)",
}


# --------------------------------------------------------------------------- data model


@dataclass(eq=False)
class Story:
    """One article of the publisher."""

    number: int  #: 1..32, in order of publication (edition 1 holds 1..20)
    source_id: str  #: the corpus page it is made of
    title: str  #: ground truth from the corpus
    body: str  #: ground truth from the corpus, paragraphs separated by "\n\n"
    authors: list[str]
    language: str
    published: datetime  #: as the corpus page states it (not after 2026-12-01)
    path: str  #: canonical path, /news/YYYY/MM/DD/<slug>/ (the publication date)
    short_path: str  #: /p/<id>: 301 to the canonical URL
    amp_path: str  #: <path>amp/ or <path>?amp=1: the same HTML, rel=canonical to the canonical URL
    slashless_path: str  #: the path without its trailing slash: 301 to the path
    edition: int  #: the first edition it appears in
    section: str  #: the section page that lists it (edition-1 stories only, else "")
    tags: list[str]  #: the dead tag pages its page links
    #: edition -> page path -> the hrefs (path with query) by which that page links the story
    links: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    #: the one route that links a new story of edition 2: "home", "news_sitemap" or "feed" ("" for edition 1)
    new_route: str = ""

    def routes(self, edition: int) -> set[str]:
        """The pages of ``edition`` that link this story (by any of its URLs)."""
        return set(self.links.get(edition, {}))

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + self.path


@dataclass(eq=False)
class PublisherSite:
    base_url: str
    stories: list[Story]
    #: every path that answers 404 or 410 in either edition -> that status
    dead_paths: dict[str, int]
    #: every path that answers a redirect in either edition -> (status, target path with query)
    redirect_paths: dict[str, tuple[int, str]]
    offsite_canonical_variant: str  #: path of the page whose rel=canonical is on another host
    offsite_canonical_url: str  #: what that page declares as canonical
    offsite_variant_of: Story  #: whose HTML it serves
    slashless_link: str  #: the home page's trailing-slash-less link (301 to the story)
    tracking_link: str  #: the home page's /out?to=... link (302 to the story)
    deleted_short_path: str = DELETED_SHORT_PATH  #: a short link of a deleted story: 301 to a 404
    deleted_story_path: str = DELETED_STORY_PATH
    start_paths: list[str] = field(default_factory=lambda: list(START_PATHS))
    _editions: dict[int, dict[str, Page]] = field(default_factory=dict, repr=False)

    def edition(self, n: int) -> dict[str, Page]:
        """The site on the morning of edition ``n`` (1 or 2): request path with query -> Page."""
        if n not in self._editions:
            raise ValueError(f"no edition {n}: 1 or 2")
        return dict(self._editions[n])

    def url(self, path: str) -> str:
        return self.base_url + path

    def stories_in(self, edition: int) -> list[Story]:
        """The stories online in ``edition`` (edition 2 keeps every story of edition 1)."""
        return [s for s in self.stories if s.edition <= edition]

    def story_paths(self, edition: int) -> list[str]:
        """Canonical paths of the stories online in ``edition``."""
        return [s.path for s in self.stories_in(edition)]

    def new_in(self, edition: int) -> list[Story]:
        """The stories that first appear in ``edition``."""
        return [s for s in self.stories if s.edition == edition]

    def variant_paths(self, story: Story) -> set[str]:
        """Every path that serves the story as an alias of its canonical URL or redirects to it: the
        canonical path, the AMP variant, the short link, the trailing-slash-less path, and the tracking
        link for the story it points to. (The off-site-canonical page is not one: it is an article URL
        of its own, see ``offsite_canonical_variant``.)"""
        paths = {story.path, story.amp_path, story.short_path, story.slashless_path}
        paths |= {p for p, (_, target) in self.redirect_paths.items() if target == story.path}
        return paths

    def story_for(self, path: str) -> Story | None:
        """The story ``path`` serves or redirects to, if any."""
        for story in self.stories:
            if path in self.variant_paths(story):
                return story
        return None

    def changed_paths(self) -> set[str]:
        """Paths of edition 2 that edition 1 does not serve with the same bytes and Last-Modified."""
        one, two = self._editions[1], self._editions[2]
        return {p for p, page in two.items() if p not in one or not _same(one[p], page)}

    def unchanged_paths(self) -> set[str]:
        """Paths served in both editions with the same bytes, status and Last-Modified."""
        one, two = self._editions[1], self._editions[2]
        return {p for p, page in two.items() if p in one and _same(one[p], page)}


def _same(a: Page, b: Page) -> bool:
    return (a.body, a.status, a.headers, a.content_type, a.last_modified) == (
        b.body, b.status, b.headers, b.content_type, b.last_modified)


# --------------------------------------------------------------------------- choosing the stories


def _country(rec: CorpusRecord) -> str:
    return rec.id.split("-", 1)[0] if rec.dataset == "fundus" else "readability"


def _publisher(rec: CorpusRecord) -> str:
    if rec.dataset == "fundus":
        return rec.rec.get("publisher") or rec.id.rsplit("_", 1)[0]
    return rec.id.split("-")[0]


def _cheap_candidate(rec: CorpusRecord) -> bool:
    r = rec.rec
    if r.get("page_type") != "news" or not r.get("url") or not r.get("title") or rec.id in SKIP:
        return False
    if not _lang(rec):
        return False  # the news sitemap states each story's language
    if len(r.get("body") or "") < MIN_BODY:
        return False
    published = _parse_date(r.get("published"))
    return published is not None and published <= NOT_AFTER


def _html_candidate(rec: CorpusRecord) -> bool:
    """The page is served well from another host: no meta refresh (Scrapy would follow it off-site), no
    <base>, no noindex, UTF-8, the ground truth visible in its HTML (not client-rendered)."""
    t = _html_traits(str(rec.html_file))
    if t["refresh"] or t["base"] or t["noindex"] or t["size"] > 700_000:
        return False
    charset = corpus_content_type(rec.raw).partition("charset=")[2]
    if not charset or codecs.lookup(charset).name != "utf-8":
        return False  # served as UTF-8 with its own meta charset unchanged, so it must be UTF-8 already
    return _body_visible(rec, t["visible_text"])


@functools.lru_cache(maxsize=4)
def select_story_records(n: int, corpus_dir: str = "") -> tuple[CorpusRecord, ...]:
    """``n`` corpus news pages (of the corpus in ``corpus_dir``, the cache key), deterministically: the
    countries taken in turn (alphabetical), at most one page per publisher, each ground-truth body more than
    SimHash distance 10 from every other chosen."""
    by_country: dict[str, list[CorpusRecord]] = {}
    for rec in corpus_records():
        if _cheap_candidate(rec):
            by_country.setdefault(_country(rec), []).append(rec)
    queues = [by_country[c] for c in sorted(by_country)]
    picked: list[CorpusRecord] = []
    hashes: list[int] = []
    publishers: set[str] = set()
    while len(picked) < n and any(queues):
        for queue in queues:
            while queue and len(picked) < n:
                rec = queue.pop(0)
                if _publisher(rec) in publishers or not _html_candidate(rec):
                    continue
                value = fingerprints.simhash(rec.rec["body"])
                if any(fingerprints.hamming(value, other) < SIMHASH_MIN_DISTANCE for other in hashes):
                    continue
                picked.append(rec)
                hashes.append(value)
                publishers.add(_publisher(rec))
                break
    if len(picked) < n:
        raise ValueError(f"the corpus has only {len(picked)} usable distinct news pages, {n} wanted")
    return tuple(picked)


def _slug(rec: CorpusRecord, short_id: int) -> str:
    """The title as a slug when it is in Latin letters, else the original URL's slug, else a number."""
    slug = slugify(rec.rec["title"], max_len=70)
    if len(slug.split("-")) >= 3:
        return slug
    slug = _article_slug(rec)
    if len(slug.split("-")) >= 3 and slugify(rec.id) not in slug:
        return slug
    return f"article-{short_id}"


# --------------------------------------------------------------------------- rewriting corpus HTML

_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_ANCHOR_TAG = re.compile(rf"<(?:a|area)\b{_ATTRS}>", re.I)
_LINK_TAG = re.compile(rf"<link\b{_ATTRS}>", re.I)
_META_TAG = re.compile(rf"<meta\b{_ATTRS}>", re.I)
_HEAD_TAG = re.compile(rf"<head\b{_ATTRS}>", re.I)
_ATTR = re.compile(r"""(?<=[\s"'])([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_BODY_END = re.compile(r"</body\s*>", re.I)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def _attrs(tag: str) -> dict[str, re.Match]:
    """Attribute name (lower case) -> its match in ``tag`` (the first of a repeated name wins)."""
    inner_start = re.match(r"<[A-Za-z]+", tag).end()
    out: dict[str, re.Match] = {}
    for m in _ATTR.finditer(tag, inner_start):
        out.setdefault(m.group(1).lower(), m)
    return out


def _value(m: re.Match | None) -> str | None:
    if m is None or m.group(2) is None:
        return None
    raw = m.group(2)
    if raw[:1] in "\"'":
        raw = raw[1:-1]
    return html.unescape(raw)


def _with_value(tag: str, m: re.Match, value: str) -> str:
    """``tag`` with the attribute of match ``m`` set to ``value``."""
    return tag[: m.start()] + f'{m.group(1)}="{html.escape(value, quote=True)}"' + tag[m.end():]


def _relative(href: str) -> bool:
    href = href.strip()
    return bool(href) and not href.startswith(("#", "//")) and not _SCHEME.match(href)


def _absolute_links(text: str, original_url: str) -> str:
    """Relative hrefs of <a>, <area> and <link rel=alternate> made absolute on the page's original URL."""

    def fix(tag_match: re.Match, rel_needed: bool) -> str:
        tag = tag_match.group(0)
        attrs = _attrs(tag)
        if rel_needed and "alternate" not in (_value(attrs.get("rel")) or "").lower().split():
            return tag
        href = _value(attrs.get("href"))
        if href is None or not _relative(href):
            return tag
        return _with_value(tag, attrs["href"], urljoin(original_url, href.strip()))

    text = _ANCHOR_TAG.sub(lambda m: fix(m, False), text)
    return _LINK_TAG.sub(lambda m: fix(m, True), text)


def _set_canonical(text: str, canonical: str) -> str:
    """Every rel=canonical link and og:url meta set to ``canonical`` (added to <head> when absent)."""
    found = {"canonical": False, "og": False}

    def link(m: re.Match) -> str:
        tag = m.group(0)
        attrs = _attrs(tag)
        if "canonical" not in (_value(attrs.get("rel")) or "").lower().split():
            return tag
        found["canonical"] = True
        if "href" in attrs:
            return _with_value(tag, attrs["href"], canonical)
        return tag[:-1].rstrip("/").rstrip() + f' href="{html.escape(canonical)}">'

    def meta(m: re.Match) -> str:
        tag = m.group(0)
        attrs = _attrs(tag)
        key = _value(attrs.get("property")) or _value(attrs.get("name")) or ""
        if key.strip().lower() != "og:url":
            return tag
        found["og"] = True
        if "content" in attrs:
            return _with_value(tag, attrs["content"], canonical)
        return tag[:-1].rstrip("/").rstrip() + f' content="{html.escape(canonical)}">'

    text = _LINK_TAG.sub(link, text)
    text = _META_TAG.sub(meta, text)
    missing = ""
    if not found["canonical"]:
        missing += f'\n<link rel="canonical" href="{html.escape(canonical)}">'
    if not found["og"]:
        missing += f'\n<meta property="og:url" content="{html.escape(canonical)}">'
    if missing:
        head = _HEAD_TAG.search(text)
        at = head.end() if head else 0
        text = text[:at] + missing + text[at:]
    return text


def _append_tags(text: str, tags: list[str]) -> str:
    links = " ".join(f'<a href="{p}" rel="tag">{html.escape(STORY_TAGS[p])}</a>' for p in tags)
    block = f'\n<div class="tags" id="site-tags">Tags: {links}</div>\n'
    ends = list(_BODY_END.finditer(text))
    at = ends[-1].start() if ends else len(text)
    return text[:at] + block + text[at:]


def _story_html(rec: CorpusRecord, canonical: str, tags: list[str]) -> bytes:
    text = rec.raw.decode("utf-8").removeprefix("\ufeff")
    text = _absolute_links(text, rec.rec["url"])
    text = _set_canonical(text, canonical)
    text = _append_tags(text, tags)
    return text.encode("utf-8")


# --------------------------------------------------------------------------- generated pages


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


NAV = [(HOME, "Home"), *SECTIONS.items(), (ABOUT, "About"), (CONTACT, "Contact")]


def _chrome(base: str, path: str, *, title: str, description: str, schema_type: str, main: str) -> bytes:
    ld = _json_ld({"@context": "https://schema.org", "@type": schema_type, "name": title, "url": base + path})
    nav = "\n".join(f'<li><a href="{href}">{_esc(label)}</a></li>' for href, label in NAV)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<meta name="description" content="{_esc(description)}">
<meta property="og:site_name" content="{SITE_NAME}">
<meta property="og:type" content="website">
<meta property="og:title" content="{_esc(title)}">
<meta property="og:url" content="{_esc(base + path)}">
<link rel="canonical" href="{_esc(base + path)}">
<link rel="alternate" type="application/rss+xml" title="{SITE_NAME} &raquo; Feed" href="{FEED}">
{ld}
</head>
<body>
<header class="site-header">
<p class="site-title"><a href="/" rel="home">{SITE_NAME}</a></p>
<nav class="main-navigation"><ul class="menu">
{nav}
</ul></nav>
</header>
<main id="main" class="site-main">
{main}
</main>
<footer class="site-footer">
<p><a href="{ABOUT}">About us</a> · <a href="{CONTACT}">Contact</a></p>
<p>&copy; 2026 {SITE_NAME}. The world's press, every morning.</p>
</footer>
</body>
</html>
""".encode("utf-8")


def _item(href: str, title: str, teaser: str, published: datetime | None = None) -> str:
    when = f'<time datetime="{_iso(published)}">{published:%d %B %Y}</time> ' if published else ""
    return (f'<li class="post"><h3><a href="{_esc(href)}">{_esc(title)}</a></h3>'
            f"<p>{when}{_esc(teaser)}</p></li>")


def _tag_list(tags: dict[str, str]) -> str:
    return "\n".join(f'<li><a href="{p}">{_esc(label)}</a></li>' for p, label in tags.items())


_REASONS = {301: "Moved Permanently", 302: "Found", 404: "Not Found", 410: "Gone"}


def _nginx_page(status: int, when: datetime, headers: dict[str, str] | None = None) -> Page:
    """An answer with nginx's own body for ``status``."""
    title = f"{status} {_REASONS[status]}"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Page(body=body.encode("ascii"), status=status, headers=headers or {}, last_modified=when)


def _redirect(status: int, location: str, when: datetime) -> Page:
    return _nginx_page(status, when, {"Location": location})


def _dead(status: int, when: datetime) -> Page:
    return _nginx_page(status, when)


def _urlset(base: str, entries: list[tuple[str, datetime | None]]) -> bytes:
    urls = "\n".join(
        f"<url><loc>{xml_escape(base + p)}</loc>" + (f"<lastmod>{_iso(d)}</lastmod>" if d else "") + "</url>"
        for p, d in entries
    )
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}">\n{urls}\n'
            "</urlset>\n").encode()


def _sitemap_index(base: str, entries: list[tuple[str, datetime | None]]) -> bytes:
    items = "\n".join(
        f"<sitemap><loc>{xml_escape(base + p)}</loc>" + (f"<lastmod>{_iso(d)}</lastmod>" if d else "")
        + "</sitemap>"
        for p, d in entries
    )
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{SITEMAP_NS}">\n{items}\n'
            "</sitemapindex>\n").encode()


def _news_sitemap(base: str, stories: list[Story]) -> bytes:
    urls = "\n".join(
        f"<url>\n<loc>{xml_escape(base + s.path)}</loc>\n<news:news>\n<news:publication>\n"
        f"<news:name>{xml_escape(SITE_NAME)}</news:name>\n"
        f"<news:language>{xml_escape(s.language)}</news:language>\n"
        f"</news:publication>\n<news:publication_date>{_iso(s.published)}</news:publication_date>\n"
        f"<news:title>{xml_escape(s.title)}</news:title>\n</news:news>\n</url>"
        for s in stories
    )
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="{SITEMAP_NS}" xmlns:news="{NEWS_SITEMAP_NS}">\n{urls}\n'
            "</urlset>\n").encode("utf-8")


def _rss(base: str, stories: list[Story], built: datetime) -> bytes:
    items = "\n".join(
        f"<item>\n<title>{xml_escape(s.title)}</title>\n<link>{xml_escape(base + s.path)}</link>\n"
        f"<dc:creator><![CDATA[{', '.join(s.authors)}]]></dc:creator>\n"
        f"<pubDate>{format_datetime(s.published)}</pubDate>\n"
        f'<guid isPermaLink="true">{xml_escape(base + s.path)}</guid>\n'
        f"<description>{xml_escape(_teaser(s.body, 160))}</description>\n</item>"
        for s in stories
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom">\n'
        f"<channel>\n<title>{xml_escape(SITE_NAME)}</title>\n<link>{xml_escape(base)}/</link>\n"
        "<description>The world's press, every morning</description>\n<language>en</language>\n"
        f"<lastBuildDate>{format_datetime(built)}</lastBuildDate>\n"
        f'<atom:link href="{xml_escape(base + FEED)}" rel="self" type="application/rss+xml"/>\n'
        f"{items}\n</channel>\n</rss>\n"
    ).encode("utf-8")


ABOUT_TEXT = [
    f"{SITE_NAME} gathers the morning's reporting from newsrooms around the world in one place. Our editors "
    "choose the stories, credit every newsroom they come from and link the original wherever we can.",
    "We are a small team of editors working from three time zones. We publish two editions a day and correct "
    "our mistakes openly, at the end of the story concerned.",
]
CONTACT_TEXT = [
    "Send news tips, corrections and questions about our coverage to the desk at desk (at) "
    "northgate-courier.example; we answer within two working days.",
    f"Our postal address is {SITE_NAME}, 14 Harbour Street, Northgate. The desk can be reached by "
    "telephone on weekdays between 8 a.m. and 6 p.m. on +44 20 7946 0321.",
]


def _prose(base: str, path: str, title: str, paragraphs: list[str], schema_type: str) -> bytes:
    paras = "\n".join(f"<p>{_esc(p)}</p>" for p in paragraphs)
    return _chrome(base, path, title=f"{title} – {SITE_NAME}", description=paragraphs[0][:150],
                   schema_type=schema_type, main=f"<article><h1>{_esc(title)}</h1>\n{paras}\n</article>")


# --------------------------------------------------------------------------- the site


def build_publisher_site(base_url: str) -> PublisherSite:
    """The publisher's two editions on ``base_url`` (the same output on every call).

    The off-site-canonical copy of an edition-1 story appears in edition 2 only, linked from the home page:
    a crawl of edition 1 archives the story, and one of edition 2 meets the copy and records it as an exact
    duplicate of it, whatever the order of the extractions."""
    base = base_url.rstrip("/")
    n_total = N_EDITION_1 + sum(N_NEW.values())
    chosen = select_story_records(n_total, str(_corpus_dir()))
    records = sorted(chosen, key=lambda r: (_parse_date(r.rec["published"]), r.id))
    tag_paths = list(STORY_TAGS)
    section_paths = list(SECTIONS)

    stories: list[Story] = []
    taken: set[str] = set()
    new_routes: list[str] = []  # the routes of the new stories, taken in turn
    left = dict(N_NEW)
    while any(left.values()):
        for route in N_NEW:
            if left[route]:
                new_routes.append(route)
                left[route] -= 1
    for number, rec in enumerate(records, start=1):
        r = rec.rec
        published = _parse_date(r["published"])
        slug = _slug(rec, SHORT_ID_BASE + number)
        path = f"/news/{published:%Y/%m/%d}/{slug}/"
        k = 2
        while path in taken:
            path = f"/news/{published:%Y/%m/%d}/{slug}-{k}/"
            k += 1
        taken.add(path)
        edition = 1 if number <= N_EDITION_1 else 2
        n_tags = 2 + number % 2
        stories.append(Story(
            number=number,
            source_id=rec.id,
            title=" ".join(r["title"].split()),
            body=r["body"],
            authors=list(r.get("authors") or _readability_authors(r.get("byline"))),
            language=_lang(rec) or "en",
            published=published,
            path=path,
            short_path=f"/p/{SHORT_ID_BASE + number}",
            amp_path=path + ("amp/" if number % 2 else "?amp=1"),
            slashless_path=path.rstrip("/"),
            edition=edition,
            section=section_paths[number % len(section_paths)] if edition == 1 else "",
            tags=[tag_paths[(number + i) % len(tag_paths)] for i in range(n_tags)],
            new_route=new_routes[number - N_EDITION_1 - 1] if edition == 2 else "",
        ))
    old = [s for s in stories if s.edition == 1]
    new = [s for s in stories if s.edition == 2]

    def newest_first(items) -> list[Story]:
        return sorted(items, key=lambda s: (s.published, s.number), reverse=True)

    by_route = {route: newest_first(s for s in new if s.new_route == route) for route in N_NEW}

    # the home page's extra links: stories 3 and 4 (not in the top list of either edition); 2 is copied
    # at a partner's URL, linked from its own page
    slashless_story, tracked_story, offsite_story = old[2], old[3], old[1]
    tracking_link = "/out?to=" + quote(tracked_story.path, safe="")
    offsite_path = f"/partners/{offsite_story.path.rstrip('/').rsplit('/', 1)[1]}/"
    offsite_url = f"{OFFSITE_HOST}/world/{offsite_story.path.rstrip('/').rsplit('/', 1)[1]}.html"
    archive_stories = old[:ARCHIVE_STORIES]

    dead_paths: dict[str, int] = {p: 404 for p in [*STORY_TAGS, *HOME_TAGS, DELETED_STORY_PATH]}
    dead_paths[DISCONTINUED] = 410
    redirect_paths: dict[str, tuple[int, str]] = {DELETED_SHORT_PATH: (301, DELETED_STORY_PATH)}
    for s in stories:
        redirect_paths[s.short_path] = (301, s.path)
        redirect_paths[s.slashless_path] = (301, s.path)
    redirect_paths[tracking_link] = (302, tracked_story.path)

    def link(edition: int, page: str, story: Story, href: str) -> str:
        story.links.setdefault(edition, {}).setdefault(page, []).append(href)
        return href

    def home_href(edition: int, s: Story) -> str:
        """Short links and AMP variants in pairs, so the AMP links are of both kinds (amp/ and ?amp=1)."""
        return link(edition, HOME, s, s.short_path if s.number // 2 % 2 == 0 else s.amp_path)

    editions: dict[int, dict[str, Page]] = {}
    for edition in (1, 2):
        when = EDITION_TIMES[edition]
        pages: dict[str, Page] = {}

        def put(path: str, body: bytes, content_type: str = HTML_TYPE) -> None:
            pages[path] = Page(body=body, content_type=content_type, last_modified=when)

        online = [s for s in stories if s.edition <= edition]
        # ---- story pages and their other URLs
        for s in online:
            body = _story_html(records[s.number - 1], base + s.path, s.tags)
            put(s.path, body)
            put(s.amp_path, body)
        if edition == 2:
            put(offsite_path, _story_html(records[offsite_story.number - 1], offsite_url, offsite_story.tags))
        for path, (status, target) in redirect_paths.items():
            target_story = next((s for s in stories if s.path == target), None)
            if target_story is None or target_story.edition <= edition:
                pages[path] = _redirect(status, base + target, when)
        for path, status in dead_paths.items():
            pages[path] = _dead(status, when)

        # ---- home page
        if edition == 1:
            top = newest_first(old)[:HOME_SIZE]
        else:
            top = by_route["home"] + newest_first(old)[: HOME_SIZE - len(by_route["home"])]
        top_items = "\n".join(_item(home_href(edition, s), s.title, _teaser(s.body), s.published)
                              for s in top)
        more_items = "\n".join([
            _item(link(edition, HOME, slashless_story, slashless_story.slashless_path), slashless_story.title,
                  _teaser(slashless_story.body)),
            _item(link(edition, HOME, tracked_story, tracking_link), tracked_story.title,
                  _teaser(tracked_story.body)),
            _item(DELETED_SHORT_PATH, DELETED_TITLE, "The council's vote on the harbour bridge was postponed."),
            *([_item(offsite_path, offsite_story.title + " (from our partners)", _teaser(offsite_story.body))]
              if edition == 2 else []),
        ])
        sections_list = "\n".join(f'<li><a href="{p}">{_esc(name)}</a></li>'
                                  for p, name in SECTIONS.items())
        home_main = f"""<h1>Top stories</h1>
<ul class="post-list">
{top_items}
</ul>
<section class="more"><h2>Also in the news</h2><ul>
{more_items}
</ul></section>
<section class="sections"><h2>Sections</h2><ul>
{sections_list}
<li><a href="{DISCONTINUED}">Local weather (discontinued)</a></li>
</ul></section>
<section class="topics"><h2>Topics</h2><ul>
{_tag_list(HOME_TAGS)}
</ul></section>"""
        put(HOME, _chrome(base, HOME, title=f"{SITE_NAME} – the world's press, every morning",
                          description="The morning's stories from newsrooms around the world.",
                          schema_type="WebSite", main=home_main))

        # ---- sections (unchanged in edition 2: they list edition-1 stories)
        for i, (spath, label) in enumerate(SECTIONS.items()):
            items = "\n".join(_item(link(edition, spath, s, s.path), s.title, _teaser(s.body), s.published)
                              for s in newest_first(x for x in old if x.section == spath))
            tags = {p: STORY_TAGS[p] for p in tag_paths[i: i + 2]}
            main = f"""<h1>{_esc(label)}</h1>
<ul class="post-list">
{items}
</ul>
<section class="topics"><h2>Related topics</h2><ul>
{_tag_list(tags)}
</ul></section>"""
            put(spath, _chrome(base, spath, title=f"{label} – {SITE_NAME}",
                               description=f"{label}: the latest stories from {SITE_NAME}.",
                               schema_type="CollectionPage", main=main))
        put(ABOUT, _prose(base, ABOUT, "About us", ABOUT_TEXT, "AboutPage"))
        put(CONTACT, _prose(base, CONTACT, "Contact", CONTACT_TEXT, "ContactPage"))

        # ---- robots.txt, sitemaps, feed
        put(ROBOTS, f"User-agent: *\nDisallow: /wp-admin/\n\nSitemap: {base}{SITEMAP_INDEX}\n".encode(),
            TEXT_TYPE)
        index = [(NEWS_SITEMAP, None), (ARCHIVE_SITEMAP, ARCHIVE_SITEMAP_LASTMOD),
                 (PAGES_SITEMAP, PAGES_SITEMAP_LASTMOD)]
        put(SITEMAP_INDEX, _sitemap_index(base, index), XML_TYPE)
        for s in archive_stories:
            link(edition, ARCHIVE_SITEMAP, s, s.path)
        put(ARCHIVE_SITEMAP, _urlset(base, [(s.path, s.published) for s in archive_stories]), XML_TYPE)
        put(PAGES_SITEMAP, _urlset(base, [(ABOUT, PAGES_SITEMAP_LASTMOD), (CONTACT, PAGES_SITEMAP_LASTMOD)]),
            XML_TYPE)
        for route, page_path in (("news_sitemap", NEWS_SITEMAP), ("feed", FEED)):
            if edition == 1:
                listed = newest_first(old)[:LIST_SIZE]
            else:
                listed = by_route[route] + newest_first(old)[:KEPT_IN_LISTS]
            for s in listed:
                link(edition, page_path, s, s.path)
            if route == "news_sitemap":
                put(page_path, _news_sitemap(base, listed), XML_TYPE)
            else:
                put(page_path, _rss(base, listed, when), RSS_TYPE)
        editions[edition] = pages

    # A page of edition 2 with the bytes of edition 1 is the same file: it keeps edition 1's mtime.
    for path, page in editions[2].items():
        before = editions[1].get(path)
        if before is not None and (before.body, before.status, before.headers) == (page.body, page.status,
                                                                                  page.headers):
            page.last_modified = before.last_modified

    return PublisherSite(
        base_url=base,
        stories=stories,
        dead_paths=dead_paths,
        redirect_paths=redirect_paths,
        offsite_canonical_variant=offsite_path,
        offsite_canonical_url=offsite_url,
        offsite_variant_of=offsite_story,
        slashless_link=slashless_story.slashless_path,
        tracking_link=tracking_link,
        _editions=editions,
    )


__all__ = [
    "EDITION_TIMES",
    "START_PATHS",
    "PublisherSite",
    "Story",
    "build_publisher_site",
    "select_story_records",
]
