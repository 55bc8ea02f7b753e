"""What a publisher states about an article besides its body: terms (sections, keywords), the paywall, and the
Google News sitemap's fields, as article columns.

Pure functions, shared by the spider's sitemap reading (``crawler/documents.py``), the extract step (which has
the page's statements and the sitemap entry that came with its request) and the archive step (which gives an
entry read after its page's row was written to that row). Every list is bounded: a publisher's keyword field
can be a megabyte.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from cssselect import SelectorError
from lxml.etree import XPathError
from lxml.html import HtmlElement

from pipelines.dates import parse_date_statement
from pipelines.fingerprints import canonicalize_url
from pipelines.records import ArticleRecord, SitemapNews, SitemapNewsSeen

MAX_TERMS = 50  #: sections or keywords kept per article, in the order stated
MAX_TERM_CHARS = 200  #: a longer term is cut here
MAX_TERMS_TEXT = 20_000  #: characters of one comma-separated statement read; the rest is ignored
MAX_PAYWALL_SELECTORS = 10
MAX_SELECTOR_CHARS = 300
#: share of the paywalled parts' text that the body must hold for it to count as holding them
PAYWALLED_TEXT_HELD = 0.5

_SEPARATOR = re.compile(r"[,;\n]")
_BLOCKS = "self::p or self::li or self::h2 or self::h3 or self::h4 or self::blockquote or self::td"


def clean_term(value: object) -> str | None:
    """One term with its whitespace collapsed, cut at MAX_TERM_CHARS; None when empty or not text."""
    if not isinstance(value, str):
        return None
    term = " ".join(value[: MAX_TERM_CHARS * 4].split())[:MAX_TERM_CHARS].strip()
    return term or None


def split_terms(text: object, *, limit: int = MAX_TERMS) -> list[str]:
    """A comma-separated statement (``"Senate, Budget; Taxes"``) as terms, at most ``limit``, the first
    MAX_TERMS_TEXT characters read; a list of strings is taken as it is."""
    if isinstance(text, list):
        return merge_terms(text, limit=limit)
    if not isinstance(text, str):
        return []
    return merge_terms(_SEPARATOR.split(text[:MAX_TERMS_TEXT]), limit=limit)


def merge_terms(*statements: Iterable[object], limit: int = MAX_TERMS) -> list[str]:
    """Terms from several statements, in order, each once: the first spelling is kept ("Senate" and "senate" are
    one term), case as stated; at most ``limit``."""
    result: list[str] = []
    seen: set[str] = set()
    for statement in statements:
        for value in statement or ():
            term = clean_term(value)
            if term is None:
                continue
            key = unicodedata.normalize("NFKC", term).casefold()
            if key not in seen:
                seen.add(key)
                result.append(term)
                if len(result) >= limit:
                    return result
    return result


def sitemap_news_columns(news: SitemapNews | None, keywords: list[str] | None, *, now: datetime) -> dict:
    """The article columns a sitemap entry's news block gives (all null without one), and ``keywords`` (the
    page's own) with the entry's keywords merged after them. The publication date follows ``published_at``'s
    rule: an instant only when it has a time and an offset, never one invented; ``now`` bounds plausibility."""
    if news is None:
        return {"keywords": list(keywords or []), **{name: None for name in SITEMAP_NEWS_COLUMNS}}
    published = parse_date_statement(news.publication_date, now=now)
    return {
        "keywords": merge_terms(keywords or [], news.keywords),
        "sitemap_news_title": news.title,
        "sitemap_news_published_at": published.instant,
        "sitemap_news_published_date": published.day,
        "sitemap_news_published_at_raw": news.publication_date,
        "sitemap_news_publication": news.publication,
        "sitemap_news_language": news.language,
        "sitemap_news_keywords": list(news.keywords),
        "sitemap_news_genres": list(news.genres),
        "sitemap_news_stock_tickers": list(news.stock_tickers),
        "sitemap_news_access": news.access,
    }


#: the columns that hold a news block as stated (the others are read from them): a row's block can be rebuilt
SITEMAP_NEWS_STATED = {
    "sitemap_news_title": "title", "sitemap_news_published_at_raw": "publication_date",
    "sitemap_news_publication": "publication", "sitemap_news_language": "language",
    "sitemap_news_keywords": "keywords", "sitemap_news_genres": "genres",
    "sitemap_news_stock_tickers": "stock_tickers", "sitemap_news_access": "access",
}


def sitemap_news_of_row(row: dict) -> SitemapNews | None:
    """The news block an article row was given (a re-extraction keeps it: the WARC record does not hold it)."""
    values = {field: row.get(column) for column, field in SITEMAP_NEWS_STATED.items()}
    if not any(values.values()):
        return None
    return SitemapNews(**{field: tuple(value) if isinstance(value, list) else value
                          for field, value in values.items() if value})


SITEMAP_NEWS_COLUMNS = (
    "sitemap_news_title", "sitemap_news_published_at", "sitemap_news_published_date", "sitemap_news_published_at_raw",
    "sitemap_news_publication", "sitemap_news_language", "sitemap_news_keywords", "sitemap_news_genres",
    "sitemap_news_stock_tickers", "sitemap_news_access",
)


# --- the paywall ------------------------------------------------------------------------------------------------

def paywalled_texts(tree: HtmlElement, selectors: list[str]) -> list[str] | None:
    """The text of the parts of the page its ``hasPart`` markup says are not free (``cssSelector``), one string
    per block, normalised; None when no selector could be used (none given, or none valid CSS). Read before
    trafilatura sees the tree."""
    texts: list[str] = []
    usable = False
    for selector in selectors[:MAX_PAYWALL_SELECTORS]:
        if not selector or len(selector) > MAX_SELECTOR_CHARS:
            continue
        try:
            elements = tree.cssselect(selector)
        except (SelectorError, XPathError, ValueError):
            continue
        usable = True
        for element in elements:
            blocks = element.xpath(f".//*[{_BLOCKS}]") or [element]
            for block in blocks:
                text = _normal(block.text_content())
                if text:
                    texts.append(text)
    return texts if usable else None


def body_truncated_by_paywall(texts: list[str] | None, body: str) -> bool | None:
    """Whether the body lacks the page's paywalled parts: None when the page marks none; True when the marked
    parts are empty or absent (the page served the free part only) or the body holds less than
    PAYWALLED_TEXT_HELD of their text; False when it holds them."""
    if texts is None:
        return None
    total = sum(len(text) for text in texts)
    if not total:
        return True
    held = _normal(body)
    found = sum(len(text) for text in texts if text in held)
    return found < PAYWALLED_TEXT_HELD * total


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --- an entry read after its URL was requested ----------------------------------------------------------------

class LateSitemapNews:
    """Google News sitemap entries for URLs this run requested before it read them (found first by a link or a
    feed), matched to those URLs' article rows by canonical URL (the row's, its fetched URL's, its redirect hops').

    An entry that comes while its page is still on its way waits here and is applied to the row when it comes
    (``article``); one that comes after the row was written is handed back (``seen``) for the writer to amend that
    row when its file closes. Only rows without an entry of their own are remembered, each canonical URL by one
    dict entry: one ``where`` object per file, shared by its rows, and the row's url kept only where it is not that
    canonical URL (``python benchmarks/crawler_memory.py`` shows what the crawler holds per page).
    """

    def __init__(self) -> None:
        self.waiting: dict[str, SitemapNewsSeen] = {}  #: canonical URL -> entry whose row has not come yet
        self.written: dict[str, object] = {}  #: canonical URL -> where the writer put the row
        self.written_url: dict[str, str] = {}  #: canonical URL -> the row's url, where it is not that URL
        self._places: dict[object, object] = {}  #: each ``where`` once

    def article(self, record: ArticleRecord, where: object) -> ArticleRecord:
        """``record`` with the fields of an entry that was waiting for it; remembered (at ``where``) when it has
        none, so that an entry coming later still reaches it."""
        if record.sitemap_news_keywords is not None:  # (a list, empty or not, whenever an entry gave the fields)
            return record
        keys = _row_keys(record)
        for key in keys:
            seen = self.waiting.pop(key, None)
            if seen is not None:
                return dataclasses.replace(record, **sitemap_news_columns(seen.news, record.keywords,
                                                                          now=seen.seen_at))
        where = self._places.setdefault(where, where)
        for key in keys:
            self.written[key] = where
            if record.url != key:
                self.written_url[key] = record.url
        return record

    def seen(self, seen: SitemapNewsSeen) -> tuple[str, object] | None:
        """(the row's url, where it was written) when the entry's row is already written (it is then forgotten),
        else None (the entry waits for its row)."""
        key = seen.canonical_url
        where = self.written.pop(key, None)
        url = self.written_url.pop(key, key)
        if where is None:
            self.waiting.setdefault(key, seen)
            return None
        return url, where


def amend_with(seen: SitemapNewsSeen):
    """The row change that gives a written row an entry's fields (its keywords merged), for the Parquet writer."""
    def changes(row: dict) -> dict:
        return sitemap_news_columns(seen.news, row.get("keywords"), now=seen.seen_at)
    return changes


def _row_keys(record: ArticleRecord) -> list[str]:
    keys = [record.canonical_url, canonicalize_url(record.url)]
    keys += [canonicalize_url(url) for url in record.redirect_urls or ()]
    return list(dict.fromkeys(keys))
