"""What a page says about itself: structured metadata read from its HTML tree.

Read-only over an lxml tree (the same tree is then handed to trafilatura):
og:type, JSON-LD types, canonical links, date statements with where they came
from, ``<html lang>``, sections and keywords (JSON-LD, ``article:section``,
``article:tag``, ``keywords``, ``news_keywords``), the paywall statement
(JSON-LD ``isAccessibleForFree`` and ``hasPart`` ``cssSelector``), and microdata
``itemtype``s. How the page is built is measured in ``pipelines/pagestructure.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lxml.html import HtmlElement

from pipelines.publisher import merge_terms, split_terms

#: schema.org types that mean "this page is one article"
ARTICLE_TYPES = frozenset(
    {
        "article", "newsarticle", "reportagenewsarticle", "analysisnewsarticle", "opinionnewsarticle",
        "reviewnewsarticle", "backgroundnewsarticle", "askpublicnewsarticle", "blogposting",
        "socialmediaposting", "liveblogposting", "report", "scholarlyarticle", "techarticle", "satiricalarticle",
    }
)
#: schema.org types that mean "this page lists other pages"
LISTING_TYPES = frozenset({"collectionpage", "itemlist", "searchresultspage", "profilepage", "aboutpage", "contactpage"})

_PUBLISHED_META = (
    "article:published_time", "og:published_time", "og:article:published_time", "datepublished",
    "publishdate", "publish-date", "pubdate", "parsely-pub-date", "sailthru.date", "dc.date.issued",
    "dcterms.created", "dc.date", "date",
)
_MODIFIED_META = ("article:modified_time", "og:updated_time", "datemodified", "dcterms.modified", "last-modified")
_MAX_JSONLD_BYTES = 1_000_000


@dataclass(kw_only=True, slots=True)
class PageMeta:
    og_type: str | None = None
    jsonld_types: set[str] = field(default_factory=set)  #: lower-cased schema.org types
    microdata_types: set[str] = field(default_factory=set)  #: lower-cased schema.org types of itemtype attributes
    canonical: str | None = None  #: <link rel=canonical href>, as written
    og_url: str | None = None
    published_raw: str | None = None
    published_source: str | None = None  #: jsonld, meta, time
    modified_raw: str | None = None
    modified_source: str | None = None
    html_lang: str | None = None
    jsonld_authors: list[str] = field(default_factory=list)
    jsonld_headline: str | None = None
    sections: list[str] = field(default_factory=list)  #: JSON-LD articleSection, then article:section
    keywords: list[str] = field(default_factory=list)  #: JSON-LD keywords, then article:tag, keywords, news_keywords
    is_accessible_for_free: bool | None = None  #: JSON-LD isAccessibleForFree (the article's, else the page's)
    paywalled_selectors: list[str] = field(default_factory=list)  #: hasPart parts not free: their cssSelector
    tree: HtmlElement | None = None  #: the page, for the structure measures a decision needs (pipelines/pagestructure.py)


def read_page_meta(tree: HtmlElement) -> PageMeta:
    meta = PageMeta()
    meta.html_lang = (tree.get("lang") or tree.get("xml:lang") or "").strip() or None
    _read_jsonld(tree, meta)
    sections, tags, keywords = [], [], []
    for element in tree.iterfind(".//meta"):
        key = (element.get("property") or element.get("name") or element.get("itemprop") or "").strip().lower()
        content = (element.get("content") or "").strip()
        if not key or not content:
            continue
        if key == "og:type" and meta.og_type is None:
            meta.og_type = content.lower()
        elif key == "og:url" and meta.og_url is None:
            meta.og_url = content
        elif key in _PUBLISHED_META and meta.published_raw is None:
            meta.published_raw, meta.published_source = content, "meta"
        elif key in _MODIFIED_META and meta.modified_raw is None:
            meta.modified_raw, meta.modified_source = content, "meta"
        elif key == "article:section":
            sections.append(content)
        elif key == "article:tag":
            tags.append(content)
        elif key in ("keywords", "news_keywords"):
            keywords.extend(split_terms(content))
    meta.sections = merge_terms(meta.sections, sections)
    meta.keywords = merge_terms(meta.keywords, tags, keywords)
    for link in tree.iterfind(".//link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            meta.canonical = link.get("href").strip()
            break
    if meta.published_raw is None:
        _read_time_elements(tree, meta)
    for itemtype in tree.xpath("//*[@itemtype]/@itemtype")[:50]:
        meta.microdata_types |= {value.rstrip("/").rsplit("/", 1)[-1].lower() for value in itemtype.split()}
    meta.tree = tree
    return meta


def _read_jsonld(tree: HtmlElement, meta: PageMeta) -> None:
    article: dict | None = None
    free: bool | None = None  #: stated by an object other than the article (its WebPage)
    for script in tree.xpath('//script[contains(translate(@type, "LDJSON", "ldjson"), "ld+json")]'):
        text = script.text or ""
        if len(text) > _MAX_JSONLD_BYTES:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        for obj in _walk_jsonld(data):
            types = {t.lower() for t in _as_list(obj.get("@type")) if isinstance(t, str)}
            meta.jsonld_types |= types
            if article is None and types & ARTICLE_TYPES:
                article = obj
            elif "hasPart" in obj or "isAccessibleForFree" in obj:
                stated = _read_paywall(obj, meta)
                free = stated if free is None else free
    if article is None:
        meta.is_accessible_for_free = free
        return
    stated = _read_paywall(article, meta)
    meta.is_accessible_for_free = stated if stated is not None else free
    meta.sections = split_terms(article.get("articleSection"))
    meta.keywords = split_terms(article.get("keywords"))
    published, modified = article.get("datePublished"), article.get("dateModified")
    if isinstance(published, str) and published.strip():
        meta.published_raw, meta.published_source = published.strip(), "jsonld"
    if isinstance(modified, str) and modified.strip():
        meta.modified_raw, meta.modified_source = modified.strip(), "jsonld"
    headline = article.get("headline")
    if isinstance(headline, str) and headline.strip():
        meta.jsonld_headline = " ".join(headline.split())
    for author in _as_list(article.get("author")):
        name = author.get("name") if isinstance(author, dict) else author
        if isinstance(name, str) and name.strip():
            meta.jsonld_authors.append(" ".join(name.split()))


def _read_paywall(obj: dict, meta: PageMeta) -> bool | None:
    """``isAccessibleForFree`` of one object (a boolean, or "False"/"true" as publishers also write it), and the
    cssSelector of each of its ``hasPart`` parts that is not free, added to ``meta``."""
    for part in _as_list(obj.get("hasPart"))[:20]:
        if isinstance(part, dict) and _boolean(part.get("isAccessibleForFree")) is False:
            for selector in _as_list(part.get("cssSelector")):
                if isinstance(selector, str) and selector.strip() and selector.strip() not in meta.paywalled_selectors:
                    meta.paywalled_selectors.append(selector.strip())
    return _boolean(obj.get("isAccessibleForFree"))


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _walk_jsonld(data: object, depth: int = 0):
    """Yield every JSON-LD object at the top, in lists and in @graph (bounded depth)."""
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _walk_jsonld(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _walk_jsonld(data["@graph"], depth + 1)
        main = data.get("mainEntity")
        if isinstance(main, dict):
            yield from _walk_jsonld(main, depth + 1)


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _read_time_elements(tree: HtmlElement, meta: PageMeta) -> None:
    for element in tree.xpath('//*[@itemprop="datePublished"] | //time[@pubdate] | //time[contains(@class, "publish")]'):
        raw = (element.get("datetime") or element.get("content") or "").strip()
        if raw:
            meta.published_raw, meta.published_source = raw, "time"
            return
