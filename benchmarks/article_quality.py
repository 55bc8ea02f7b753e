"""Article detection and body quality on ../shared/corpus: the archive's extraction against trafilatura alone.

Every news and magazine page of the corpus is extracted twice by the archive's own extraction
(``pipelines.extract.extract_page``, as a crawl runs it): once under a URL like the one it was published at (a
dated or slug path) and once under a neutral URL (``/p/<n>.html``, ``/?p=<n>``, a UUID path, in turn); and once by
``trafilatura.extract`` with its defaults. It prints:

- article recall: how many pages become articles under each kind of URL (and why the others did not), and the
  verdict on the corpus' two news index pages (listings: neither may be an article);
- body F1 (token level, tests/quality.py; a page that is not an article scores 0), archive and trafilatura;
- where bodies lose against the ground truth, by failure class: ground-truth paragraphs missing (the lead, the
  last, one in a table, list, quote or caption, another) and extracted paragraphs that are not in the ground
  truth, by the HTML element they come from (captions and credits, related links, newsletter and promo boxes,
  tables, lists, quotes, headings, other): pages affected and tokens, for trafilatura and for the archive.

Run: ``python benchmarks/article_quality.py`` (about a minute); ``--show CLASS`` prints the paragraphs of a class;
``--variants`` prints the body F1 of trafilatura's body under the options the archive weighed (its own, without
pruning ``<figcaption>``, pruning every caption or credit class, ``favor_recall``, ``favor_precision``, trafilatura's
``fast`` mode without its readability and jusText comparison), page detection left aside.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import lxml.html  # noqa: E402
import trafilatura  # noqa: E402
from trafilatura import bare_extraction  # noqa: E402
from trafilatura.utils import load_html  # noqa: E402

from newssite import CORPUS_DIR, _corpus_path, corpus_content_type  # noqa: E402
from pipelines.decode import page_text  # noqa: E402
from pipelines.extract import body_text, build_options, extract_page  # noqa: E402
from quality import token_f1, tokens  # noqa: E402

BASE = "http://127.0.0.1:8080"
PAGE_TYPES = ("news", "magazine_or_blog_article")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
MISSING = ("missed lead", "missed last", "missed table", "missed list", "missed quote", "missed caption",
           "missed other", "page not an article")
EXTRA = ("captions and credits", "related links", "newsletter and promo boxes", "tables", "lists", "quotes",
         "headings", "other extra")
_WORDS = re.compile(r"\w+")
_CAPTION = re.compile(r"caption|credit|copyright|photo|image|media|gallery|figure", re.I)
_PROMO = re.compile(r"newsletter|subscri|signup|sign-up|promo|paywall|regist|abo-|donat|membership", re.I)
_RELATED = re.compile(r"related|recommend|more-|read-?also|most-|popular|teaser|trending|next|prev|tags?\b", re.I)
_BLOCKS = ("p", "li", "td", "th", "figcaption", "blockquote", "div", "span", "h1", "h2", "h3", "h4", "h5", "h6",
           "a", "dd", "dt", "aside", "section", "figure", "pre", "em", "strong", "b", "i", "small", "article", "q")


def normal(text: str) -> str:
    return " ".join(_WORDS.findall(text.lower()))


def corpus_pages(page_types=PAGE_TYPES) -> list[dict]:
    pages = []
    for dataset in ("fundus", "mozilla-readability"):
        truth = json.loads((CORPUS_DIR / dataset / "ground_truth.json").read_text(encoding="utf-8"))
        for page_id, record in sorted(truth.items()):
            if record.get("page_type") not in page_types:
                continue
            raw = gzip.decompress((CORPUS_DIR / dataset / record["file"]).read_bytes())
            pages.append({"id": page_id, "record": record, "raw": raw})
    return pages


def neutral_path(n: int) -> str:
    return (f"/p/{n}.html", f"/?p={n}", f"/a/{uuid.UUID(int=n + 1)}")[n % 3]


def dated_path(page: dict) -> str:
    return _corpus_path(page["record"].get("url")) or f"/corpus/{page['id']}/"


def split_paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in re.split(r"\n+", text or "") if normal(p)]


def covered(paragraph: str, haystack: str, haystack_tokens: Counter) -> bool:
    """Whether ``paragraph`` is in the other text: verbatim (after normalising), or 70 % of its tokens."""
    text = normal(paragraph)
    if text and text in haystack:
        return True
    own = tokens(paragraph)
    return sum((own & haystack_tokens).values()) >= 0.7 * sum(own.values())


class SourceIndex:
    """The page's block elements with their normalised text, to find where a paragraph comes from."""

    def __init__(self, html: str) -> None:
        try:
            tree = lxml.html.fromstring(html)
        except (ValueError, lxml.etree.ParserError):
            tree = None
        self.elements = []
        if tree is not None:
            for element in tree.iter(*_BLOCKS):
                text = normal(element.text_content())
                if text:
                    self.elements.append((len(text), text, element))
        self.elements.sort(key=lambda item: item[0])

    def find(self, paragraph: str):
        needle = normal(paragraph)[:200]
        for _, text, element in self.elements:
            if needle in text:
                return element
        return None


def _trail(element) -> list:
    trail = []
    while element is not None and isinstance(element.tag, str):
        trail.append(element)
        element = element.getparent()
    return trail


def _marks(element) -> str:
    return " ".join((e.get("class") or "") + " " + (e.get("id") or "") for e in _trail(element))


def element_class(element) -> str | None:
    """tables, lists, quotes, captions, promo, related or headings, from the element and its ancestors."""
    if element is None:
        return None
    tags = [e.tag for e in _trail(element)]
    marks = _marks(element)
    if "figcaption" in tags or "figure" in tags or _CAPTION.search(marks):
        return "captions"
    if _PROMO.search(marks):
        return "promo"
    if any(tag in ("aside", "nav", "footer") for tag in tags) or _RELATED.search(marks):
        return "related"
    if any(tag in ("table", "td", "th") for tag in tags):
        return "tables"
    if any(tag in ("ul", "ol", "li", "dl") for tag in tags):
        return "lists"
    if any(tag in ("blockquote", "q") for tag in tags):
        return "quotes"
    if element.tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
        return "headings"
    links = sum(len(normal(a.text_content())) for a in element.iter("a"))
    if links > 0.6 * max(len(normal(element.text_content())), 1):
        return "related"
    return None


_MISSED_BY_SOURCE = {"tables": "missed table", "lists": "missed list", "quotes": "missed quote",
                     "captions": "missed caption"}
_EXTRA_BY_SOURCE = {"captions": "captions and credits", "related": "related links",
                    "promo": "newsletter and promo boxes", "tables": "tables", "lists": "lists", "quotes": "quotes",
                    "headings": "headings"}


def failure_classes(extracted: str | None, truth: str, index: SourceIndex) -> dict[str, list[tuple[int, str]]]:
    """Class -> [(tokens, paragraph)] of what the extracted body misses or adds."""
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    truth_paragraphs = split_paragraphs(truth)
    got = split_paragraphs(extracted)
    if extracted is None:
        for paragraph in truth_paragraphs:
            found["page not an article"].append((sum(tokens(paragraph).values()), paragraph))
        return found
    got_text, got_tokens = normal(extracted), tokens(extracted)
    truth_text, truth_tokens = normal(truth), tokens(truth)
    for position, paragraph in enumerate(truth_paragraphs):
        if covered(paragraph, got_text, got_tokens):
            continue
        if position == 0:
            name = "missed lead"
        elif position == len(truth_paragraphs) - 1:
            name = "missed last"
        else:
            name = _MISSED_BY_SOURCE.get(element_class(index.find(paragraph)), "missed other")
        found[name].append((sum(tokens(paragraph).values()), paragraph))
    for paragraph in got:
        if covered(paragraph, truth_text, truth_tokens):
            continue
        name = _EXTRA_BY_SOURCE.get(element_class(index.find(paragraph)), "other extra")
        found[name].append((sum(tokens(paragraph).values()), paragraph))
    return found


FIGCAPTION = ["//figcaption"]
VARIANTS = {  # name -> (build_options arguments, prune_xpath, Extractor attributes set afterwards)
    "archive (figcaption pruned)": ({}, FIGCAPTION, {}),
    "nothing pruned": ({}, None, {}),
    "caption and credit classes pruned": ({}, ["//figcaption", "//*[contains(@class, 'caption') or "
                                               "contains(@class, 'credit')]"], {}),
    "favor_recall": ({"favor_recall": True}, FIGCAPTION, {}),
    "favor_precision": ({"favor_precision": True}, FIGCAPTION, {}),
    "fast (no readability/jusText comparison)": ({}, FIGCAPTION, {"fast": True}),
}


def variants(pages: list[dict]) -> None:
    from pipelines.extract import PRUNE_XPATH  # (imported here: the rest runs on older releases' pipelines/ too)

    assert PRUNE_XPATH == FIGCAPTION, "the archive's pruning changed: update VARIANTS"
    scores = {name: [] for name in VARIANTS}
    built = {name: build_options(**arguments) for name, (arguments, _, _) in VARIANTS.items()}
    for name, (_, _, attributes) in VARIANTS.items():
        for attribute, value in attributes.items():
            setattr(built[name], attribute, value)
    for page in pages:
        html = page_text(page["raw"], corpus_content_type(page["raw"]))
        for name, (_, prune, _) in VARIANTS.items():
            document = bare_extraction(load_html(html), url=BASE + dated_path(page), options=built[name],
                                       prune_xpath=prune)
            body = body_text(document.body) if document is not None and document.body is not None else ""
            scores[name].append(token_f1(body, page["record"]["body"]))
    for name, values in scores.items():
        print(f"{name:40} body F1 {statistics.mean(values):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", help="print the paragraphs of this failure class (archive)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages")
    parser.add_argument("--variants", action="store_true", help="trafilatura's body under other options")
    args = parser.parse_args()
    options = build_options()
    pages = corpus_pages()[: args.limit or None]
    if args.variants:
        variants(pages)
        return
    recognised = {"dated": 0, "neutral": 0}
    refused: dict[str, list[str]] = {"dated": [], "neutral": []}
    f1 = {"archive": [], "archive_neutral": [], "trafilatura": []}
    classes = {"trafilatura": defaultdict(lambda: [0, 0]), "archive": defaultdict(lambda: [0, 0])}
    shown = []
    for n, page in enumerate(pages):
        truth = page["record"]["body"]
        html = page_text(page["raw"], corpus_content_type(page["raw"]))
        index = SourceIndex(html)
        bodies = {}
        for kind, path in (("dated", dated_path(page)), ("neutral", neutral_path(n))):
            outcome = extract_page(html, BASE + path, options, min_chars=300, now=NOW)
            body = outcome.article.body if outcome.article is not None else None
            if body is None:
                refused[kind].append(f"{page['id']} {path}: {outcome.reason} {outcome.detail}")
            else:
                recognised[kind] += 1
            bodies[kind] = body
        direct = trafilatura.extract(page["raw"])
        f1["archive"].append(token_f1(bodies["dated"], truth) if bodies["dated"] else 0.0)
        f1["archive_neutral"].append(token_f1(bodies["neutral"], truth) if bodies["neutral"] else 0.0)
        f1["trafilatura"].append(token_f1(direct, truth))
        for name, text in (("trafilatura", direct or ""), ("archive", bodies["dated"])):
            for cls, items in failure_classes(text, truth, index).items():
                classes[name][cls][0] += 1
                classes[name][cls][1] += sum(count for count, _ in items)
                if name == "archive" and cls == args.show:
                    shown.extend(f"{page['id']}: {paragraph[:160]!r}" for _, paragraph in items)
    total = len(pages)
    print(f"corpus pages (news and magazine): {total}")
    for kind in ("dated", "neutral"):
        print(f"articles under {kind} URLs: {recognised[kind]}/{total} ({100 * recognised[kind] / total:.1f} %)")
        for line in refused[kind]:
            print(f"  not an article: {line[:220]}")
    for page in corpus_pages(("news_index_page",)):  # the corpus' own listings: none may be an article
        html = page_text(page["raw"], corpus_content_type(page["raw"]))
        outcome = extract_page(html, BASE + f"/p/{page['id']}.html", options, min_chars=300, now=NOW)
        print(f"listing page {page['id']} (news_index_page): {outcome.reason} {outcome.detail[:200]}")
    archive, neutral, direct = (statistics.mean(f1[k]) for k in ("archive", "archive_neutral", "trafilatura"))
    print(f"body F1: archive {archive:.4f} (neutral URLs {neutral:.4f}), trafilatura.extract {direct:.4f}, "
          f"difference {100 * (archive - direct):+.2f} points")
    print(f"\n{'failure class':30} {'trafilatura pages':>18} {'tokens':>8} {'archive pages':>14} {'tokens':>8}")
    for cls in MISSING + EXTRA:
        t_pages, t_tokens = classes["trafilatura"].get(cls, (0, 0))
        a_pages, a_tokens = classes["archive"].get(cls, (0, 0))
        print(f"{cls:30} {t_pages:>18} {t_tokens:>8} {a_pages:>14} {a_tokens:>8}")
    for line in shown:
        print(line)


if __name__ == "__main__":
    main()
