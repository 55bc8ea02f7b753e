"""Decide whether a page is one article, from the page itself first and its URL last.

Signals, each weighed: structured data (JSON-LD types, in ``@graph`` and arrays too, og:type, microdata
``itemtype``; a stated publication date), how the page is built (a long run of paragraphs; the body a row of
teaser cards; the body's own link density, or its paragraphs led by headline links: ``pipelines/pagestructure.py``),
how much text the extractor found, and, as a tie-breaker (a point; two against a utility page), the URL's shape (a dated path or
a long slug versus a home, section, tag, pagination or utility path). A page whose body is a row of teasers is a
listing whatever else it says. No list of known URLs and nothing keyed on a site: pages are recognised by what
they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from pipelines.pagemeta import ARTICLE_TYPES, LISTING_TYPES, PageMeta
from pipelines.pagestructure import (anchor_texts, body_link_density, link_led_share, normal, paragraph_run, teaser_cards,
                                    teaser_share)

_LISTING_SEGMENTS = frozenset(
    {
        "tag", "tags", "category", "categories", "section", "sections", "topic", "topics", "author", "authors",
        "page", "search", "archive", "archives", "label", "labels", "series", "hub", "index",
    }
)
_UTILITY_SEGMENTS = frozenset(
    {
        "about", "about-us", "contact", "contact-us", "privacy", "privacy-policy", "terms", "terms-of-service",
        "imprint", "impressum", "subscribe", "newsletter", "newsletters", "login", "register", "signup", "faq",
        "help", "sitemap", "feed", "rss", "jobs", "careers", "advertise", "cookies", "cookie-policy", "datenschutz",
        "kontakt", "legal", "accessibility", "team", "staff",
    }
)
#: (not ``p``: WordPress' ``/?p=4411`` is a post)
_PAGINATION_PARAMS = frozenset({"page", "paged", "pg", "offset", "start"})
_DATE_IN_PATH = re.compile(r"/(19|20)\d{2}/(0?[1-9]|1[0-2])(/|$)|/(19|20)\d{2}-\d{2}-\d{2}|/(19|20)\d{6}")
_LONG_ID = re.compile(r"\d{5,}")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_WORD = re.compile(r"[^\W\d_]+|\d+")


@dataclass(frozen=True, slots=True)
class PageVerdict:
    is_article: bool
    reason: str  #: "article", or why not: not_article, too_short
    detail: str  #: the signals and their weights, for the rejects dataset and debugging


def url_shape(url: str) -> str:
    """``article``, ``listing``, ``utility`` or ``unknown`` from the URL alone."""
    parts = urlsplit(url)
    segments = [s.lower() for s in parts.path.split("/") if s]
    if not segments and not parts.query:
        return "listing"  # a home page
    if any(key.lower() in _PAGINATION_PARAMS and value.isdigit() for key, value in parse_qsl(parts.query)):
        return "listing"
    last = re.sub(r"\.(s?html?|php|aspx?)$", "", segments[-1]) if segments else ""  # (/?cat=7: a query only)
    long_id_in_query = any(_LONG_ID.search(value) for _, value in parse_qsl(parts.query))
    if last in _UTILITY_SEGMENTS:
        return "utility"
    if _DATE_IN_PATH.search(parts.path) or _LONG_ID.search(last) or long_id_in_query:
        return "article"
    if any(segment in _LISTING_SEGMENTS for segment in segments):
        return "listing"
    if len(_WORD.findall(last)) >= 4 or (len(last) >= 25 and "-" in last):
        return "article"
    if len(segments) == 1 and len(_WORD.findall(last)) <= 2 and not parts.query:
        return "listing"  # a section: /world/, /politics
    return "unknown"


def text_weight(text: str) -> int:
    """Length of ``text`` in Latin-script characters: a CJK character counts three, as it carries about a word."""
    return len(text) + 2 * len(_CJK.findall(text))


def classify_page(url: str, meta: PageMeta, body: str, *, min_chars: int) -> PageVerdict:
    """Weigh the page's own signals, then its URL's shape as a tie-breaker; ``body`` is the extracted text
    (paragraphs separated by a blank line)."""
    body_chars = text_weight(body)
    weights: list[tuple[str, int]] = []
    types = meta.jsonld_types | meta.microdata_types
    structured_article = meta.og_type == "article" or bool(types & ARTICLE_TYPES)
    if structured_article:
        weights.append(("structured:article", 3))
    elif types & LISTING_TYPES:
        weights.append(("structured:listing", -2))
    elif meta.og_type in {"website", "profile", "blog"}:
        weights.append((f"structured:{meta.og_type}", -1))
    if not structured_article and meta.published_source in ("jsonld", "meta"):
        weights.append(("date:stated", 1))  # article:published_time and the like: a page about one story
    tree = meta.tree
    run = paragraph_run(tree) if tree is not None else 0
    if run >= 4:
        weights.append((f"paragraphs:{run}", 2 if run >= 8 else 1))
    shape = url_shape(url)
    weights.append((f"url:{shape}", {"article": 1, "listing": -1, "utility": -2, "unknown": 0}[shape]))
    if body_chars >= 1000:
        weights.append(("text:long", 1))
    paragraphs = [normal(line) for line in body.splitlines() if line.strip()]  # (a list's items: one line each)
    if tree is not None:
        teasers = teaser_share(paragraphs, teaser_cards(tree))
        if teasers >= 0.5:  # the body is a row of teasers: a listing, whatever else the page says...
            weights.append((f"teasers:{teasers:.2f}", -4 if run >= 8 else -6))  # ...unless it holds a story too
        elif teasers >= 0.2:
            weights.append((f"teasers:{teasers:.2f}", -2))
    partial = sum(weight for _, weight in weights)
    if tree is not None and 1 <= partial < 4:  # (only where the body's links can decide: it costs ~1 ms a page)
        anchors = anchor_texts(tree)
        links = body_link_density(paragraphs, anchors)
        led = link_led_share(paragraphs, anchors) if len(paragraphs) >= 5 else 0.0
        if links >= 0.7:  # a page of links
            weights.append((f"body_links:{links:.2f}", -3))
        elif led >= 0.5:  # headlines, each with a line of teaser
            weights.append((f"link_led:{led:.2f}", -3))
    score = sum(weight for _, weight in weights)
    detail = " ".join(f"{name}({weight:+d})" for name, weight in weights) + f" score={score} chars={body_chars}"
    if body_chars < min_chars:
        return PageVerdict(False, "too_short", detail)
    if score < 1:
        return PageVerdict(False, "not_article", detail)
    return PageVerdict(True, "article", detail)
