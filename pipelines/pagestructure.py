"""How a page is built, measured on its HTML tree and the body trafilatura extracted from it.

Three measures tell one story apart from a page of many (pipelines/pagetype.py weighs them):

- ``paragraph_run``: the most long paragraphs (``<p>`` of 80 characters or more, less than half of it link text)
  under one parent element. A story is a headline followed by a run of them; a listing's teasers sit one to a
  card.
- ``teaser_share``: the share of the body's text that lies inside teaser cards: repeated siblings (three or more
  under one parent), each holding one linked headline (``h2``-``h5`` with a link) and less than 2,000 characters.
  A listing's body is its teasers, however long they are; a story's related-links box is not in its body.
- ``body_link_density``: the share of the body's text that is link text on the page (a paragraph that is a whole
  link, or the links inside a paragraph), measured on the extracted body rather than the whole page: a story whose
  paragraphs carry many links keeps a low one, a page of links a high one.
- ``link_led_share``: the share of the body's text in paragraphs that open with a link of four words or more (a
  headline followed by a one-line teaser): a list of teasers, where a story's links sit inside its sentences.

Read-only over the tree (trafilatura works on its own copy); each measure costs a walk of part of the page and is
taken only when asked for.
"""

from __future__ import annotations

import re

from lxml.html import HtmlElement

LONG_PARAGRAPH = 80  #: characters of a paragraph that counts in a run
CARD_MAX_CHARS = 2000  #: a teaser card holds less text than this
MIN_CARDS = 3  #: siblings that make a row of teaser cards
_HEADLINE_LINKS = ".//h2[.//a[@href]] | .//h3[.//a[@href]] | .//h4[.//a[@href]] | .//h5[.//a[@href]]"
_ALL_HEADLINE_LINKS = "//h2[.//a[@href]] | //h3[.//a[@href]] | //h4[.//a[@href]] | //h5[.//a[@href]]"
_WORDS = re.compile(r"\w+")


def normal(text: str) -> str:
    """Lower-cased words joined by one space: the form texts are compared in."""
    return " ".join(_WORDS.findall(text.lower()))


def paragraph_run(tree: HtmlElement) -> int:
    runs: dict[HtmlElement, int] = {}
    for paragraph in tree.iter("p"):
        text = paragraph.text_content()
        length = len(text.strip())
        if length < LONG_PARAGRAPH:
            continue
        links = sum(len(link.text_content().strip()) for link in paragraph.iter("a"))
        if links * 2 > length:
            continue
        parent = paragraph.getparent()
        runs[parent] = runs.get(parent, 0) + 1
    return max(runs.values(), default=0)


def teaser_cards(tree: HtmlElement) -> list[str]:
    """The normalised text of each teaser card of the page (cards in rows of at least MIN_CARDS)."""
    rows: dict[HtmlElement, list[HtmlElement]] = {}
    for headline in tree.xpath(_ALL_HEADLINE_LINKS):
        card, node = headline, headline.getparent()
        while node is not None and len(node.text_content()) < CARD_MAX_CHARS:
            if len(node.xpath(_HEADLINE_LINKS)) > 1:
                break
            card, node = node, node.getparent()
        if card is not headline and card.getparent() is not None:
            rows.setdefault(card.getparent(), []).append(card)
    return [normal(card.text_content()) for cards in rows.values() if len(cards) >= MIN_CARDS for card in cards]


def teaser_share(paragraphs: list[str], cards: list[str]) -> float:
    """Share of the body's characters (``paragraphs``, normalised) found inside a teaser card."""
    total = sum(len(paragraph) for paragraph in paragraphs)
    if not total or not cards:
        return 0.0
    joined = "\n".join(cards)
    return sum(len(paragraph) for paragraph in paragraphs if paragraph in joined) / total


def anchor_texts(tree: HtmlElement) -> set[str]:
    """The normalised text of the page's links of two words or more."""
    texts = set()
    for link in tree.iter("a"):
        text = normal(link.text_content())
        if text.count(" ") >= 1:
            texts.add(text)
    return texts


def body_link_density(paragraphs: list[str], anchors: set[str]) -> float:
    """Share of the body's characters that are link text: whole paragraphs that are a link, and links inside the
    others (each link counted once per paragraph)."""
    total = sum(len(paragraph) for paragraph in paragraphs)
    if not total:
        return 0.0
    linked = 0
    for paragraph in paragraphs:
        if paragraph in anchors:
            linked += len(paragraph)
            continue
        inside = sum(len(anchor) for anchor in anchors if len(anchor) < len(paragraph) and anchor in paragraph)
        linked += min(inside, len(paragraph))
    return linked / total


def link_led_share(paragraphs: list[str], anchors: set[str]) -> float:
    """Share of the body's characters in paragraphs that are, or open with, a link of four words or more."""
    total = sum(len(paragraph) for paragraph in paragraphs)
    headlines = [anchor for anchor in anchors if anchor.count(" ") >= 3]
    if not total or not headlines:
        return 0.0
    led = sum(len(paragraph) for paragraph in paragraphs
              if any(paragraph.startswith(headline) for headline in headlines))
    return led / total
