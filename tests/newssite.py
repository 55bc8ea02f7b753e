"""An in-memory local news website for end-to-end crawl tests.

``build_news_site(base_url)`` assembles a small news site ("Diplomatic Times") out of
real pages from the shared test corpus (served byte for byte) plus generated
WordPress-style pages: a home page, section, tag, pagination, author, about and
contact pages, robots.txt, a sitemap index with a Google News sitemap and a plain
sitemap, an RSS 2.0 feed and an Atom feed, an exact copy, a canonical (AMP) alias, a
syndicated near-copy, tracking-parameter links and a robots-disallowed area.

``build_corpus_site(base_url)`` serves every corpus page of the chosen page types as-is
behind a home page and a sitemap, for the extraction quality gate.

Both return pages keyed by request path including the query string, ready for
``crawler.localsite.LocalSite.pages``. Only the standard library and lxml are used.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import html
import json
import os
import re
import struct
import sys
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape as xml_escape

import lxml.html

try:
    from crawler.localsite import Page
except ModuleNotFoundError:  # run from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from crawler.localsite import Page

_SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS_DIR = Path(os.environ.get("NEWS_CORPUS_DIR") or _SHARED_DIR / "corpus")
FIXTURES_DIR = Path(os.environ.get("NEWS_FIXTURES_DIR") or _SHARED_DIR / "fixtures")

SITE_NAME = "Diplomatic Times"
HTML_TYPE = "text/html; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
NEWS_SITEMAP_NS = "http://www.google.com/schemas/sitemap-news/0.9"
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
ATOM_NS = "http://www.w3.org/2005/Atom"

TRACKING_HOME_UTM = "utm_source=home&utm_medium=web"
TRACKING_FBCLID = "fbclid=abc"
TRACKING_GCLID = "gclid=xyz"
TRACKING_SECTION_UTM = "utm_source=section&utm_medium=web&utm_campaign=politics"
TRACKING_TAG_UTM = "utm_source=tag&utm_campaign=nato"
TRACKING_RSS_UTM = "utm_source=rss&utm_medium=rss&utm_campaign=feed"

REFERENCE_PATH = "/2021/02/23/pentagon-says-us-soldiers-will-not-be-part-of-nato-deployment/"
REFERENCE_PUBLISHED = "2021-02-23T18:05:00-05:00"
REFERENCE_AUTHOR = "Gary Raynaldo"
REFERENCE_AUTHOR_PATH = "/author/gary-raynaldo/"
FEATURED_IMAGE_PATH = "/wp-content/uploads/2021/02/pentagon-briefing-room-seal.png"

# What an end-to-end test passes as start URLs (relative to the base URL).
START_PATHS = ["/", "/feed/", "/atom.xml", "/robots.txt"]

WIRE_NAME = "Wire Service Partners"
WIRE_SENTENCE = f"This story was originally published by {WIRE_NAME}."


# --------------------------------------------------------------------------- data model


@dataclass
class ExpectedArticle:
    path: str  # the path the article is canonically served at (no query)
    title: str
    authors: list[str]
    body: str  # ground truth body, paragraphs separated by "\n\n"
    source_id: str  # corpus id, or "reference" for the reference article
    published: str | None = None  # ISO 8601, as the site declares it (extra, informational)
    language: str | None = None  # primary language subtag, e.g. "en" (extra, informational)


@dataclass
class NewsSite:
    pages: dict[str, Page]
    articles: list[ExpectedArticle]
    non_articles: list[str]
    disallowed: list[str]
    exact_copies: dict[str, str]
    near_copies: dict[str, str]
    canonical_aliases: dict[str, str]
    tracking_links: list[str]
    # Extras: the articles that only one discovery route reaches.
    only_in_news_sitemap: list[str] = field(default_factory=list)
    only_in_rss: list[str] = field(default_factory=list)
    only_in_atom: list[str] = field(default_factory=list)
    base_url: str = ""
    #: what the Google News sitemap states of each story it lists: path -> (title, publication_date, language)
    news_sitemap: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def story_groups(self) -> dict[str, set[str]]:
        """Article path -> every path that serves that story (itself, exact copies, near copies, aliases)."""
        groups = {article.path: {article.path} for article in self.articles}
        for mapping in (self.exact_copies, self.near_copies, self.canonical_aliases):
            for copy, original in mapping.items():
                groups[original].add(copy)
        return groups

    def article(self, path: str) -> ExpectedArticle:
        for art in self.articles:
            if art.path == path:
                return art
        raise KeyError(path)


# --------------------------------------------------------------------------- corpus access


def _corpus_dir() -> Path:
    env = os.environ.get("NEWS_CORPUS_DIR")
    return Path(env) if env else CORPUS_DIR


def _fixtures_dir() -> Path:
    env = os.environ.get("NEWS_FIXTURES_DIR")
    return Path(env) if env else FIXTURES_DIR


@dataclass(frozen=True)
class CorpusRecord:
    id: str
    dataset: str  # "fundus" or "mozilla-readability"
    rec: dict
    html_file: Path

    @property
    def raw(self) -> bytes:
        return _read_gz(str(self.html_file))


@functools.lru_cache(maxsize=None)
def _read_gz(path: str) -> bytes:
    with open(path, "rb") as fh:
        return gzip.decompress(fh.read())


@functools.lru_cache(maxsize=4)
def _load_corpus(corpus_dir: str) -> tuple[CorpusRecord, ...]:
    out: list[CorpusRecord] = []
    for dataset in ("fundus", "mozilla-readability"):
        ds_dir = Path(corpus_dir) / dataset
        gt_file = ds_dir / "ground_truth.json"
        if not gt_file.exists():
            continue
        with open(gt_file, encoding="utf-8") as fh:
            gt = json.load(fh)
        for pid in sorted(gt):
            out.append(CorpusRecord(pid, dataset, gt[pid], ds_dir / gt[pid]["file"]))
    if not out:
        raise FileNotFoundError(f"no corpus ground truth under {corpus_dir}")
    return tuple(out)


def corpus_records() -> tuple[CorpusRecord, ...]:
    return _load_corpus(str(_corpus_dir()))


_META_CHARSET = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)


def declared_charset(raw: bytes) -> str | None:
    """The charset the page declares in its <meta> tags, if that is unambiguous and decodes the bytes."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8"
    end = raw.find(b"</head>")
    head = raw[: end if end > 0 else 65536]
    labels = [m.group(1).decode("ascii") for m in _META_CHARSET.finditer(head)]
    if not labels:
        return None
    names = set()
    for label in labels:
        try:
            names.add(codecs.lookup(label).name)
        except LookupError:
            return None
    if len(names) != 1:
        return None
    try:
        raw.decode(labels[0])
    except (UnicodeDecodeError, LookupError):
        return None
    return labels[0]


def corpus_content_type(raw: bytes) -> str:
    """What a server that knows its files would send: the page's declared charset when it decodes the
    bytes, else UTF-8 when the bytes are UTF-8 (some upstream files were re-encoded to UTF-8 but kept
    their old meta charset), else no charset at all."""
    charset = declared_charset(raw)
    if charset is None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "text/html"
        charset = "utf-8"
    return f"text/html; charset={charset}"


def corpus_page(rec: CorpusRecord) -> Page:
    raw = rec.raw
    return Page(body=raw, content_type=corpus_content_type(raw))


@functools.lru_cache(maxsize=None)
def _html_traits(html_file: str) -> dict:
    raw = _read_gz(html_file)
    doc = lxml.html.fromstring(raw)
    local_links = 0
    for a in doc.iter("a"):
        href = (a.get("href") or "").strip()
        if href and not re.match(r"^([a-z][a-z0-9+.-]*:|//|#)", href, re.I):
            local_links += 1
    og_type = [v.strip().lower() for v in doc.xpath('//meta[@property="og:type"]/@content')]
    refresh = doc.xpath('//meta[translate(@http-equiv, "REFSH", "refsh")="refresh"]')
    robots = " ".join(doc.xpath('//meta[translate(@name, "ROBTS", "robts")="robots"]/@content')).lower()
    return {
        "local_links": local_links,
        "og_article": bool(og_type) and og_type[0] == "article",
        "refresh": bool(refresh),
        "noindex": any(word in robots for word in ("noindex", "noarchive", "none")),
        "base": doc.find(".//base") is not None,
        "charset": declared_charset(raw),
        "size": len(raw),
        "visible_text": _visible_text(doc),
    }


def _visible_text(doc) -> str:
    for el in doc.xpath("//script | //style | //noscript | //template"):
        el.drop_tree()
    return " ".join(doc.text_content().split())


def _body_visible(rec: CorpusRecord, visible: str, min_share: float = 0.9) -> bool:
    """Whether the ground-truth paragraphs are in the page's visible HTML text (not only in
    scripts, as on client-rendered pages)."""
    paragraphs = [" ".join(p.split()) for p in (rec.rec.get("body") or "").split("\n\n") if p.strip()]
    if not paragraphs:
        return False
    chars = sum(len(p) for p in paragraphs)
    found = sum(len(p) for p in paragraphs if p in visible)
    return found / chars >= min_share


def _well_behaved(rec: CorpusRecord, min_body: int) -> bool:
    r = rec.rec
    if r.get("page_type") != "news" or not r.get("url") or not r.get("title") or not r.get("language"):
        return False
    if len(r.get("body") or "") < min_body or _parse_date(r.get("published")) is None:
        return False
    t = _html_traits(str(rec.html_file))
    return (
        t["og_article"]
        and not t["refresh"]
        and not t["noindex"]
        and not t["base"]
        and t["charset"] is not None
        and t["local_links"] <= 30
        and t["size"] <= 700_000
        and _body_visible(rec, t["visible_text"])
    )


_CLEAN_BYLINE = re.compile(r"^[^\W\d_][^\W\d_ .'’-]*(?:[ .'’-]+[^\W\d_]+)*\.?$")


def _readability_authors(byline: str | None) -> list[str]:
    if not byline:
        return []
    parts = [p.strip() for p in re.split(r",| and | & ", byline) if p.strip()]
    return parts if all(_CLEAN_BYLINE.match(p) for p in parts) else []


def _lang(rec: CorpusRecord) -> str:
    return (rec.rec.get("language") or "").split("-")[0].lower()


def select_corpus_articles(n_fundus: int = 12, n_readability: int = 2, min_body: int = 1500) -> list[CorpusRecord]:
    """Pick corpus news pages deterministically: alternate English and other languages,
    one page per publisher, only pages whose HTML is well-behaved on a local host (og:type
    article, a declared charset, no meta refresh / noindex / <base>, at most 30 relative links)."""
    records = corpus_records()
    fundus = [
        r
        for r in records
        if r.dataset == "fundus"
        and r.rec.get("authors")
        and not any(re.search(r"\d", a) for a in r.rec["authors"])
        and _well_behaved(r, min_body)
    ]
    english = [r for r in fundus if _lang(r) == "en"]
    by_lang: dict[str, list[CorpusRecord]] = {}
    for r in fundus:
        if _lang(r) != "en":
            by_lang.setdefault(_lang(r), []).append(r)
    # Other languages round-robin, the languages with most candidates first.
    others: list[CorpusRecord] = []
    queues = [by_lang[k] for k in sorted(by_lang, key=lambda k: (-len(by_lang[k]), k))]
    while any(queues):
        for q in queues:
            if q:
                others.append(q.pop(0))
    # Spread the English picks over the id range rather than the first few countries.
    if english:
        step = max(1, len(english) // max(1, (n_fundus + 1) // 2))
        english = english[::step] + [r for i, r in enumerate(english) if i % step]

    picked: list[CorpusRecord] = []
    publishers: set[str] = set()
    streams = [iter(english), iter(others)]
    turn = 0
    exhausted = [False, False]
    while len(picked) < n_fundus and not all(exhausted):
        stream = streams[turn % 2]
        turn += 1
        if exhausted[(turn - 1) % 2]:
            continue
        for r in stream:
            pub = r.rec.get("publisher") or r.id.split("_")[0]
            if pub not in publishers:
                publishers.add(pub)
                picked.append(r)
                break
        else:
            exhausted[(turn - 1) % 2] = True

    readability = [
        r
        for r in records
        if r.dataset == "mozilla-readability"
        and _readability_authors(r.rec.get("byline"))
        and " | " not in r.rec.get("title", "")
        and _well_behaved(r, min_body)
    ]
    return picked + readability[:n_readability]


# --------------------------------------------------------------------------- small helpers


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    value = value.strip()
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        m = re.match(r"(\d{4})-(\d{2})-(\d{2})", value)
        if not m:
            return None
        dt = datetime(int(m[1]), int(m[2]), int(m[3]))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.replace(microsecond=0)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


_TRANSLIT = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "đ": "d", "ł": "l", "Ł": "L", "ı": "i"}
)


def slugify(text: str, max_len: int = 80) -> str:
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(slug) > max_len:
        slug = slug[:max_len].rsplit("-", 1)[0]
    return slug


def _article_slug(rec: CorpusRecord) -> str:
    url = rec.rec.get("url") or ""
    segments = [unquote(s) for s in urlsplit(url).path.split("/") if s]
    def wordy(slug: str) -> bool:
        return sum(1 for w in slug.split("-") if len(w) >= 2 and w.isalpha()) >= 2

    for seg in reversed(segments):
        seg = re.sub(r"\.(html?|php|ece|aspx?|shtml)$", "", seg, flags=re.I)
        slug = slugify(seg)
        if wordy(slug):
            return slug
    slug = slugify(rec.rec.get("title") or "")
    return slug if wordy(slug) else slugify(rec.id)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _teaser(body: str, limit: int = 100) -> str:
    first = " ".join(body.split("\n\n", 1)[0].split())
    if len(first) <= limit:
        return first
    cut = first[:limit].rsplit(" ", 1)[0]
    return cut + " …"


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\x80\x80\x80")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _json_ld(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=False, indent=1).replace("</", "<\\/")
    return f'<script type="application/ld+json">\n{text}\n</script>'


def _html_page(body: str) -> Page:
    return Page(body=body.encode("utf-8"), content_type=HTML_TYPE)


# --------------------------------------------------------------------------- site chrome

NAV = [
    ("/", "Home"),
    ("/section/world/", "World"),
    ("/section/politics/", "Politics"),
    ("/section/business/", "Business"),
    ("/tag/nato/", "NATO"),
    ("/about/", "About"),
    ("/contact/", "Contact"),
]


def _head(
    base: str,
    *,
    title: str,
    description: str,
    og_type: str,
    canonical: str | None,
    og_url: str | None = None,
    extra: str = "",
    lang: str = "en",
) -> str:
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f'<meta name="description" content="{_esc(description)}">',
        f'<meta property="og:site_name" content="{SITE_NAME}">',
        f'<meta property="og:type" content="{og_type}">',
        f'<meta property="og:title" content="{_esc(title)}">',
        f'<meta property="og:description" content="{_esc(description)}">',
    ]
    if og_url:
        parts.append(f'<meta property="og:url" content="{_esc(og_url)}">')
    if canonical:
        parts.append(f'<link rel="canonical" href="{_esc(canonical)}">')
    parts += [
        f'<link rel="alternate" type="application/rss+xml" title="{SITE_NAME} &raquo; Feed" href="/feed/">',
        f'<link rel="alternate" type="application/atom+xml" title="{SITE_NAME} &raquo; Atom" href="/atom.xml">',
        "<style>body{font-family:Georgia,serif;margin:0}.site-header,.site-footer{background:#102a43;color:#fff;"
        "padding:1em}.site-header a,.site-footer a{color:#fff}.menu{list-style:none;display:flex;gap:1em;padding:0}"
        ".site-content{display:flex;gap:2em;padding:1em}.content-area{flex:3}.widget-area{flex:1}</style>",
    ]
    if extra:
        parts.append(extra)
    parts.append("</head>")
    return "\n".join(parts)


def _site_header(menu_title: str | None = None) -> str:
    items = "\n".join(
        f'<li class="menu-item"><a href="{href}">{label}</a></li>' for href, label in NAV
    )
    heading = f'<h2 class="menu-title">{menu_title}</h2>\n' if menu_title else ""
    return f"""<div id="page" class="site">
<a class="skip-link screen-reader-text" href="#content">Skip to content</a>
<header id="masthead" class="site-header">
<div class="site-branding">
<p class="site-title"><a href="/" rel="home">{SITE_NAME}</a></p>
<p class="site-description">News and analysis from the world&#8217;s capitals</p>
</div>
<nav id="site-navigation" class="main-navigation" aria-label="Primary">
{heading}<ul id="primary-menu" class="menu">
{items}
</ul>
</nav>
</header>"""


def _site_footer() -> str:
    return f"""<footer id="colophon" class="site-footer">
<nav class="footer-navigation"><ul class="menu">
<li><a href="/about/">About us</a></li>
<li><a href="/contact/">Contact</a></li>
<li><a href="/section/world/">World</a></li>
<li><a href="/section/politics/">Politics</a></li>
</ul></nav>
<div class="site-info">&copy; 2019 {SITE_NAME}. All rights reserved.</div>
</footer>
</div>"""


def _listing_item(href: str, title: str, teaser: str, date: datetime | None) -> str:
    when = f'<time datetime="{_iso(date)}">{date:%B %d, %Y}</time> ' if date else ""
    return (
        f'<li class="post-summary"><h3 class="entry-title"><a href="{_esc(href)}">{_esc(title)}</a></h3>'
        f'<p class="entry-summary">{when}{_esc(teaser)}</p></li>'
    )


def _listing_page(
    base: str,
    path: str,
    *,
    title: str,
    heading: str,
    items: list[str],
    extra_blocks: str = "",
    schema_type: str = "CollectionPage",
    pagination: str = "",
) -> Page:
    description = f"{heading} – the latest stories from {SITE_NAME}."
    ld = _json_ld({"@context": "https://schema.org", "@type": schema_type, "name": title, "url": base + path})
    body = f"""{_head(base, title=title, description=description, og_type="website", canonical=base + path,
                  og_url=base + path, extra=ld)}
<body class="archive">
{_site_header()}
<div id="content" class="site-content">
<main id="main" class="site-main content-area">
<header class="page-header"><h1 class="page-title">{_esc(heading)}</h1></header>
<ul class="post-list">
{chr(10).join(items)}
</ul>
{extra_blocks}
{pagination}
</main>
</div>
{_site_footer()}
</body>
</html>
"""
    return _html_page(body)


def _prose_page(base: str, path: str, *, title: str, paragraphs: list[str], schema_type: str) -> Page:
    ld = _json_ld({"@context": "https://schema.org", "@type": schema_type, "name": title, "url": base + path})
    paras = "\n".join(f"<p>{_esc(p)}</p>" for p in paragraphs)
    body = f"""{_head(base, title=f"{title} – {SITE_NAME}", description=paragraphs[0][:150], og_type="website",
                  canonical=base + path, og_url=base + path, extra=ld)}
<body class="page">
{_site_header()}
<div id="content" class="site-content">
<main id="main" class="site-main content-area">
<article class="page type-page">
<header class="entry-header"><h1 class="entry-title">{_esc(title)}</h1></header>
<div class="entry-content">
{paras}
</div>
</article>
</main>
</div>
{_site_footer()}
</body>
</html>
"""
    return _html_page(body)


ABOUT_PARAGRAPHS = [
    f"{SITE_NAME} is an independent newsroom that covers diplomacy, defence and international politics. "
    "We were founded by a small group of foreign correspondents who wanted a place for careful, sourced "
    "reporting on the decisions made in the world's capitals.",
    "Our reporters work from Washington, Brussels and Geneva and file stories every day. We correct our "
    "mistakes openly and note every correction at the end of the story concerned.",
    f"{SITE_NAME} is funded by its readers. We do not accept money from governments or political parties, "
    "and our editors decide what we cover.",
]

CONTACT_PARAGRAPHS = [
    "We want to hear from you. Send news tips, corrections and questions about our coverage to the news desk "
    "at newsdesk (at) diplomatic-times.example, and we will reply within two working days.",
    "Our postal address is Diplomatic Times, 1200 Embassy Row, Suite 400, Washington, DC 20008. The news desk "
    "can be reached by telephone on weekdays between 9 a.m. and 6 p.m. Eastern time on +1 202 555 0147.",
    "Press releases should be sent to the same address with the word RELEASE in the subject line.",
]


# --------------------------------------------------------------------------- WordPress article template


def _reference_parts() -> tuple[str, str, list[str]]:
    """(title, caption, body paragraphs) from the reference article's raw text."""
    raw = (_fixtures_dir() / "reference-article.raw.txt").read_text(encoding="utf-8")
    blocks = [_collapse(b) for b in re.split(r"\n\s*\n", raw) if b.strip()]
    title = blocks[0]
    caption = next(b for b in blocks if "photo by" in b.lower())
    start = next(i for i, b in enumerate(blocks) if b.startswith("U.S. Soldiers Will Not Be Part"))
    end = next(i for i, b in enumerate(blocks) if b.endswith("bigger combat operations."))
    return title, caption, blocks[start : end + 1]


def _wp_article_page(
    base: str,
    *,
    path: str,
    title: str,
    author: str,
    author_path: str | None,
    published: datetime,
    published_str: str | None = None,
    paragraphs_html: list[str],
    description: str,
    section: tuple[str, str],
    tags: list[tuple[str, str]],
    caption: str | None,
    related: list[tuple[str, str]],
    canonical: str | None,
    og_url: str | None,
    amphtml: str | None = None,
    byline_suffix: str = "DIPLOMATIC  TIMES",
    post_id: int = 1000,
    publisher: str = SITE_NAME,
) -> Page:
    pub = published_str or _iso(published)
    head_extra = [
        f'<meta name="author" content="{_esc(author)}">',
        f'<meta property="article:published_time" content="{pub}">',
        f'<meta property="article:modified_time" content="{pub}">',
        f'<meta property="article:section" content="{_esc(section[1])}">',
        *(f'<meta property="article:tag" content="{_esc(t[1])}">' for t in tags),
        f'<meta property="og:image" content="{base}{FEATURED_IMAGE_PATH}">',
    ]
    if amphtml:
        head_extra.append(f'<link rel="amphtml" href="{_esc(amphtml)}">')
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": title,
        "description": description,
        "author": [
            {"@type": "Person", "name": author, **({"url": base + author_path} if author_path else {})}
        ],
        "datePublished": pub,
        "dateModified": pub,
        "image": [base + FEATURED_IMAGE_PATH],
        "articleSection": section[1],
        "keywords": [t[1] for t in tags],
        "publisher": {
            "@type": "Organization",
            "name": publisher,
            "logo": {"@type": "ImageObject", "url": base + FEATURED_IMAGE_PATH},
        },
    }
    if canonical:
        ld["mainEntityOfPage"] = {"@type": "WebPage", "@id": canonical}
    head_extra.append(_json_ld(ld))

    author_html = (
        f'<a class="url fn n" rel="author" href="{author_path}">{_esc(author)}</a>' if author_path else _esc(author)
    )
    figure = ""
    if caption:
        figure = (
            '<figure class="post-thumbnail wp-caption aligncenter">'
            f'<img src="{FEATURED_IMAGE_PATH}" width="1" height="1" class="attachment-post-thumbnail wp-post-image" '
            f'alt="{_esc(caption[:60])}">'
            f'<figcaption class="wp-caption-text">{_esc(caption)}</figcaption></figure>'
        )
    tag_links = ", ".join(f'<a href="{href}" rel="tag">{_esc(label)}</a>' for href, label in tags)
    related_html = "\n".join(
        f'<li class="jp-relatedposts-post"><a class="jp-relatedposts-post-a" href="{_esc(href)}">{_esc(t)}</a></li>'
        for href, t in related
    )
    body = f"""{_head(base, title=f"{title} – {SITE_NAME}", description=description, og_type="article",
                  canonical=canonical, og_url=og_url, extra=chr(10).join(head_extra))}
<body class="post-template-default single single-post postid-{post_id} single-format-standard">
{_site_header(menu_title="Browse By")}
<div id="content" class="site-content">
<div id="primary" class="content-area">
<main id="main" class="site-main">
<article id="post-{post_id}" class="post-{post_id} post type-post status-publish format-standard has-post-thumbnail hentry category-{slugify(section[1])}">
<header class="entry-header">
{figure}
<h1 class="entry-title">{_esc(title)}</h1>
<div class="entry-meta">
<span class="byline">By <span class="author vcard">{author_html}</span></span>
<span class="publication-name">{byline_suffix}</span>
<span class="posted-on"><time class="entry-date published" datetime="{pub}">{published:%B %d, %Y}</time><time class="updated" datetime="{pub}">{published:%B %d, %Y}</time></span>
</div>
</header>
<div class="entry-content">
{chr(10).join(paragraphs_html)}
<div class="printfriendly pf-button pf-button-content pf-alignleft">
<a href="#" rel="nofollow" onclick="window.print(); return false;" title="Printer Friendly, PDF &amp; Email">
<span class="pf-button-img">print</span>
<span class="pf-button-text">Print Friendly, PDF &amp; Email</span></a>
</div>
</div>
<footer class="entry-footer">
<span class="cat-links">Posted in <a href="{section[0]}" rel="category tag">{_esc(section[1])}</a></span>
<span class="tags-links">Tagged {tag_links}</span>
<div class="sharedaddy sd-sharing-enabled">
<h3 class="sd-title">Share this:</h3>
<ul class="share-buttons">
<li><button type="button" class="share-facebook" data-shared="sharing-facebook-{post_id}">Facebook</button></li>
<li><button type="button" class="share-twitter" data-shared="sharing-twitter-{post_id}">Twitter</button></li>
<li><button type="button" class="share-linkedin" data-shared="sharing-linkedin-{post_id}">LinkedIn</button></li>
<li><button type="button" class="share-email" data-shared="sharing-email-{post_id}">Email</button></li>
<li><button type="button" class="share-print" onclick="window.print()">Print</button></li>
</ul>
</div>
</footer>
</article>
<div id="jp-relatedposts" class="jp-relatedposts">
<h3 class="jp-relatedposts-headline"><em>Related</em></h3>
<ul>
{related_html}
</ul>
</div>
<div id="comments" class="comments-area">
<div id="respond" class="comment-respond">
<h3 id="reply-title" class="comment-reply-title">Leave a Reply</h3>
<form action="/wp-comments-post.php" method="post" id="commentform" class="comment-form">
<p class="comment-notes">Your email address will not be published. Required fields are marked *</p>
<p class="comment-form-comment"><label for="comment">Comment</label>
<textarea id="comment" name="comment" cols="45" rows="8" required></textarea></p>
<p class="comment-form-author"><label for="author">Name *</label><input id="author" name="author" type="text" required></p>
<p class="comment-form-email"><label for="email">Email *</label><input id="email" name="email" type="email" required></p>
<p class="comment-form-cookies-consent"><input id="wp-comment-cookies-consent" name="wp-comment-cookies-consent" type="checkbox" value="yes">
<label for="wp-comment-cookies-consent">Save my name, email, and website in this browser for the next time I comment.</label></p>
<p class="form-submit"><input name="submit" type="submit" id="submit" class="submit" value="Post Comment">
<input type="hidden" name="comment_post_ID" value="{post_id}"></p>
</form>
</div>
</div>
</main>
</div>
<aside id="secondary" class="widget-area">
<section class="widget widget_search"><form role="search" method="get" class="search-form" action="/">
<label>Search for: <input type="search" class="search-field" name="s"></label><input type="submit" class="search-submit" value="Search"></form></section>
<section class="widget widget_categories"><h2 class="widget-title">Categories</h2><ul>
<li class="cat-item"><a href="/section/world/">World</a></li>
<li class="cat-item"><a href="/section/politics/">Politics</a></li>
<li class="cat-item"><a href="/section/business/">Business</a></li>
</ul></section>
</aside>
</div>
{_site_footer()}
</body>
</html>
"""
    return _html_page(body)


def _paragraphs_html(paragraphs: list[str], quote_indexes: set[int] = frozenset()) -> list[str]:
    out = []
    for i, p in enumerate(paragraphs):
        if i in quote_indexes:
            out.append(f'<blockquote class="wp-block-quote"><p>{_esc(p)}</p></blockquote>')
        else:
            out.append(f"<p>{_esc(p)}</p>")
    return out


# --------------------------------------------------------------------------- near copy

_SYNONYMS = {
    "said": "stated",
    "says": "states",
    "told": "informed",
    "also": "additionally",
    "however": "nevertheless",
    "people": "individuals",
    "because": "since",
    "large": "big",
    "big": "large",
    "help": "assist",
    "very": "highly",
    "many": "numerous",
    "about": "around",
    "show": "indicate",
    "shows": "indicates",
    "government": "administration",
    "major": "significant",
    "important": "crucial",
    "began": "started",
    "start": "begin",
    "before": "prior to",
    "after": "following",
    "while": "whereas",
    "but": "yet",
}


def near_copy_body(body: str, n_changes: int = 3) -> str:
    """The original body with a wire prefix, ``n_changes`` words swapped for synonyms and a
    closing attribution sentence; paragraphs stay separated by "\\n\\n"."""
    paragraphs = body.split("\n\n")
    text = "\n\n".join(paragraphs)
    hits = [m for m in re.finditer(r"\b[A-Za-z]+\b", text) if m.group(0).lower() in _SYNONYMS]
    chosen = []
    if hits:
        for k in range(n_changes):
            idx = (k + 1) * len(hits) // (n_changes + 1)
            if hits[idx] not in chosen:
                chosen.append(hits[idx])
    for m in sorted(chosen, key=lambda m: m.start(), reverse=True):
        word = m.group(0)
        repl = _SYNONYMS[word.lower()]
        if word[0].isupper():
            repl = repl[0].upper() + repl[1:]
        text = text[: m.start()] + repl + text[m.end() :]
    paragraphs = text.split("\n\n")
    paragraphs[0] = "(Wire service) — " + paragraphs[0]
    paragraphs.append(WIRE_SENTENCE)
    return "\n\n".join(paragraphs)


# --------------------------------------------------------------------------- feeds and sitemaps


def _sitemap_index(base: str, sitemaps: list[tuple[str, datetime]]) -> bytes:
    entries = "\n".join(
        f"<sitemap><loc>{xml_escape(base + p)}</loc><lastmod>{_iso(d)}</lastmod></sitemap>" for p, d in sitemaps
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="{SITEMAP_NS}">\n{entries}\n</sitemapindex>\n'
    ).encode("utf-8")


def _news_sitemap(base: str, entries: list[tuple[str, str, datetime, str]]) -> bytes:
    """entries: (path, title, published, language)"""
    urls = []
    for path, title, published, lang in entries:
        urls.append(
            f"<url>\n<loc>{xml_escape(base + path)}</loc>\n<news:news>\n<news:publication>\n"
            f"<news:name>{SITE_NAME}</news:name>\n<news:language>{xml_escape(lang or 'en')}</news:language>\n"
            f"</news:publication>\n<news:publication_date>{_iso(published)}</news:publication_date>\n"
            f"<news:title>{xml_escape(title)}</news:title>\n</news:news>\n</url>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}" xmlns:news="{NEWS_SITEMAP_NS}">\n'
        + "\n".join(urls)
        + "\n</urlset>\n"
    ).encode("utf-8")


def _urlset(base: str, entries: list[tuple[str, datetime | None]]) -> bytes:
    urls = []
    for path, lastmod in entries:
        lm = f"<lastmod>{_iso(lastmod)}</lastmod>" if lastmod else ""
        urls.append(f"<url><loc>{xml_escape(base + path)}</loc>{lm}</url>")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{SITEMAP_NS}">\n' + "\n".join(urls) + "\n</urlset>\n"
    ).encode("utf-8")


def _rss(base: str, items: list[tuple[str, ExpectedArticle, datetime]], built: datetime) -> bytes:
    """items: (href path+query, article, published)"""
    out = []
    for i, (href, art, published) in enumerate(items):
        creator = ", ".join(art.authors)
        out.append(
            f"<item>\n<title>{xml_escape(art.title)}</title>\n<link>{xml_escape(base + href)}</link>\n"
            f"<dc:creator><![CDATA[{creator}]]></dc:creator>\n<pubDate>{format_datetime(published)}</pubDate>\n"
            f'<guid isPermaLink="false">{xml_escape(base)}/?p={2000 + i}</guid>\n'
            f"<description>{xml_escape(_teaser(art.body, 160))}</description>\n</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        f'xmlns:atom="{ATOM_NS}">\n<channel>\n'
        f"<title>{SITE_NAME}</title>\n<link>{xml_escape(base)}/</link>\n"
        f"<description>News and analysis from the world's capitals</description>\n"
        f"<language>en-US</language>\n<lastBuildDate>{format_datetime(built)}</lastBuildDate>\n"
        f'<atom:link href="{xml_escape(base)}/feed/" rel="self" type="application/rss+xml"/>\n'
        + "\n".join(out)
        + "\n</channel>\n</rss>\n"
    ).encode("utf-8")


def _atom(base: str, items: list[tuple[str, ExpectedArticle, datetime]], updated: datetime) -> bytes:
    out = []
    for href, art, published in items:
        authors = "".join(f"<author><name>{xml_escape(a)}</name></author>" for a in art.authors)
        out.append(
            f"<entry>\n<title>{xml_escape(art.title)}</title>\n"
            f'<link rel="alternate" type="text/html" href="{xml_escape(base + href)}"/>\n'
            f"<id>{xml_escape(base + art.path)}</id>\n<published>{_iso(published)}</published>\n"
            f"<updated>{_iso(published)}</updated>\n{authors}\n"
            f"<summary>{xml_escape(_teaser(art.body, 160))}</summary>\n</entry>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="{ATOM_NS}">\n'
        f"<title>{SITE_NAME}</title>\n<id>{xml_escape(base)}/</id>\n<updated>{_iso(updated)}</updated>\n"
        f'<link rel="self" type="application/atom+xml" href="{xml_escape(base)}/atom.xml"/>\n'
        f'<link rel="alternate" type="text/html" href="{xml_escape(base)}/"/>\n'
        + "\n".join(out)
        + "\n</feed>\n"
    ).encode("utf-8")


# --------------------------------------------------------------------------- the news site

# Where each corpus article is published, in order of priority (the first roles are
# filled first, so even a small site has one article per exclusive discovery route).
ROLES = [
    "home_utm",
    "news_sitemap_only",
    "rss_only",
    "atom_only",
    "home_fbclid",
    "world",
    "world_page2",
    "home_gclid",
    "politics_utm",
    "tag_utm",
    "world_page2",
    "news_sitemap_only",
    "business",
    "home",
]
EXTRA_ROLES = ["business", "world", "politics", "world_page2"]
HTML_ROLES = {"home_utm", "home_fbclid", "home_gclid", "home", "world", "world_page2", "politics_utm", "tag_utm",
              "business", "politics"}


def build_news_site(base_url: str, n_corpus_articles: int = 12, n_readability_articles: int = 2) -> NewsSite:
    """A news site of ``n_corpus_articles`` fundus pages, ``n_readability_articles`` Readability
    pages and the reference article, plus copies, listings, feeds and sitemaps."""
    base = base_url.rstrip("/")
    pages: dict[str, Page] = {}
    records = select_corpus_articles(n_corpus_articles, n_readability_articles)

    # ---- corpus articles, served unchanged
    arts: list[ExpectedArticle] = []
    dates: dict[str, datetime] = {}
    rec_by_path: dict[str, CorpusRecord] = {}
    for rec in records:
        r = rec.rec
        published = _parse_date(r.get("published"))
        path = f"/{published:%Y/%m/%d}/{_article_slug(rec)}/"
        n = 2
        while path in pages:
            path = f"/{published:%Y/%m/%d}/{_article_slug(rec)}-{n}/"
            n += 1
        pages[path] = corpus_page(rec)
        authors = list(r["authors"]) if r.get("authors") else _readability_authors(r.get("byline"))
        arts.append(ExpectedArticle(path, r["title"], authors, r["body"], rec.id, _iso(published), _lang(rec)))
        dates[path] = published
        rec_by_path[path] = rec

    roles: dict[str, str] = {}
    for i, art in enumerate(arts):
        roles[art.path] = ROLES[i] if i < len(ROLES) else EXTRA_ROLES[(i - len(ROLES)) % len(EXTRA_ROLES)]

    def with_role(*names: str) -> list[ExpectedArticle]:
        return [a for a in arts if roles[a.path] in names]

    # ---- the reference article
    ref_title, ref_caption, ref_paragraphs = _reference_parts()
    ref_published = datetime.fromisoformat(REFERENCE_PUBLISHED)
    ref = ExpectedArticle(
        REFERENCE_PATH, ref_title, [REFERENCE_AUTHOR], "\n\n".join(ref_paragraphs), "reference",
        REFERENCE_PUBLISHED, "en",
    )
    dates[ref.path] = ref_published
    amp_path = "/amp" + REFERENCE_PATH
    ref_copy_path = "/syndication/copy-of-" + REFERENCE_PATH.rstrip("/").rsplit("/", 1)[1] + "/"

    html_linked = [a for a in arts if roles[a.path] in HTML_ROLES]
    related = [(a.path, a.title) for a in html_linked[:3]]
    quote_idx = {i for i, p in enumerate(ref_paragraphs) if p.startswith(("“", '"'))}
    # The raw text has double spaces between sentences; keep that in the HTML like a sloppy CMS would.
    raw_paragraphs = _reference_raw_paragraphs()
    ref_kwargs = dict(
        title=ref_title,
        author=REFERENCE_AUTHOR,
        author_path=REFERENCE_AUTHOR_PATH,
        published=ref_published,
        published_str=REFERENCE_PUBLISHED,
        paragraphs_html=_paragraphs_html(raw_paragraphs, quote_idx),
        description=_teaser(ref.body, 155),
        section=("/section/world/", "World"),
        tags=[("/tag/nato/", "NATO")],
        caption=ref_caption,
        related=related,
        post_id=12345,
    )
    pages[REFERENCE_PATH] = _wp_article_page(
        base, path=REFERENCE_PATH, canonical=base + REFERENCE_PATH, og_url=base + REFERENCE_PATH,
        amphtml=base + amp_path, **ref_kwargs,
    )
    # canonical alias: the same article, its canonical pointing at the original
    pages[amp_path] = _wp_article_page(
        base, path=amp_path, canonical=base + REFERENCE_PATH, og_url=base + REFERENCE_PATH, **ref_kwargs
    )
    # exact copy: the same article with no canonical and no og:url at all
    pages[ref_copy_path] = _wp_article_page(base, path=ref_copy_path, canonical=None, og_url=None, **ref_kwargs)
    all_articles = [ref] + arts

    # ---- exact copy of a corpus article (identical bytes), near copy of a long English one
    linked_en = [a for a in html_linked if a.language == "en"]
    long_en = [a for a in linked_en if len(a.body) >= 2500] or [a for a in arts if len(a.body) >= 2500]
    if not long_en:
        raise ValueError("no corpus article with a body of 2500+ characters to make a near copy from")
    near_src = max(long_en, key=lambda a: (len(a.body), a.path))
    copy_candidates = [a for a in html_linked if a.path != near_src.path] or [a for a in arts if a is not near_src]
    copy_src = copy_candidates[0] if copy_candidates else near_src
    copy_slug = copy_src.path.rstrip("/").rsplit("/", 1)[1]
    corpus_copy_path = f"/syndication/copy-of-{copy_slug}/"
    pages[corpus_copy_path] = pages[copy_src.path]

    near_slug = near_src.path.rstrip("/").rsplit("/", 1)[1]
    near_path = f"/partners/wire/{near_slug}/"
    near_body = near_copy_body(near_src.body)
    near_title = f"{near_src.title} | {WIRE_NAME}"
    near_published = dates[near_src.path]
    pages[near_path] = _wp_article_page(
        base,
        path=near_path,
        title=near_title,
        author="Wire Staff",
        author_path=None,
        published=near_published,
        paragraphs_html=_paragraphs_html(near_body.split("\n\n")),
        description=_teaser(near_body, 155),
        section=("/section/politics/", "Politics"),
        tags=[("/tag/nato/", "NATO")],
        caption=None,
        related=related,
        canonical=base + near_path,
        og_url=base + near_path,
        byline_suffix=WIRE_NAME.upper(),
        post_id=23456,
        publisher=WIRE_NAME,
    )

    # ---- links with tracking parameters (also served, as a real server ignores them)
    tracking_links: list[str] = []

    def href(art: ExpectedArticle, query: str | None) -> str:
        if not query:
            return art.path
        link = f"{art.path}?{query}"
        if link not in tracking_links:
            tracking_links.append(link)
        pages[link] = pages[art.path]
        return link

    def item(art: ExpectedArticle, query: str | None = None) -> str:
        return _listing_item(href(art, query), art.title, _teaser(art.body), dates[art.path])

    # ---- home page
    home_items = [item(ref)]
    for art in arts:
        role = roles[art.path]
        query = {"home_utm": TRACKING_HOME_UTM, "home_fbclid": TRACKING_FBCLID, "home_gclid": TRACKING_GCLID}
        query = query.get(role)
        if role in ("home_utm", "home_fbclid", "home_gclid", "home"):
            home_items.append(item(art, query))
    staff_block = (
        '<section class="staff-area"><h2>Newsroom</h2><ul>'
        '<li><a href="/private/drafts/">Staff drafts (newsroom login required)</a></li></ul></section>'
    )
    more_block = (
        '<section class="more-sections"><h2>More from the sections</h2><ul>'
        '<li><a href="/section/world/">World news</a></li><li><a href="/section/politics/">Politics</a></li>'
        '<li><a href="/section/business/">Business</a></li><li><a href="/tag/nato/">NATO coverage</a></li></ul>'
        "</section>"
    )
    pages["/"] = _listing_page(
        base, "/", title=f"{SITE_NAME} – News and analysis from the world's capitals", heading="Top stories",
        items=home_items, extra_blocks=more_block + "\n" + staff_block, schema_type="WebSite",
    )

    # ---- sections, tag, pagination, author
    world_items = [item(ref)] + [item(a) for a in with_role("world")]
    pages["/section/world/"] = _listing_page(
        base, "/section/world/", title=f"World – {SITE_NAME}", heading="World", items=world_items,
        pagination='<nav class="pagination"><a class="next page-numbers" href="/section/world/page/2/">Older posts</a></nav>',
    )
    page2_items = [item(a) for a in with_role("world_page2")]
    pages["/section/world/page/2/"] = _listing_page(
        base, "/section/world/page/2/", title=f"World – Page 2 – {SITE_NAME}", heading="World – page 2",
        items=page2_items,
        pagination='<nav class="pagination"><a class="prev page-numbers" href="/section/world/">Newer posts</a></nav>',
    )
    politics_items = [item(a, TRACKING_SECTION_UTM) for a in with_role("politics_utm")] + [
        item(a) for a in with_role("politics")
    ]
    syndicated = [
        _listing_item(corpus_copy_path, copy_src.title, _teaser(copy_src.body), dates[copy_src.path]),
        _listing_item(ref_copy_path, ref.title, _teaser(ref.body), ref_published),
        _listing_item(near_path, near_title, _teaser(near_body), near_published),
    ]
    pages["/section/politics/"] = _listing_page(
        base, "/section/politics/", title=f"Politics – {SITE_NAME}", heading="Politics", items=politics_items,
        extra_blocks='<section class="syndicated"><h2>From our partners</h2><ul>\n' + "\n".join(syndicated)
        + "\n</ul></section>",
    )
    pages["/section/business/"] = _listing_page(
        base, "/section/business/", title=f"Business – {SITE_NAME}", heading="Business",
        items=[item(a) for a in with_role("business")],
    )
    tag_items = [item(ref), _listing_item(amp_path, ref.title + " (AMP)", _teaser(ref.body), ref_published)] + [
        item(a, TRACKING_TAG_UTM) for a in with_role("tag_utm")
    ]
    pages["/tag/nato/"] = _listing_page(
        base, "/tag/nato/", title=f"NATO – {SITE_NAME}", heading="Tag: NATO", items=tag_items
    )
    pages[REFERENCE_AUTHOR_PATH] = _listing_page(
        base, REFERENCE_AUTHOR_PATH, title=f"{REFERENCE_AUTHOR} – {SITE_NAME}", heading=f"Author: {REFERENCE_AUTHOR}",
        items=[item(ref)], schema_type="ProfilePage",
    )
    pages["/about/"] = _prose_page(base, "/about/", title="About us", paragraphs=ABOUT_PARAGRAPHS,
                                   schema_type="AboutPage")
    pages["/contact/"] = _prose_page(base, "/contact/", title="Contact", paragraphs=CONTACT_PARAGRAPHS,
                                     schema_type="ContactPage")

    # ---- the robots-disallowed area (served, so a wrongful fetch is visible in the request log)
    pages["/private/drafts/"] = _listing_page(
        base, "/private/drafts/", title=f"Drafts – {SITE_NAME}", heading="Staff drafts",
        items=[_listing_item("/private/drafts/embargoed-nato-story/", "EMBARGOED: NATO summit communiqué draft",
                             "Not for publication.", None)],
    )
    pages["/private/drafts/embargoed-nato-story/"] = _wp_article_page(
        base,
        path="/private/drafts/embargoed-nato-story/",
        title="EMBARGOED: NATO summit communiqué draft",
        author="News Desk",
        author_path=None,
        published=ref_published,
        paragraphs_html=[f"<p>{_esc(p)}</p>" for p in ABOUT_PARAGRAPHS + CONTACT_PARAGRAPHS],
        description="Embargoed draft, not for publication.",
        section=("/section/world/", "World"),
        tags=[("/tag/nato/", "NATO")],
        caption=None,
        related=[],
        canonical=None,
        og_url=None,
        post_id=99999,
    )
    disallowed = ["/private/drafts/", "/private/drafts/embargoed-nato-story/"]

    pages[FEATURED_IMAGE_PATH] = Page(body=_png_1x1(), content_type="image/png")

    # ---- robots.txt, sitemaps and feeds
    pages["/robots.txt"] = Page(
        body=(
            "User-agent: *\n"
            "Disallow: /private/\n"
            "Disallow: /wp-admin/\n"
            "Allow: /wp-admin/admin-ajax.php\n"
            "\n"
            f"Sitemap: {base}/sitemap_index.xml\n"
        ).encode("utf-8"),
        content_type="text/plain; charset=utf-8",
    )
    exclusive = {"news_sitemap_only", "rss_only", "atom_only"}
    news_entries = [(ref.path, ref.title, ref_published, "en")] + [
        (a.path, a.title, dates[a.path], a.language or "en")
        for a in arts
        if roles[a.path] not in {"rss_only", "atom_only"}
    ]
    pages["/sitemap-news.xml"] = Page(body=_news_sitemap(base, news_entries), content_type=XML_TYPE)
    non_articles = [
        "/",
        "/section/world/",
        "/section/world/page/2/",
        "/section/politics/",
        "/section/business/",
        "/tag/nato/",
        REFERENCE_AUTHOR_PATH,
        "/about/",
        "/contact/",
    ]
    pages_entries = [(p, None) for p in non_articles] + [(ref.path, ref_published)] + [
        (a.path, dates[a.path]) for a in arts if roles[a.path] not in exclusive
    ]
    pages["/sitemap-pages.xml"] = Page(body=_urlset(base, pages_entries), content_type=XML_TYPE)
    newest = max(dates.values())
    pages["/sitemap_index.xml"] = Page(
        body=_sitemap_index(base, [("/sitemap-news.xml", newest), ("/sitemap-pages.xml", newest)]),
        content_type=XML_TYPE,
    )

    def feed_items(names: set[str]) -> list[tuple[str, ExpectedArticle, datetime]]:
        chosen = [ref] + [a for a in arts if roles[a.path] in names]
        chosen.sort(key=lambda a: dates[a.path], reverse=True)
        return [(href(a, TRACKING_RSS_UTM) if a in arts else a.path, a, dates[a.path]) for a in chosen]

    rss_items = feed_items({"rss_only", "home_utm", "home_fbclid"})
    pages["/feed/"] = Page(body=_rss(base, rss_items, newest), content_type=RSS_TYPE)
    atom_chosen = [ref] + [a for a in arts if roles[a.path] in {"atom_only", "world"}]
    atom_chosen.sort(key=lambda a: dates[a.path], reverse=True)
    pages["/atom.xml"] = Page(
        body=_atom(base, [(a.path, a, dates[a.path]) for a in atom_chosen], newest), content_type=ATOM_TYPE
    )

    return NewsSite(
        pages=pages,
        articles=all_articles,
        non_articles=non_articles,
        disallowed=disallowed,
        exact_copies={corpus_copy_path: copy_src.path, ref_copy_path: ref.path},
        near_copies={near_path: near_src.path},
        canonical_aliases={amp_path: ref.path},
        tracking_links=tracking_links,
        only_in_news_sitemap=[a.path for a in with_role("news_sitemap_only")],
        only_in_rss=[a.path for a in with_role("rss_only")],
        only_in_atom=[a.path for a in with_role("atom_only")],
        base_url=base,
        news_sitemap={path: (title, _iso(published), lang or "en") for path, title, published, lang in news_entries},
    )


def _reference_raw_paragraphs() -> list[str]:
    """The reference body paragraphs with their original (sloppy) inner spacing, trailing space stripped."""
    raw = (_fixtures_dir() / "reference-article.raw.txt").read_text(encoding="utf-8")
    blocks = [b.strip() for b in re.split(r"\n\s*\n", raw) if b.strip()]
    start = next(i for i, b in enumerate(blocks) if b.startswith("U.S. Soldiers Will Not Be Part"))
    end = next(i for i, b in enumerate(blocks) if b.endswith("bigger combat operations."))
    return blocks[start : end + 1]


# --------------------------------------------------------------------------- the corpus site


def _corpus_path(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    host = slugify_segment(parts.hostname or "")
    if not host:
        return None
    raw_segments = [s for s in parts.path.split("/") if s]
    segments = [slugify_segment(unquote(s)) for s in raw_segments]
    path = "/" + "/".join([host] + segments)
    if parts.path.endswith("/") or not segments:
        path += "/"
    return path


def slugify_segment(seg: str, max_len: int = 100) -> str:
    """A path segment made ASCII-safe: letters, digits, '.', '_' and '-' are kept."""
    seg = unicodedata.normalize("NFKD", seg.translate(_TRANSLIT)).encode("ascii", "ignore").decode("ascii")
    seg = re.sub(r"[^A-Za-z0-9._-]+", "-", seg)
    seg = re.sub(r"-{2,}", "-", seg).strip("-.")
    seg = seg[:max_len].strip("-.")
    if not seg:
        seg = "x"
    return seg


def build_corpus_site(
    base_url: str, page_types=("news", "magazine_or_blog_article")
) -> tuple[dict[str, Page], dict[str, str]]:
    """Every corpus page of those page_types served as-is at a unique path derived from its url
    (``/<host>/<path>``, made ASCII-safe, or ``/corpus/<id>/`` when url is null or the path is
    taken), plus a home page linking all of them, ``/sitemap.xml`` listing them and a
    ``/robots.txt`` pointing at the sitemap; returns (pages, path -> corpus id).

    The corpus HTML bytes are served unchanged, with the charset ``corpus_content_type`` picks."""
    base = base_url.rstrip("/")
    pages: dict[str, Page] = {}
    ids: dict[str, str] = {}
    titles: dict[str, str] = {}
    for rec in corpus_records():
        if rec.rec.get("page_type") not in page_types:
            continue
        path = _corpus_path(rec.rec.get("url"))
        if path is None or path in pages or path in ("/", "/sitemap.xml", "/robots.txt"):
            path = f"/corpus/{rec.id}/"
        pages[path] = corpus_page(rec)
        ids[path] = rec.id
        titles[path] = rec.rec.get("title") or rec.id

    links = "\n".join(
        f'<li><a href="{_esc(p)}">{_esc(titles[p])}</a></li>' for p in ids
    )
    pages["/"] = _html_page(
        f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Corpus index</title>
<meta property="og:type" content="website">
</head>
<body>
<h1>Corpus index</h1>
<ul>
{links}
</ul>
</body>
</html>
"""
    )
    pages["/sitemap.xml"] = Page(body=_urlset(base, [(p, None) for p in ids]), content_type=XML_TYPE)
    pages["/robots.txt"] = Page(
        body=f"User-agent: *\nDisallow:\n\nSitemap: {base}/sitemap.xml\n".encode("utf-8"),
        content_type="text/plain; charset=utf-8",
    )
    return pages, ids


__all__ = [
    "CORPUS_DIR",
    "FIXTURES_DIR",
    "START_PATHS",
    "ExpectedArticle",
    "NewsSite",
    "build_news_site",
    "build_corpus_site",
    "select_corpus_articles",
    "corpus_records",
    "near_copy_body",
    "declared_charset",
]
