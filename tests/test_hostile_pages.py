"""Hostile pages: every bad page and every failed request ends as an article or a ``rejects`` row with its reason.

One local site serves all the bad inputs at once (bombs, huge pages, pages that make extraction run away,
binary data posing as HTML, lying charsets, odd dates, failing requests) beside a few good articles, and
one ``scrapy crawl news`` reads it; the tests below split the assertions. The crawl runs with small limits
(``EXTRACT_TIMEOUT=5``, ``DOWNLOAD_TIMEOUT=8``, no retries) so that it stays quick; ``DOWNLOAD_MAXSIZE`` and
``EXTRACT_MAX_HTML_BYTES`` keep their defaults (10 MiB, 5 MiB). The runaway extractions (the 30,000-row
table, the 50,000 links) are runaway by construction: ``faults.HeldExtraction`` holds their extraction in
the worker until the time limit kills it, so the outcome does not depend on how fast the machine extracts
them (about 10 s each here; a machine twice as fast would have finished them within the limit).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import brotli
import psutil
import pytest
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.http import HtmlResponse, Request
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils._compression import _DecompressionMaxSizeExceeded

from conftest import run_crawl
from crawler.failures import classify_failure
from crawler.localsite import LocalSite, Page

MiB = 2**20
BOMB_BYTES = 1024 * MiB  #: what each bomb inflates to
TESTS = Path(__file__).resolve().parent
CRAWL_SETTINGS = {
    "EXTRACT_TIMEOUT": "5",  # an ordinary page takes a tenth of a second; the held ones never end
    "DOWNLOAD_TIMEOUT": "8",  # the slow page never answers; 10 MiB of the streamed page comes well before
    "RETRY_TIMES": "0",
    "ALLOW_PRIVATE_NETWORKS": "True",  # the site is on loopback
}

# --- why a request failed (no network) --------------------------------------------------------------------------


def _ignored_by_decompression() -> IgnoreRequest:
    try:
        raise _DecompressionMaxSizeExceeded(11 * MiB, 10 * MiB)
    except ValueError as exc:
        try:
            raise IgnoreRequest("exceeded DOWNLOAD_MAXSIZE during decompression") from exc
        except IgnoreRequest as ignored:
            return ignored


class RefusedByGuard(IgnoreRequest):
    reject_reason = "private_network"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (DownloadCancelledError(), "too_large"),
        (_ignored_by_decompression(), "too_large"),
        (HttpError(HtmlResponse("http://h/x", status=404)), "http_error"),
        (DownloadTimeoutError("took longer than 3 seconds"), "download_timeout"),
        (CannotResolveHostError("no such host"), "dns_error"),
        (DownloadConnectionRefusedError("refused"), "connection_error"),
        (IgnoreRequest("Forbidden by robots.txt"), "ignored"),
        (RefusedByGuard("127.0.0.1 is a private address"), "private_network"),
        (RuntimeError("anything else"), "download_error"),
    ],
)
def test_every_failure_has_a_reason(exc, reason):
    outcome = classify_failure(exc)
    assert outcome.reason == reason
    assert outcome.detail
    assert outcome.http_status == (404 if reason == "http_error" else None)


# --- the hostile site ---------------------------------------------------------------------------------------------

WORDS = (
    "harbour council budget river bridge school teacher winter storm election minister village museum railway "
    "station farmer market festival library hospital nurse doctor police court judge mayor street tram bicycle "
    "factory worker union strike harvest vineyard forest mountain glacier lake ferry island fisherman lighthouse "
    "ambassador treaty border customs airport runway pilot engineer tunnel canal lock barge orchestra theatre "
    "painter sculptor novelist poet archive census survey inflation pension tax grant subsidy reform protest"
).split()


def paragraphs(seed: int, count: int = 5) -> list[str]:
    """Distinct readable-enough text per page, so no two good pages are near-duplicates of each other."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(40)).capitalize() + "." for _ in range(count)]


def article(title: str, body: list[str], *, head: str = '<meta charset="utf-8">', footer: str = "") -> str:
    text = "".join(f"<p>{p}</p>" for p in body)
    return (f'<!DOCTYPE html><html lang="en"><head>{head}<title>{title}</title>'
            f'<meta property="og:type" content="article"></head><body><nav><a href="/">Home</a></nav>'
            f"<article><h1>{title}</h1>{text}</article><footer>{footer}</footer></body></html>")


def html_page(html: str, **kwargs) -> Page:
    return Page(body=html.encode("utf-8"), **kwargs)


def filler_html(size: int) -> bytes:
    chunk = b"<p>" + b"filler text of a page far too large to be an article " * 20 + b"</p>\n"
    return b"<html><body>" + chunk * (size // len(chunk)) + b"</body></html>"


def gzip_bomb() -> bytes:
    """``BOMB_BYTES`` of HTML-looking whitespace in 16 gzip members (one valid gzip stream), about 1 MB."""
    member = gzip.compress(b" " * (BOMB_BYTES // 16), compresslevel=9)
    return gzip.compress(b"<html><body>") + member * 16


def brotli_bomb() -> bytes:
    compressor = brotli.Compressor(quality=5)
    parts = [compressor.process(b"<html><body>")]
    parts += [compressor.process(b" " * MiB) for _ in range(BOMB_BYTES // MiB)]
    return b"".join(parts) + compressor.finish()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CURLY = "“Le café coûte 3 €,” she said — it’s the price of the harbour’s pride."
GOOD = [f"/2024/05/0{i}/good-story-number-{i}-about-the-harbour/" for i in (1, 2, 3)]
SIZE_LIMITED = {
    "/bomb/gzip-page": "gzip bomb",
    "/bomb/brotli-page": "brotli bomb",
    "/huge/fifty-megabytes-with-length": "50 MB page with Content-Length",
    "/huge/fifty-megabytes-streamed": "50 MB page without Content-Length",
    "/huge/twenty-megabytes-of-html": "20 MB of HTML",
}
OVER_EXTRACT_LIMIT = "/huge/eight-megabytes-of-html"
TABLE = "/2024/05/10/thirty-thousand-row-table-of-results/"
LINKS = "/2024/05/11/fifty-thousand-links-on-one-page/"
NESTED = "/2024/05/12/three-hundred-levels-of-nested-divs/"
RUNAWAY = (TABLE, LINKS)  #: extraction held until the time limit (faults.HeldExtraction)
NOT_ARTICLES = {
    "/empty-body": "empty",
    "/files/annual-report": "not_html",  # a PDF (a .pdf link is not followed at all)
    "/files/report-sent-as-html": "not_html",
    "/api/data.json": "not_html",
    "/api/data-sent-as-html": "not_html",
    "/blob/binary-sent-as-html": "not_html",
    "/latest-stories-from-the-newsroom-today": "not_article",
}
CP1252 = "/2024/05/20/cp1252-page-without-a-declared-charset/"
BOM = "/2024/05/21/utf8-page-with-a-byte-order-mark/"
HEADER_VS_META = "/2024/05/22/header-charset-contradicts-meta-tag/"
DATED = "/2024/05/30/published-and-modified-dates/"
COPYRIGHT_ONLY = "/news/page-whose-only-date-is-a-copyright-footer"
FUTURE = "/news/page-with-a-publication-date-in-the-future"
AMBIGUOUS = "/news/page-with-an-ambiguous-day-and-month"


def hostile_site_pages(refused_url: str, offsite_url: str, never: threading.Event) -> dict[str, Page]:
    pages: dict[str, Page] = {
        "/robots.txt": Page(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
        "/private/members-only-story": html_page(article("Private", paragraphs(99))),
    }
    for n, path in enumerate(GOOD):
        pages[path] = html_page(article(f"Good story {n}", paragraphs(n)))
    # size limits: DOWNLOAD_MAXSIZE (10 MiB), then EXTRACT_MAX_HTML_BYTES (5 MiB)
    pages["/bomb/gzip-page"] = Page(body=gzip_bomb(), headers={"Content-Encoding": "gzip"})
    pages["/bomb/brotli-page"] = Page(body=brotli_bomb(), headers={"Content-Encoding": "br"})
    fifty = filler_html(50 * MiB)
    pages["/huge/fifty-megabytes-with-length"] = Page(body=fifty)
    pages["/huge/fifty-megabytes-streamed"] = Page(body=fifty, sized=False)
    pages["/huge/twenty-megabytes-of-html"] = Page(body=filler_html(20 * MiB))
    pages[OVER_EXTRACT_LIMIT] = Page(body=filler_html(8 * MiB))
    # runaway extraction
    rows = "".join(f"<tr><td>Ward {i}</td><td>{i * 7}</td><td>ballots counted in district {i}</td></tr>"
                   for i in range(30_000))
    table = article("Results", paragraphs(10)).replace("</article>", f"<table>{rows}</table></article>")
    pages[TABLE] = html_page(table)
    links = "".join(f'<a href="https://elsewhere.invalid/story/{i}">Story {i}</a> ' for i in range(50_000))
    pages[LINKS] = html_page(f"<html><body><div>{links}</div></body></html>")
    nest = 300
    pages[NESTED] = html_page(article("Deep", paragraphs(12)).replace("<article>", "<article>" + "<div>" * nest)
                              .replace("</article>", "</div>" * nest + "</article>"))
    # not articles
    pages["/empty-body"] = Page(body=b"")
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    pages["/files/annual-report"] = Page(body=pdf, content_type="application/pdf")
    pages["/files/report-sent-as-html"] = Page(body=pdf)
    data = b'{"stories": [' + b",".join(b'{"title": "<b>Story %d</b>", "id": %d}' % (i, i) for i in range(200)) + b"]}"
    pages["/api/data.json"] = Page(body=data, content_type="application/json")
    pages["/api/data-sent-as-html"] = Page(body=data)
    pages["/blob/binary-sent-as-html"] = Page(body=random.Random(7).randbytes(20_000))
    teasers = "".join(f'<li><a href="https://elsewhere.invalid/2024/04/{i % 28 + 1:02d}/story-{i}/">Story {i}: the '
                      f"council meets again over the harbour plan</a></li>" for i in range(60))
    pages["/latest-stories-from-the-newsroom-today"] = html_page(
        f"<html><head><title>Latest</title></head><body><h1>Latest</h1><ul>{teasers}</ul></body></html>")
    # encodings
    pages[CP1252] = Page(body=article("Café prices", [CURLY, *paragraphs(20)], head="").encode("cp1252"),
                         content_type="text/html")
    pages[BOM] = Page(body=b"\xef\xbb\xbf" + article("Café prices", [CURLY, *paragraphs(21)], head="").encode(),
                      content_type="text/html")
    pages[HEADER_VS_META] = Page(
        body=article("Café prices", [CURLY, *paragraphs(22)], head='<meta charset="windows-1252">').encode(),
        content_type="text/html; charset=utf-8")
    # dates
    dated = ('<meta property="article:published_time" content="2021-03-04T23:30-08:00">'
             '<meta property="article:modified_time" content="2021-03-06T10:00:00+01:00">')
    pages[DATED] = html_page(article("Dated", paragraphs(30), head=dated))
    pages[COPYRIGHT_ONLY] = html_page(article("Undated", paragraphs(31), footer="© 2019 Harbour Herald"))
    future = '<meta property="article:published_time" content="2099-01-01T08:00:00Z">'
    pages[FUTURE] = html_page(article("Future", paragraphs(32), head=future))
    ambiguous = '<meta property="article:published_time" content="03/04/2021">'
    pages[AMBIGUOUS] = html_page(article("Ambiguous", paragraphs(33), head=ambiguous))
    # failing requests
    pages["/server-error"] = html_page("<html><body>Internal error</body></html>", status=500)
    pages["/slow-page"] = html_page(article("Slow", paragraphs(40)), hold=never)  # answered only after the crawl
    pages["/redirect-to-another-host"] = Page(body=b"", status=302, headers={"Location": offsite_url})
    links = [*pages, "/missing-page", refused_url]
    home = "".join(f'<a href="{path}">{path}</a> ' for path in links if path != "/robots.txt")
    pages["/"] = html_page(f'<html><head><meta property="og:type" content="website"></head><body>{home}</body></html>')
    return pages


class PeakMemory:
    """Polls the resident memory of the crawler process (the direct ``scrapy`` child of this process)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children():
                try:
                    if "scrapy" in " ".join(child.cmdline()):
                        self.peak = max(self.peak, child.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.02)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def hostile_crawl(tmp_path_factory):
    with LocalSite() as site:
        port = int(site.base_url.rsplit(":", 1)[1])
        refused = f"http://127.0.0.1:{closed_port()}/refused-connection"  # same host, so on the site
        offsite = f"http://localhost:{port}/somewhere-else"  # another host: filtered before any connection
        never = threading.Event()  # set once the crawl is over, to let the held server threads go
        site.pages.update(hostile_site_pages(refused, offsite, never))
        archive = tmp_path_factory.mktemp("hostile") / "archive"
        held = tmp_path_factory.mktemp("held")
        hold = {"EXTENSIONS": json.dumps({"faults.HeldExtraction": 0}), "FAULT_HOLD_EXTRACT_ANNOUNCE": str(held),
                "FAULT_HOLD_EXTRACT_URL": "|".join(re.escape(path) + "$" for path in RUNAWAY)}  # never released
        try:
            with PeakMemory() as memory:
                result = run_crawl(archive, [site.base_url + "/"], settings={**CRAWL_SETTINGS, **hold}, timeout=300,
                                   env={"PYTHONPATH": str(TESTS)})
        finally:
            never.set()
        result.base_url = site.base_url
        result.held = sorted(path.read_text().removeprefix(site.base_url) for path in held.iterdir())
        yield site, result, memory.peak


def outcomes(result) -> dict[str, tuple[str, dict]]:
    """URL (path alone on the site itself) -> ("article" | "reject" | "duplicate", its row)."""
    found = {}
    for dataset, kind in (("articles", "article"), ("rejects", "reject"), ("duplicates", "duplicate")):
        for row in result.rows(dataset):
            found[row["url"].removeprefix(result.base_url)] = (kind, row)
    return found


def rejected(result, url: str) -> dict:
    kind, row = outcomes(result).get(url, ("missing", None))
    assert kind == "reject", (url, kind, row)
    return row


def articles(result) -> dict[str, dict]:
    return {url: row for url, (kind, row) in outcomes(result).items() if kind == "article"}


# --- the crawl ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_crawl_finishes_cleanly(hostile_crawl):
    # every wait has its limit (the slow page, the held extractions, the bombs): each is asserted where its
    # outcome is; the crawl's own duration would only measure the machine
    _, result, _ = hostile_crawl
    assert result.returncode == 0, result.stderr[-3000:]
    [manifest] = result.manifests()
    assert manifest["status"] == "complete" and manifest["counts"]["spider_exceptions"] == 0
    for crash in ("Spider error processing", "Error processing", "Error caught on signal handler"):
        assert crash not in result.stderr


@pytest.mark.slow
def test_good_articles_archived_despite_the_bad_pages(hostile_crawl):
    _, result, _ = hostile_crawl
    assert set(GOOD) <= set(articles(result))


@pytest.mark.slow
def test_nothing_linked_is_lost_silently(hostile_crawl):
    site, result, _ = hostile_crawl
    found = outcomes(result)
    redirect = "/redirect-to-another-host"
    linked = [path for path in site.pages if path not in ("/robots.txt", "/", redirect)] + ["/missing-page"]
    missing = [path for path in linked if path not in found]
    assert not missing
    assert any(url.endswith("/refused-connection") for url in found)
    [offsite] = [row for url, (_, row) in found.items() if url.endswith("/somewhere-else")]
    assert offsite["detail"].endswith(f"(redirected from {result.base_url}{redirect})")


@pytest.mark.slow
def test_every_drop_is_counted_by_reason_in_stats_and_manifest(hostile_crawl):
    _, result, _ = hostile_crawl
    [manifest] = result.manifests()
    rejects = result.rows("rejects")
    by_reason = Counter(row["reason"] for row in rejects)
    assert manifest["counts"]["dropped"] == dict(by_reason)
    assert manifest["counts"]["rejects_written"] == len(rejects)
    expected = Counter(NOT_ARTICLES.values()) + Counter({
        "too_large": len(SIZE_LIMITED) + 1,  # and the page over EXTRACT_MAX_HTML_BYTES
        "extract_timeout": 2, "too_deep": 1,  # the table and the links; the nested divs
        "http_error": 2, "download_timeout": 1, "offsite": 1,  # 404 and 500; the slow page; the redirect
        "robots_unavailable": 1, "robots_disallowed": 1,  # the refused connection; /private/
        "empty": 1,  # the home page: links only, trafilatura finds no main text
    })
    assert by_reason == expected


@pytest.mark.slow
def test_bombs_and_huge_pages_stop_at_the_size_limit(hostile_crawl):
    _, result, _ = hostile_crawl
    for path in SIZE_LIMITED:
        assert rejected(result, path)["reason"] == "too_large", SIZE_LIMITED[path]
    row = rejected(result, OVER_EXTRACT_LIMIT)  # under DOWNLOAD_MAXSIZE, over EXTRACT_MAX_HTML_BYTES
    assert row["reason"] == "too_large" and "EXTRACT_MAX_HTML_BYTES" in row["detail"]


@pytest.mark.slow
def test_memory_stays_bounded(hostile_crawl):
    _, _, peak = hostile_crawl
    assert 0 < peak < 512 * MiB, f"crawler peak RSS {peak / MiB:.0f} MiB against bombs of {BOMB_BYTES // MiB} MiB"


@pytest.mark.slow
def test_runaway_extraction_is_bounded(hostile_crawl):
    _, result, _ = hostile_crawl
    assert result.held == sorted(RUNAWAY), "both extractions were running (held) when the limit came"
    for path in RUNAWAY:
        row = rejected(result, path)
        assert (row["reason"], row["detail"]) == ("extract_timeout", "extraction took over 5 s; its worker was replaced")
    [manifest] = result.manifests()
    assert manifest["counts"]["discovery"]["links_capped"] == 1  # only the first 1,000 links were looked at
    assert rejected(result, NESTED)["reason"] == "too_deep"  # the parser drops everything below 255 levels


@pytest.mark.slow
def test_not_articles_recorded_with_their_reason(hostile_crawl):
    _, result, _ = hostile_crawl
    for path, reason in NOT_ARTICLES.items():
        assert rejected(result, path)["reason"] == reason, path


@pytest.mark.slow
def test_failed_requests_recorded_with_their_reason(hostile_crawl):
    _, result, _ = hostile_crawl
    found = outcomes(result)
    missing = rejected(result, "/missing-page")
    assert (missing["reason"], missing["detail"], missing["http_status"]) == ("http_error", "404", 404)
    assert rejected(result, "/server-error")["http_status"] == 500
    assert rejected(result, "/slow-page")["reason"] == "download_timeout"
    [refused] = [row for url, (kind, row) in found.items() if url.endswith("/refused-connection")]
    # another port is another site: its robots.txt is asked for first, and a refused connection there keeps the
    # whole site out of the run (RFC 9309), so the page itself is never requested
    assert (refused["reason"], refused["detail"]) == ("robots_unavailable", "RobotsUnavailable: robots.txt of "
                                                      f"{refused['url'].split('/')[2]} is unavailable "
                                                      "(DownloadConnectionRefusedError)")
    private = rejected(result, "/private/members-only-story")
    assert (private["reason"], private["detail"]) == ("robots_disallowed", "RobotsDisallowed: Forbidden by robots.txt")
    [offsite] = [row for url, (kind, row) in found.items() if url.endswith("/somewhere-else")]
    assert offsite["reason"] == "offsite"


@pytest.mark.slow
@pytest.mark.parametrize("path", [CP1252, BOM, HEADER_VS_META])
def test_encodings_leave_no_mojibake(hostile_crawl, path):
    _, result, _ = hostile_crawl
    row = articles(result)[path]
    text = row["title"] + "\n" + row["body"]
    assert CURLY in row["body"]
    assert row["title"] == "Café prices"
    for broken in ("â€", "Ã©", "Ã", "\ufffd", "\ufeff"):
        assert broken not in text


@pytest.mark.slow
def test_dates_through_a_crawl(hostile_crawl):
    _, result, _ = hostile_crawl
    found = articles(result)
    dated = found[DATED]
    assert dated["published_at"] == datetime(2021, 3, 5, 7, 30, tzinfo=timezone.utc)
    assert dated["published_at_raw"] == "2021-03-04T23:30-08:00" and dated["published_at_source"] == "meta"
    assert dated["modified_at"] == datetime(2021, 3, 6, 9, 0, tzinfo=timezone.utc)
    undated = found[COPYRIGHT_ONLY]
    assert (undated["published_at"], undated["published_date"], undated["published_at_raw"]) == (None, None, None)
    for path, raw in ((FUTURE, "2099-01-01T08:00:00Z"), (AMBIGUOUS, "03/04/2021")):
        row = found[path]
        assert (row["published_at"], row["published_date"]) == (None, None), path
        assert (row["published_at_raw"], row["published_at_source"]) == (raw, "meta"), path
