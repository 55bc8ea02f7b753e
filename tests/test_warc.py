"""Raw capture: every page handed to extraction kept as WARC, valid, indexed, and each row's page one ranged read away."""

from __future__ import annotations

import gzip
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from warcio.archiveiterator import ArchiveIterator

from conftest import crawl_news_site_into, run_crawl
from pipelines.warc import read_record

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]


@pytest.fixture(scope="module", params=["folder", "s3"])
def captured(request, news_site, tmp_path_factory):
    """One crawl of the news site with raw capture on (the default), into a folder or a moto bucket: (site,
    store, rows per dataset, local copies of the WARC files)."""
    site, spec = news_site
    tmp = tmp_path_factory.mktemp(f"warc-{request.param}")
    target = crawl_news_site_into(request.param, news_site, tmp,
                                  request.getfixturevalue("moto_server") if request.param == "s3" else None)
    rows = {d: target.rows(d) for d in ("articles", "duplicates", "rejects", "warc_files")}
    copies = {}
    for entry in rows["warc_files"]:
        local = tmp / entry["warc_filename"].replace("/", "_")
        with target.store.open_input(entry["warc_filename"]) as source:
            local.write_bytes(source.read())
        copies[entry["warc_filename"]] = local
    return site, spec, target.store, rows, copies


def test_every_warc_file_is_valid_warc_with_linked_request_and_response_records(captured):
    _, _, _, rows, copies = captured
    assert copies, "the run wrote WARC files"
    for key, path in copies.items():
        check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", str(path)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        with open(path, "rb") as source:
            records = [(r.rec_type, r.rec_headers, r.content_stream().read())
                       for r in ArchiveIterator(source, check_digests="raise")]
        assert records[0][0] == "warcinfo" and b"news-archive" in records[0][2]
        responses = {h.get_header("WARC-Record-ID"): h for kind, h, _ in records if kind == "response"}
        requests = [h for kind, h, _ in records if kind == "request"]
        assert len(responses) == len(requests) == next(e["records"] for e in rows["warc_files"] if e["warc_filename"] == key)
        for request in requests:
            response = responses[request.get_header("WARC-Concurrent-To")]
            assert response.get_header("WARC-Target-URI") == request.get_header("WARC-Target-URI")
        for _, headers, _ in records[1:]:
            assert headers.get_header("WARC-Block-Digest", "").startswith("sha1:")
        assert all(h.get_header("WARC-Payload-Digest") for h in responses.values())


def test_each_record_is_its_own_gzip_member_and_the_cdxj_index_points_at_them(captured):
    _, _, store, rows, copies = captured
    for key, path in copies.items():
        data = path.read_bytes()
        with open(path, "rb") as source:
            iterator = ArchiveIterator(source)
            spans = [(iterator.get_record_offset(), iterator.get_record_length()) for _ in iterator]
        assert spans[0][0] == 0 and sum(length for _, length in spans) == len(data), "members end to end"
        for offset, length in spans:
            assert gzip.decompress(data[offset:offset + length]).startswith(b"WARC/1.1\r\n")
        with store.open_input(key.removesuffix(".warc.gz") + ".cdxj") as source:
            index = [line.split(b" ", 2) for line in source.read().splitlines()]
        import json

        entries = {int(json.loads(fields[2])["offset"]): json.loads(fields[2]) for fields in index}
        responses = [(o, n) for o, n in spans[1::2]]  # a response record, then its request record
        assert sorted(entries) == sorted(o for o, _ in responses)
        assert all(entry["filename"] == key and int(entry["length"]) == dict(responses)[int(entry["offset"])]
                   for entry in entries.values())


_CDXJ_AS_ARCHIVED = """
import sys
from pipelines.warc import write_cdxj
write_cdxj(*map(__import__("pathlib").Path, sys.argv[1:3]), sys.argv[3])
loaded = sorted(name for name in ("pyamf", "pkg_resources") if name in sys.modules)
amf = sys.modules["cdxj_indexer.postquery"].amf_parse(bytes.fromhex(sys.argv[4]))  # as cdxj-indexer calls it
print(loaded, "pyamf" in sys.modules, amf)
"""
_CDXJ_AS_IS = """
import sys
from cdxj_indexer.main import CDXJIndexer
from cdxj_indexer.amf import amf_parse
with open(sys.argv[2], "w", encoding="utf-8") as out, open(sys.argv[1], "rb") as source:
    CDXJIndexer(output=out, inputs=[source], filename=sys.argv[3], sort=True).process_all()
print(amf_parse(bytes.fromhex(sys.argv[4])))
"""


def _amf_body() -> bytes:
    """A Flash remoting request in AMF, as a POST body would carry it."""
    import pyamf
    from pyamf import remoting

    envelope = remoting.Envelope(pyamf.AMF3)
    envelope["/1"] = remoting.Request("echo.hello", body=["news archive"])
    return remoting.encode(envelope).getvalue()


def test_the_cdxj_index_is_cdxj_indexers_own_without_loading_its_amf_module_until_it_is_used(captured, tmp_path):
    _, _, _, _, copies = captured
    key, path = next(iter(copies.items()))
    ours, reference = tmp_path / "ours.cdxj", tmp_path / "reference.cdxj"
    arguments = [str(path), str(ours), key, _amf_body().hex()]
    archived = subprocess.run([sys.executable, "-c", _CDXJ_AS_ARCHIVED, *arguments], capture_output=True, text=True,
                              check=True)
    arguments[1] = str(reference)
    as_is = subprocess.run([sys.executable, "-c", _CDXJ_AS_IS, *arguments], capture_output=True, text=True,
                           check=True)
    assert ours.read_text() == reference.read_text() and len(ours.read_text().splitlines()) >= 2
    # pyamf and pkg_resources stay out while indexing; the AMF reader, once called, loads and is cdxj-indexer's own
    parsed = as_is.stdout.strip()
    assert "echo.hello" in parsed
    assert archived.stdout.strip() == f"[] True {parsed}"


def test_every_article_row_reads_back_the_page_it_was_extracted_from_in_one_ranged_read(captured):
    site, spec, store, rows, _ = captured
    assert rows["articles"]
    for row in rows["articles"]:
        page = read_record(store, row["warc_filename"], row["warc_record_offset"], row["warc_record_length"])
        assert page.url == row["url"] and page.status == row["http_status"] == 200
        path = urlsplit(row["url"]).path + (f"?{urlsplit(row['url']).query}" if urlsplit(row["url"]).query else "")
        assert page.body == site.pages[path].body, "the body bytes the server sent"
        headers = dict(page.headers)
        assert headers["Content-Length"] == str(len(page.body))


def test_fetched_duplicates_and_fetched_rejects_point_to_their_pages_too(captured):
    site, _, store, rows, _ = captured
    fetched_duplicates = [row for row in rows["duplicates"] if row["fetched"]]
    assert fetched_duplicates and all(row["warc_filename"] for row in fetched_duplicates)
    for row in fetched_duplicates:
        assert read_record(store, row["warc_filename"], row["warc_record_offset"], row["warc_record_length"]).url == row["url"]
    not_articles = [row for row in rows["rejects"] if row["reason"] == "not_article"]
    assert not_articles and all(row["warc_filename"] for row in not_articles)
    never_fetched = [row for row in rows["rejects"] if row["reason"] in ("robots_disallowed", "http_error")]
    assert never_fetched and all(row["warc_filename"] is None for row in never_fetched), \
        "a request that got no page to extract has no record"
    import json

    [manifest_key] = [k for k in store.list("runs/") if k.endswith(".json")]
    manifest = json.loads(store.get_bytes(manifest_key))
    assert sum(entry["records"] for entry in rows["warc_files"]) == manifest["counts"]["pages_extracted"], \
        "one response record per page handed to extraction"
    pointers = [(r["warc_filename"], r["warc_record_offset"]) for d in ("articles", "duplicates", "rejects")
                for r in rows[d] if r["warc_filename"]]
    assert len(pointers) == len(set(pointers)), "no two rows point to one record"


def test_a_page_sent_gzipped_is_kept_with_its_headers_rewritten_so_that_it_replays(news_site, tmp_path):
    """Scrapy decompresses the body: the record keeps the body read, Content-Encoding as X-Crawler-Content-Encoding
    and the length sent as X-Crawler-Content-Length, with a true Content-Length (as StormCrawler does)."""
    from crawler.localsite import LocalSite, Page
    from newssite import REFERENCE_PATH
    from pipelines.storage import LocalStore

    html = news_site[1].pages[REFERENCE_PATH].body
    sent = gzip.compress(html)
    site = LocalSite({REFERENCE_PATH: Page(body=sent, headers={"Content-Encoding": "gzip"})})
    base = site.start()
    try:
        result = run_crawl(tmp_path / "archive", [base + REFERENCE_PATH], settings={"CRAWL_MAX_LINK_DEPTH": 0})
    finally:
        site.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    [row] = result.rows("articles")
    page = read_record(LocalStore(tmp_path / "archive"), row["warc_filename"], row["warc_record_offset"],
                       row["warc_record_length"])
    headers = {name.lower(): value for name, value in page.headers}
    assert page.body == html, "the body as read, decompressed"
    assert "content-encoding" not in headers and headers["x-crawler-content-encoding"] == "gzip"
    assert headers["x-crawler-content-length"] == str(len(sent)) and headers["content-length"] == str(len(html))
    [path] = (tmp_path / "archive" / "warc").rglob("*.warc.gz")
    check = subprocess.run([sys.executable, "-m", "warcio.cli", "check", "-v", str(path)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
