"""Decide whether a page is one article, from the page's own signals.

Signals, each weighed: structured metadata (og:type, JSON-LD types), the URL's
shape (a dated path or a long slug versus a home, section, tag, pagination or
utility path), how much text the extractor found, and how much of the page's
text is link text. No list of known URLs: listing pages are recognised by what
they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from pipelines.pagemeta import ARTICLE_TYPES, LISTING_TYPES, PageMeta

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
_PAGINATION_PARAMS = frozenset({"page", "p", "pg", "offset", "start"})
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
    last = re.sub(r"\.(s?html?|php|aspx?)$", "", segments[-1])
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


def classify_page(url: str, meta: PageMeta, body_chars: int, *, min_chars: int) -> PageVerdict:
    """Weigh the signals; ``body_chars`` is the ``text_weight`` of the extracted body."""
    weights: list[tuple[str, int]] = []
    structured_article = meta.og_type == "article" or bool(meta.jsonld_types & ARTICLE_TYPES)
    if structured_article:
        weights.append(("structured:article", 3))
    elif meta.jsonld_types & LISTING_TYPES:
        weights.append(("structured:listing", -2))
    elif meta.og_type in {"website", "profile", "blog"}:
        weights.append((f"structured:{meta.og_type}", -1))
    shape = url_shape(url)
    weights.append((f"url:{shape}", {"article": 1, "listing": -3, "utility": -3, "unknown": 0}[shape]))
    if body_chars >= 1000:
        weights.append(("text:long", 1))
    partial = sum(weight for _, weight in weights)
    if partial == 1 and meta.link_density > 0.7:  # the cases where it can decide
        weights.append((f"link_density:{meta.link_density:.2f}", -1))
    elif partial == 2 and not structured_article and meta.link_density > 0.9:  # a page of links, whatever its URL
        weights.append((f"link_density:{meta.link_density:.2f}", -2))
    score = sum(weight for _, weight in weights)
    detail = " ".join(f"{name}({weight:+d})" for name, weight in weights) + f" score={score} chars={body_chars}"
    if body_chars < min_chars:
        return PageVerdict(False, "too_short", detail)
    if score < 1:
        return PageVerdict(False, "not_article", detail)
    return PageVerdict(True, "article", detail)
