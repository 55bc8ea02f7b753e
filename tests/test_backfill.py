"""Backfill (``news-archive backfill``): WARC files made here from ../shared/corpus pages, with records of other
hosts and dates, bad records and a truncated file mixed in, read from a CC-NEWS layout on moto's S3 and on a local
HTTP server, and from a local folder: only the sites' records archived, the date filter honoured, bad records
counted and recorded, duplicates of archived articles recorded, and a kill and rerun losing and repeating nothing."""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from conftest import REPO, archive_target, news_archive
from crawler.localsite import LocalSite, Page
from pipelines.backfill import parse_member
from newssite import corpus_content_type, corpus_records

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]

TESTS = REPO / "tests"
SITES = "https://www.waz.de/,https://www.morgenpost.de/"
MONTH = "2025/11"
SINCE, UNTIL = "2024-01-01", "2025-12-31"  # fetch days, then publication days
NOV7, NOV8, DEC15, SEP1 = (datetime(2025, 11, 7, 8, tzinfo=timezone.utc), datetime(2025, 11, 8, 8, tzinfo=timezone.utc),
                           datetime(2023, 12, 15, 8, tzinfo=timezone.utc), datetime(2023, 9, 1, 8, tzinfo=timezone.utc))


@dataclass(frozen=True)
class CorpusPage:
    url: str
    html: bytes


def member(url: str, body: bytes, when: datetime, *, kind: str = "response", status: str = "200 OK",
           content_type: str | None = None) -> bytes:
    """One record as its own gzip member (warcio), as CC-NEWS stores them."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="WARC/1.1")
    date = {"WARC-Date": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if kind == "response":
        headers = StatusAndHeaders(status, [("Content-Type", content_type or corpus_content_type(body))],
                                   protocol="HTTP/1.1")
        record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                           http_headers=headers, warc_headers_dict=date)
    elif kind == "request":
        headers = StatusAndHeaders(f"GET {url} HTTP/1.1", [("User-Agent", "CCBot/2.0")], is_http_request=True)
        record = writer.create_warc_record(url, "request", payload=io.BytesIO(b""), length=0, http_headers=headers,
                                           warc_headers_dict=date)
    elif kind == "revisit":
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        record = writer.create_revisit_record(url, digest="sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", refers_to_uri=url,
                                              refers_to_date=date["WARC-Date"], http_headers=headers)
        record.rec_headers.replace_header("WARC-Date", date["WARC-Date"])
    else:  # a dns: record, no HTTP in it
        record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                           warc_content_type="text/dns", warc_headers_dict=date)
    writer.write_record(record)
    return out.getvalue()


def altered(data: bytes, old: bytes, new: bytes) -> bytes:
    """The member with ``old`` replaced by ``new`` (same length) inside, gzipped again: its digests now lie."""
    assert len(old) == len(new)
    inflated = gzip.decompress(data)
    assert old in inflated
    return gzip.compress(inflated.replace(old, new, 1))


@pytest.fixture(scope="module")
def cc_news(tmp_path_factory):
    """Three CC-NEWS-style files of November (one of September), what each record is, and the listing."""
    by_host: dict[str, list] = {}
    for record in sorted((r for r in corpus_records() if r.dataset == "fundus" and r.rec.get("url")),
                         key=lambda r: r.rec["url"]):
        by_host.setdefault(record.rec["url"].split("/")[2], []).append(CorpusPage(record.rec["url"], record.raw))
    waz, mopo = by_host["www.waz.de"], by_host["www.morgenpost.de"]
    others = [by_host[host][0] for host in ("www.br.de", "www.dw.com", "www.faz.net")]
    w_old, w1, w2, w3 = waz[:4]  # w_old was published in 2023: out of the range once extracted
    m1, m2, m3 = mopo[:3]
    mirror = others[2].url.replace("www.faz.net", "www.waz.de.mirror.example")  # "waz.de" inside: not the site
    m_host = w_old.url.replace("www.waz.de", "m.waz.de")  # the site's registered domain: kept, then judged
    copy_url = "https://www.morgenpost.de/kopie/" + w1.url.rstrip("/").rsplit("/", 1)[1]
    file1 = b"".join([
        member(w1.url, b"", NOV7, kind="request"), member(w1.url, w1.html, NOV7),
        member(others[0].url, others[0].html, NOV7), member(w2.url, w2.html, NOV7),
        member(m1.url, m1.html, NOV7), member(others[1].url, others[1].html, NOV7),
        member(w1.url, b"", NOV7, kind="revisit"),
        member("dns:www.waz.de", b"www.waz.de. 300 IN A 192.0.2.1\n", NOV7, kind="dns"),
        altered(member(m3.url, m3.html, NOV7), b"HTTP/1.1 200 OK", b"HTTP/1.1 2OO OK"),
        altered(member(w3.url, w3.html, NOV7), w3.html[-200:-180], b"x" * 20),
        member(m2.url, m2.html, NOV7), member(mirror, others[2].html, NOV7),
    ])
    truncated = member(m3.url, m3.html, NOV8)
    file2 = b"".join([member(m_host, w_old.html, NOV8), member(w3.url, w3.html, DEC15),
                      member(copy_url, w1.html, NOV8), truncated[: len(truncated) // 2]])
    file3 = member(w3.url, w3.html, SEP1)
    files = {"crawl-data/CC-NEWS/2025/11/CC-NEWS-20251107080000-00000.warc.gz": file1,
             "crawl-data/CC-NEWS/2025/11/CC-NEWS-20251108080000-00001.warc.gz": file2,
             "crawl-data/CC-NEWS/2025/11/CC-NEWS-20230901080000-00002.warc.gz": file3}
    listing = gzip.compress("".join(f"{path}\n" for path in files).encode())
    folder = tmp_path_factory.mktemp("cc-news")
    for path, data in files.items():
        (folder / Path(path).name).write_bytes(data)
    expected = {
        "articles": sorted([w1.url, w2.url, m1.url, m2.url]),
        "duplicates": [copy_url],
        "rejects": Counter({"revisit": 1, "not_http": 1, "bad_http_headers": 1, "digest_mismatch": 1, "truncated": 1,
                            "published_out_of_range": 1}),
        "pages": {w2.url: w2},
    }
    return files, listing, folder, expected


def backfill(target, tmp, *arguments, settings: dict | None = None, env: dict | None = None):
    """``news-archive backfill --archive <archive> --start-urls <the sites> ...`` as the README runs it."""
    return news_archive(target, tmp, "backfill", "--archive", target.uri, "--start-urls", SITES, *arguments,
                        settings=settings, env=env)


@pytest.fixture(scope="module", params=["s3", "http", "folder"])
def source(request, cc_news, tmp_path_factory):
    """Where the WARC files are read from, and the archive they go to: CC-NEWS on moto's S3 into an S3 archive;
    CC-NEWS over HTTP, and a local folder, into a folder archive. (arguments, settings, env, target, tmp)."""
    files, listing, folder, _ = cc_news
    tmp = tmp_path_factory.mktemp(f"backfill-{request.param}")
    if request.param == "s3":
        moto = request.getfixturevalue("moto_server")
        target = archive_target("s3", tmp, moto)
        import boto3

        client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                              aws_access_key_id=target.env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=target.env["AWS_SECRET_ACCESS_KEY"])
        bucket = f"cc-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        for path, data in files.items():
            client.put_object(Bucket=bucket, Key=path, Body=data)
        client.put_object(Bucket=bucket, Key=f"crawl-data/CC-NEWS/{MONTH}/warc.paths.gz", Body=listing)
        yield ["--cc-news", MONTH], {"BACKFILL_CC_NEWS_BASE": f"s3://{bucket}/"}, target, tmp
        return
    target = archive_target("folder", tmp)
    if request.param == "folder":
        yield [str(folder)], {}, target, tmp
        return
    site = LocalSite({f"/{path}": Page(body=data, content_type="application/octet-stream") for path, data in files.items()})
    site.pages[f"/crawl-data/CC-NEWS/{MONTH}/warc.paths.gz"] = Page(body=listing, content_type="application/gzip")
    base = site.start()
    yield ["--cc-news", MONTH], {"BACKFILL_CC_NEWS_BASE": base + "/"}, target, tmp
    site.stop()


@pytest.fixture(scope="module")
def backfilled(source, cc_news):
    arguments, settings, target, tmp = source
    result = backfill(target, tmp, *arguments, "--since", SINCE, "--until", UNTIL, settings=settings)
    return result, target, tmp, arguments, settings


def manifest_of(target, crawl_id: str) -> dict:
    with target.store.open_input(f"runs/{crawl_id}.json") as stream:
        return json.loads(stream.read())


def test_only_the_sites_records_within_the_dates_are_archived(backfilled, cc_news):
    result, target, _, _, _ = backfilled
    _, _, _, expected = cc_news
    assert result.returncode == 0, result.stderr[-3000:]
    articles = target.rows("articles")
    assert sorted(row["url"] for row in articles) == expected["articles"]
    assert {row["discovered_via"] for row in articles} == {"backfill"}
    assert all(row["warc_filename"].endswith(".warc.gz") and row["warc_record_length"] > 0 for row in articles)
    [crawl_id] = {row["crawl_id"] for row in articles}
    counts = manifest_of(target, crawl_id)["counts"]
    assert counts["requests"] == 0
    assert counts["backfill"] == {"skipped/not_response": 1, "skipped/other_host": 3, "skipped/out_of_range": 1,
                                  "sources_out_of_range": 1}
    assert counts["warc_records_read"] == 6  # w1, w2, m1, m2, the m.waz.de page and the copy


def test_each_archived_row_points_at_the_record_it_came_from(backfilled, cc_news, source):
    _, target, _, _, _ = backfilled
    files, _, _, expected = cc_news
    by_name = {Path(path).name: data for path, data in files.items()}
    for row in target.rows("articles"):
        data = by_name[Path(row["warc_filename"]).name]
        start, length = row["warc_record_offset"], row["warc_record_length"]
        record = parse_member(gzip.decompress(data[start:start + length]), start, length, keep=lambda url: True,
                              since=None, until=None)
        assert record.url == row["url"]
    page = expected["pages"]
    [w2] = [row for row in target.rows("articles") if row["url"] in page]
    assert w2["title"] and w2["body"]


def test_bad_records_are_counted_and_recorded_with_their_file_and_offset(backfilled, cc_news):
    result, target, _, _, _ = backfilled
    _, _, _, expected = cc_news
    rejects = target.rows("rejects")
    assert Counter(row["reason"] for row in rejects) == expected["rejects"]
    assert all(row["warc_filename"].endswith(".warc.gz") and row["warc_record_offset"] >= 0 for row in rejects)
    [crawl_id] = {row["crawl_id"] for row in rejects}
    assert manifest_of(target, crawl_id)["counts"]["dropped"] == dict(expected["rejects"])


def test_a_copy_of_an_archived_article_is_recorded_as_its_duplicate(backfilled, cc_news):
    _, target, _, _, _ = backfilled
    _, _, _, expected = cc_news
    duplicates = target.rows("duplicates")
    assert [(row["url"], row["kind"]) for row in duplicates] == [(expected["duplicates"][0], "exact")]
    assert duplicates[0]["duplicate_of_url"] in expected["articles"]


def test_a_rerun_reads_no_file_again_and_an_earlier_article_seen_again_is_a_duplicate(backfilled, cc_news, tmp_path):
    _, target, tmp, arguments, settings = backfilled
    _, _, _, expected = cc_news
    before = {d: len(target.rows(d)) for d in ("articles", "duplicates", "rejects")}
    again = backfill(target, tmp, *arguments, "--since", SINCE, "--until", UNTIL, settings=settings)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {d: len(target.rows(d)) for d in before} == before
    page = next(iter(expected["pages"].values()))
    extra = tmp_path / "extra.warc.gz"
    extra.write_bytes(member(page.url, page.html, NOV8))
    seen = backfill(target, tmp, str(extra), settings=settings)
    assert seen.returncode == 0, seen.stderr[-3000:]
    assert len(target.rows("articles")) == before["articles"]
    [duplicate] = [row for row in target.rows("duplicates") if row["warc_filename"] == str(extra)]
    assert (duplicate["url"], duplicate["kind"], duplicate["fetched"]) == (page.url, "url", True)


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_a_killed_backfill_rerun_loses_and_repeats_nothing(kind, cc_news, tmp_path, request):
    _, _, folder, expected = cc_news
    target = archive_target(kind, tmp_path, request.getfixturevalue("moto_server") if kind == "s3" else None)
    killed = backfill(target, tmp_path, str(folder), "--since", SINCE, "--until", UNTIL, settings={
        "ARCHIVE_MAX_FILE_ROWS": 1, "ARCHIVE_ROW_GROUP_ROWS": 1,
        "EXTENSIONS": json.dumps({"faults.KillAtCommit": 0}), "FAULT_KILL_AT": "committed", "FAULT_KILL_COMMIT": 3,
    }, env={"PYTHONPATH": str(TESTS)})
    assert killed.returncode == -9, killed.stderr[-3000:]
    committed = sum(len(target.rows(d)) for d in ("articles", "duplicates", "rejects"))
    assert 0 < committed < len(expected["articles"]) + 1 + sum(expected["rejects"].values())
    rerun = backfill(target, tmp_path, str(folder), "--since", SINCE, "--until", UNTIL)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(row["url"] for row in target.rows("articles")) == expected["articles"]
    assert [row["url"] for row in target.rows("duplicates")] == expected["duplicates"]
    assert Counter(row["reason"] for row in target.rows("rejects")) == expected["rejects"]


def test_a_source_on_an_address_the_crawl_may_not_reach_is_refused_and_the_others_are_read(cc_news, tmp_path):
    _, _, folder, expected = cc_news
    target = archive_target("folder", tmp_path)
    result = backfill(target, tmp_path, "http://10.0.0.1/CC-NEWS-20251107080000-00000.warc.gz", str(folder),
                      "--since", SINCE, "--until", UNTIL)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "10.0.0.1 is an address the crawl may not connect to" in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("news-archive: the archive was not fully written: ") and \
        "backfill: 1 WARC source(s) could not be read (see the log); a rerun reads them" in line, line
    assert sorted(row["url"] for row in target.rows("articles")) == expected["articles"], "the other files are read"
    [manifest] = [json.loads(target.store.get_bytes(k)) for k in target.store.list("runs/")]
    assert manifest["status"] == "failed" and manifest["sources_done"] == sorted(str(p) for p in folder.iterdir()
                                                                                 if "20230901" not in p.name)


@pytest.mark.parametrize("arguments, message", [
    (["--cc-news", "2025-11"], "--cc-news takes a month, YYYY/MM, not '2025-11'"),
    (["--cc-news", "2025/13"], "--cc-news takes a month, YYYY/MM, not '2025/13'"),
    (["./x.warc.gz", "--since", "1 Nov"], "since must be a day, YYYY-MM-DD, not '1 Nov'"),
    ([], "give WARC files to read or a CC-NEWS month (--cc-news YYYY/MM)"),
])
def test_bad_arguments_are_refused_at_start_up_with_one_line(arguments, message, tmp_path):
    target = archive_target("folder", tmp_path)
    result = backfill(target, tmp_path, *arguments)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == f"news-archive: {message}"
    assert not (tmp_path / "archive" / "runs").exists()


# --- the stream cut into records (no crawl) -----------------------------------------------------------------------


def outcomes(data: bytes, **options) -> Counter:
    from pipelines.backfill import records

    keep = {"www.waz.de", "m.waz.de", "www.morgenpost.de"}
    found = records(io.BytesIO(data).read, keep=lambda url: url.split("/")[2] in keep, max_bytes=5 * 2**20,
                    chunk=4096, **options)
    return Counter(f"{type(o).__name__}:{getattr(o, 'reason', '')}" for o in found)


def test_a_file_is_cut_into_its_records_and_a_bad_member_costs_that_record_only(cc_news):
    files, _, _, _ = cc_news
    first, second = list(files.values())[:2]
    assert outcomes(first) == Counter({"SourceRecord:": 4, "SkippedRecord:other_host": 3, "SkippedRecord:not_response": 1,
                                       "BadRecord:revisit": 1, "BadRecord:not_http": 1, "BadRecord:bad_http_headers": 1,
                                       "BadRecord:digest_mismatch": 1})
    assert outcomes(second, since=datetime(2024, 1, 1).date()) == Counter(
        {"SourceRecord:": 2, "SkippedRecord:out_of_range": 1, "BadRecord:truncated": 1})
    broken = bytearray(first)
    broken[len(first) // 2] ^= 0xFF  # inside some member: that member fails to inflate, reading goes on after it
    found = outcomes(bytes(broken))
    assert found["BadRecord:gzip_error"] == 1 and sum(found.values()) == sum(outcomes(first).values())
    assert outcomes(b"not gzip at all " * 10 + first) == outcomes(first) + Counter({"BadRecord:gzip_error": 1})


def test_a_record_already_done_is_passed_over_bad_ones_included(cc_news):
    from pipelines.backfill import gzip_members

    second = list(cc_news[0].values())[1]
    offsets = [offset for offset, _, _, _ in gzip_members(io.BytesIO(second).read, max_bytes=5 * 2**20)]
    assert len(offsets) == 4
    assert outcomes(second, skip=set(offsets).__contains__) == Counter()
    assert outcomes(second, skip={offsets[-1]}.__contains__)["BadRecord:truncated"] == 0


def test_a_record_that_inflates_past_the_limit_is_too_large(cc_news):
    from pipelines.backfill import records

    first = list(cc_news[0].values())[0]
    found = Counter(getattr(o, "reason", "ok") for o in records(io.BytesIO(first).read, keep=lambda url: True,
                                                                  max_bytes=20_000))
    assert found["too_large"] > 0 and found["too_large"] + found["ok"] + found["not_response"] + \
        found["revisit"] + found["not_http"] + found["bad_http_headers"] + found["digest_mismatch"] == 12
