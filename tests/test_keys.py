"""Object keys and file paths never leave ARCHIVE_URI, whatever a page or a setting holds.

Keys are built from the dataset name (a constant), the day the page was fetched (our clock, as YYYY-MM-DD),
the crawl id (made at start, or ARCHIVE_CRAWL_ID) and a sequence number; no page value (domain, URL, stated
date, title) reaches a key. Every key still passes ``check_key`` before anything is written under it, and the
crawl id and ``dt`` are checked where they enter.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_crawl
from crawler.localsite import LocalSite, Page
from newssite import build_news_site
from pipelines.archive import ArchivePipeline
from pipelines.exceptions import BadArchiveURI, PublishError
from pipelines.parquet import DatasetWriter
from pipelines.s3_store import S3Options, S3Store
from pipelines.storage import LocalStore, check_crawl_id, check_key
from pipelines.stores import store_from_uri
from records import article
from schemas import ARTICLES

#: values a page, a URL or a setting could carry, each of which must never become a path or key segment
HOSTILE = {
    "dotdot": "..",
    "dot": ".",
    "hidden": ".staged",
    "parent-path": "../../etc/passwd",
    "absolute": "/etc/passwd",
    "percent-dotdot": "%2e%2e",
    "percent-slash": "..%2f..%2fetc",
    "backslash": "..\\..\\x",
    "nul": "a\x00b",
    "newline": "a\nb",
    "trailing-newline": "run1\n",
    "space": "a b",
    "long-label": "x" * 256,
    "cyrillic-idn": "домен",
    "fullwidth-dots": "．．",
    "one-dot-leader": "\u2024\u2024",
    "division-slash": "a\u2215b",
    "empty": "",
}
#: a crawl id is one segment, so a slash is hostile there too
HOSTILE_CRAWL_IDS = {**HOSTILE, "slash": "a/b"}


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# --- unit: every entry point refuses ------------------------------------------------------------------------

@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_check_key_refuses_hostile_segments(value):
    with pytest.raises(PublishError):
        check_key(f"articles/dt=2026-11-25/{value}.parquet" if value not in ("", ".staged") else f"runs/{value}")
    with pytest.raises(PublishError):
        check_key(f"runs/{value}/x.json")


def test_check_key_accepts_punycode_and_200_byte_labels_which_stay_inside(tmp_path):
    store = LocalStore(tmp_path / "archive")
    for key in ("runs/xn--d1acufc.json", "runs/" + "y" * 200):  # 200 + the staging suffix fit in 255 bytes
        store.put_bytes(check_key(key), b"{}")
    assert {p.name for p in (tmp_path / "archive" / "runs").iterdir()} == {"xn--d1acufc.json", "y" * 200}
    assert files_under(tmp_path) == files_under(tmp_path / "archive") | {tmp_path / "archive"}
    with pytest.raises(PublishError):
        check_key("runs/" + "y" * 201)
    with pytest.raises(PublishError):
        check_key("/".join(["z" * 200] * 6))  # over S3's 1024 bytes


@pytest.mark.parametrize("value", list(HOSTILE_CRAWL_IDS.values()), ids=list(HOSTILE_CRAWL_IDS))
def test_crawl_id_is_refused_before_any_path_is_built(tmp_path, value):
    with pytest.raises(BadArchiveURI):
        check_crawl_id(value)
    store = LocalStore(tmp_path / "archive")
    with pytest.raises(BadArchiveURI):
        ArchivePipeline(store=store, crawl_id=value, spool_root=tmp_path / "archive" / "_spool", writer_options={},
                        settings_record={})
    if value and value in HOSTILE.values():  # the writer's core refuses a file name that is not a safe key, whoever gave the prefix
        writer = DatasetWriter(dataset="articles", schema=ARTICLES, spool_dir=tmp_path / "spool", file_prefix=value,
                               on_closed=lambda closed: None, row_group_rows=1)
        with pytest.raises(PublishError):
            writer.write(article(1), dt="2026-11-25")
    assert files_under(tmp_path) == set(), "nothing written anywhere"


@pytest.mark.parametrize("value", list(HOSTILE.values()) + ["2026-11-25/../..", "２０２６-11-25", "2026-11-25\n"],
                         ids=list(HOSTILE) + ["dt-escape", "fullwidth-digits", "dt-newline"])
def test_partition_dt_must_be_a_plain_date(tmp_path, value):
    writer = DatasetWriter(dataset="articles", schema=ARTICLES, spool_dir=tmp_path / "spool", file_prefix="run1",
                           on_closed=lambda closed: None, row_group_rows=1)
    with pytest.raises(ValueError):
        writer.write(article(1), dt=value)
    assert files_under(tmp_path) == set()


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_local_store_writes_nothing_outside_its_root(tmp_path, value):
    store = LocalStore(tmp_path / "archive")
    store.check_writable()
    source = tmp_path / "file.parquet"
    source.write_bytes(b"PAR1")
    before = files_under(tmp_path)
    for key in (f"articles/dt=2026-11-25/{value}", f"{value}/x.parquet", value):
        with pytest.raises(PublishError):
            store.put_bytes(key, b"x")
        with pytest.raises(PublishError):
            store.publish(source, key, rows=1, sha256="0" * 64)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("uri", ["s3://bucket/../x", "s3://bucket/a/%2e%2e/b", "s3://bucket/домен", "s3://bucket/a\x00b",
                                 "s3://bucket/" + "p" * 256, "s3://bucket/.hidden"])
def test_s3_prefix_is_checked_at_start_up(uri):
    with pytest.raises(BadArchiveURI if "://bucket/" not in uri else (BadArchiveURI, PublishError)):
        store_from_uri(uri, S3Options())


@pytest.mark.slow
def test_s3_store_writes_nothing_outside_its_prefix(s3, tmp_path):
    store = S3Store.from_uri(f"s3://{s3.bucket}/archive", S3Options(endpoint_url=s3.endpoint))
    source = tmp_path / "file.parquet"
    for value in HOSTILE.values():
        for key in (f"articles/dt=2026-11-25/{value}", f"{value}/x.parquet"):
            source.write_bytes(b"PAR1")
            with pytest.raises(PublishError):
                store.put_bytes(key, b"x")
            with pytest.raises(PublishError):
                store.publish(source, key, rows=1, sha256="0" * 64)
    with pytest.raises(PublishError):
        store.put_bytes("runs/" + "/".join(["z" * 200] * 5 + ["z" * 11]), b"x")  # 1021 bytes: over 1024 with the prefix
    assert s3.keys() == []


# --- end to end: hostile values in settings and in pages ---------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("crawl_id", ["../../escape", "a/b", "x" * 200, "домен", "%2e%2e", ".hidden"])
def test_hostile_crawl_id_is_refused_at_start_up(tmp_path, crawl_id):
    result = run_crawl(tmp_path / "archive", ["http://127.0.0.1:9/"], settings={"ARCHIVE_CRAWL_ID": crawl_id})
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("news-archive: ARCHIVE_CRAWL_ID must be") and "Traceback" not in result.stderr
    assert files_under(tmp_path) == set()


#: URL paths and page values that could reach a key if one were built from page data
HOSTILE_PATHS = [
    "/news/%2e%2e/%2e%2e/%2e%2e/escape-dots/",
    "/news/..%2f..%2f..%2fescape-slash/",
    "/news/nul%00byte/",
    "/news/" + "l" * 300 + "/",
    "/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/%D0%B4%D0%BE%D0%BC%D0%B5%D0%BD/",
    "/xn--d1acufc/story/",
]


@pytest.fixture(scope="module")
def hostile_site():
    """Real article pages served under hostile paths, stating hostile dates and names."""
    site = LocalSite()
    spec = build_news_site(site.start())
    articles = [a for a in spec.articles if a.source_id != "reference"][:len(HOSTILE_PATHS)]
    links = []
    for path, source in zip(HOSTILE_PATHS, articles):
        body = spec.pages[source.path].body.replace(
            b"</head>", b'<meta property="article:published_time" content="../../../../etc/passwd">'
                        b'<meta property="og:site_name" content="../../%2e%2e/\xd0\xb4\xd0\xbe\xd0\xbc\xd0\xb5\xd0\xbd">'
                        b"</head>", 1)
        site.pages[path] = Page(body=body)
        links.append(f'<li><a href="{path}">story</a></li>')
    site.pages["/"] = Page(body=("<html><head><title>Hostile</title></head><body><ul>" + "".join(links)
                                 + "</ul></body></html>").encode())
    yield site
    site.stop()


def assert_archive_layout(keys: list[str]) -> None:
    """Only the layout the README documents, under one crawl id."""
    crawl_id = r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}"
    layout = re.compile(rf"((articles|duplicates|rejects|warc_files)/dt=[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}/{crawl_id}-[0-9]{{5}}\.parquet"
                        rf"|warc/dt=[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}/{crawl_id}-[0-9]{{5}}\.(warc\.gz|cdxj)"
                        rf"|(articles|duplicates|rejects|warc_files)/_delta_log/[0-9]{{20}}\.json"
                        rf"|runs/{crawl_id}\.json|state/discovery/{crawl_id}\.json)")
    assert keys and [k for k in keys if not layout.fullmatch(k)] == []


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_hostile_page_data_stays_in_columns_on_a_folder(hostile_site, tmp_path):
    archive = tmp_path / "archive"
    result = run_crawl(archive, [hostile_site.base_url + "/"], env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p for p in tmp_path.iterdir()} <= {archive, tmp_path / "cache"}, "nothing written beside the archive"
    keys = [p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file()]
    assert_archive_layout(keys)
    urls = [r["url"] for d in ("articles", "duplicates", "rejects") for r in result.rows(d)]
    fetched = [path for path in HOSTILE_PATHS if any(url.endswith(path) for url in urls)]
    assert fetched == HOSTILE_PATHS, urls  # the hostile values did flow through, into columns only


@pytest.mark.slow
@pytest.mark.needs_corpus
def test_hostile_page_data_stays_under_the_s3_prefix(hostile_site, s3, tmp_path):
    result = run_crawl(tmp_path / "unused", [hostile_site.base_url + "/"], env=s3.env,
                       settings={"ARCHIVE_URI": f"s3://{s3.bucket}/news/archive", "ARCHIVE_SPOOL_DIR": tmp_path / "spool"})
    assert result.returncode == 0, result.stderr[-3000:]
    keys = s3.keys()
    assert all(k.startswith("news/archive/") for k in keys), keys
    assert_archive_layout([k.removeprefix("news/archive/") for k in keys])
    assert not (tmp_path / "unused").exists()
