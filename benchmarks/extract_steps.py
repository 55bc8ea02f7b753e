"""Where a page's CPU goes: each step of the archive's extraction, and ``trafilatura.extract`` alone, per page.

Generates the pages ``benchmarks/throughput.py`` serves (real corpus layouts, paragraphs replaced by sentences
drawn from the whole corpus) and times, in this one process, each step the archive runs on a page, in the order
it runs them, then the plain inline spider's ``trafilatura.extract(html)`` on the same pages. CPU time
(``time.process_time``), milliseconds per page, means over the pages; compare the steps with each other and with
the inline call of the same run (the machine is shared and noisy). Run:

    python benchmarks/extract_steps.py --pages 300
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from copy import copy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import trafilatura  # noqa: E402
from trafilatura.core import trafilatura_sequence  # noqa: E402
from trafilatura.metadata import extract_metadata  # noqa: E402
from trafilatura.utils import load_html  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402

from pipelines import extract, fingerprints  # noqa: E402
from pipelines.decode import page_text  # noqa: E402
from pipelines.pagemeta import read_page_meta  # noqa: E402
from pipelines.pagetype import classify_page  # noqa: E402
from pipelines.trafilatura_document import trafilatura_metadata  # noqa: E402
from pipelines.warc import LevelWARCWriter  # noqa: E402
from throughput import make_pages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    pages = make_pages(args.pages)
    options = extract.build_options()
    fast = copy(options)
    fast.fast = True  # trafilatura without its readability and jusText comparison
    now = datetime.now(timezone.utc)
    spent: dict[str, float] = defaultdict(float)

    def timed(name, function, *call_args, **call_kwargs):
        started = time.process_time()
        result = function(*call_args, **call_kwargs)
        spent[name] += time.process_time() - started
        return result

    for number, body in enumerate(pages):
        url = f"http://127.0.0.1/a/{number}/story-{number}-archive-benchmark/"
        html = timed("decode the body (pipelines.decode)", page_text, body, "text/html")
        timed("whole extract_page", extract.extract_page, html, url, options, min_chars=300, now=now)
        tree = timed("parse (load_html)", load_html, html)
        timed("nesting check", tree.xpath, f"boolean(//*[count(ancestor::*) >= {extract.PARSER_MAX_DEPTH}])")
        meta = timed("page metadata (read_page_meta)", read_page_meta, tree)
        document = timed("trafilatura metadata (trafilatura_document: no license, no htmldate if stated)",
                         trafilatura_metadata, tree, options, date_stated=meta.published_raw is not None)
        timed("  [trafilatura's own extract_metadata, for comparison]", extract_metadata, copy(tree), options.url,
              options.date_params, options.fast, options.author_blacklist)
        working = timed("copy of the tree (trafilatura works on a copy)", copy, tree)
        postbody, _, _, _ = timed("trafilatura main text (trafilatura_sequence)", trafilatura_sequence, working,
                                  options, options.url or document.url)
        timed("  [the same without the readability/jusText comparison (fast), for comparison]", trafilatura_sequence,
              copy(tree), fast, options.url or document.url)
        title = extract.article_title(meta.jsonld_headline or document.title, document.sitename, url)
        text = timed("body text (body_text)", extract.body_text, postbody, title)
        timed("page type (classify_page: signals and structure)", classify_page, url, meta, text, min_chars=300)
        timed("SHA-256 and SimHash of the normalised body (body_hashes)", fingerprints.body_hashes, text)
        timed("gzip of the WARC record (level 6)", _warc_record, body, url)
        timed("inline spider: trafilatura.extract", trafilatura.extract, html, url=url)

    per_page = {name: 1000 * seconds / len(pages) for name, seconds in spent.items()}
    print(f"{len(pages)} pages, mean {sum(map(len, pages)) / len(pages) / 1024:.0f} KiB; CPU ms per page")
    for name, ms in per_page.items():
        print(f"  {name:66s} {ms:6.2f}")
    inline = per_page["inline spider: trafilatura.extract"]
    print(f"extract_page / trafilatura.extract: {per_page['whole extract_page'] / inline:.2f}")
    # 1.8x the inline spider on 2 cores leaves the archive 2 / 1.8 = 1.11x its CPU per page (Scrapy's share left aside)
    budget = inline * (2 / 1.8 - 1)
    must = per_page["gzip of the WARC record (level 6)"] + per_page[
        "SHA-256 and SimHash of the normalised body (body_hashes)"]
    print(f"CPU a page may cost over trafilatura.extract for 1.8x on 2 cores: {budget:.2f} ms; raw capture's gzip and "
          f"the dedup hashes alone: {must:.2f} ms")


def _warc_record(body: bytes, url: str) -> int:
    out = io.BytesIO()
    writer = LevelWARCWriter(out, level=6)
    headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers))
    return out.tell()


if __name__ == "__main__":
    main()
