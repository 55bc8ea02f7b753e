"""trafilatura's document for a page already parsed: ``bare_extraction`` less what the archive does not use.

``bare_extraction(tree, options=options, prune_xpath=...)`` with metadata does two things the archive pays for and
never reads: it looks for a license (no column holds one), and it runs htmldate's search even when the page
states its own date, which the archive then uses instead (together ~15 % of trafilatura's metadata step:
``python benchmarks/extract_steps.py`` times both). ``trafilatura_document`` runs
trafilatura's own steps in ``bare_extraction``'s order without those two; every other value is the same, for every
corpus page (tests/test_extract.py compares it with ``bare_extraction``). Like bare_extraction it works on a copy of
the tree: the page type reads the page's own tree afterwards (pipelines/pagetype.py).

It calls ``trafilatura.core.trafilatura_sequence``, the cascade ``bare_extraction`` runs, which trafilatura calls
internal: pyproject pins trafilatura below 2.4, and the comparison test fails on a release that changes it.
"""

from __future__ import annotations

from copy import copy

from courlan import extract_domain
from htmldate import find_date
from lxml.etree import XPath, strip_tags
from lxml.html import HtmlElement
from trafilatura.core import trafilatura_sequence
from trafilatura.htmlprocessing import prune_unwanted_nodes
from trafilatura.metadata import (META_URL, check_authors, examine_meta, extract_author, extract_catstags,
                                  extract_meta_json, extract_sitename, extract_title, extract_url)
from trafilatura.settings import Document, Extractor


def trafilatura_document(tree: HtmlElement, options: Extractor, *, prune_xpath: list[str],
                         date_stated: bool) -> Document | None:
    """The Document ``bare_extraction(tree, options=options, prune_xpath=prune_xpath)`` returns (``options`` with
    metadata on, as ``pipelines.extract.build_options`` makes them), ``license`` left empty and ``date`` too when
    ``date_stated``; None where bare_extraction finds too little text. ``tree`` itself is left as it was."""
    document = trafilatura_metadata(tree, options, date_stated=date_stated)  # reads the tree only
    tree = prune_unwanted_nodes(copy(tree), [XPath(path) for path in prune_xpath])
    body, text, _, comments = trafilatura_sequence(tree, options, options.url or document.url)
    if options.max_tree_size and len(body) > options.max_tree_size:
        strip_tags(body, "hi")
        if len(body) > options.max_tree_size:
            return None
    if len(text) < options.min_output_size and len(comments) < options.min_output_comm_size:
        return None
    document.raw_text, document.body = text, body
    return document


def trafilatura_metadata(tree: HtmlElement, options: Extractor, *, date_stated: bool) -> Document:
    """``trafilatura.metadata.extract_metadata``, step by step, without the license and, when ``date_stated``, the
    date."""
    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:  # a single word is not an author's name
        metadata.author = None
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception:  # noqa: BLE001 (trafilatura's own guard: its JSON-LD reading has no exception contract)
        pass
    if not metadata.title:
        metadata.title = extract_title(tree)
    if metadata.author and options.author_blacklist:
        metadata.author = check_authors(metadata.author, options.author_blacklist)
    if not metadata.author:
        metadata.author = extract_author(tree)
    if metadata.author and options.author_blacklist:
        metadata.author = check_authors(metadata.author, options.author_blacklist)
    if not metadata.url:
        metadata.url = extract_url(tree, options.url)
    if metadata.url:
        metadata.hostname = extract_domain(metadata.url, fast=True)
    if not date_stated:
        metadata.date = find_date(tree, **{**options.date_params, "url": metadata.url})
    if not metadata.sitename:
        metadata.sitename = extract_sitename(tree)
    if metadata.sitename:
        metadata.sitename = metadata.sitename.lstrip("@")  # a Twitter handle
        if metadata.sitename and "." not in metadata.sitename and not metadata.sitename[0].isupper():
            metadata.sitename = metadata.sitename.title()
    elif metadata.url:
        match = META_URL.match(metadata.url)
        if match:
            metadata.sitename = match[1]
    if not metadata.categories:
        metadata.categories = extract_catstags("category", tree)
    if not metadata.tags:
        metadata.tags = extract_catstags("tag", tree)
    metadata.filedate = options.date_params.get("max_date")
    metadata.clean_and_trim()
    return metadata
