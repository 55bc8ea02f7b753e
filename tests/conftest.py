"""Fixtures: local sites on 127.0.0.1 (port 0) and `scrapy crawl news` run as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from crawler.localsite import LocalSite
from newssite import CORPUS_DIR, FIXTURES_DIR, START_PATHS, build_corpus_site, build_news_site

REPO = Path(__file__).resolve().parents[1]

#: networks a test crawl may connect to: loopback, where every test site (and fake service) is
LOOPBACK = "127.0.0.0/8,::1"
#: settings every test crawl uses: no politeness delays against our own loopback server
TEST_SETTINGS = {
    "DOWNLOAD_DELAY": "0",
    "AUTOTHROTTLE_ENABLED": "False",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
    "CRAWL_CONTACT": "tests@example.invalid",
    "LOG_LEVEL": "INFO",
    "ALLOW_PRIVATE_NETWORKS": LOOPBACK,  # the test sites are on loopback...
    "CRAWL_ALLOWED_NETWORKS": LOOPBACK,  # ...and nothing else is reachable, public addresses included
}
#: set in every test environment (this process and the crawls): no AWS configuration from this machine
HERMETIC_AWS = {
    "AWS_EC2_METADATA_DISABLED": "true",  # no test may ask the instance metadata service
    "AWS_CONFIG_FILE": os.devnull,  # no profile, region or endpoint from ~/.aws
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def leaves_loopback(name: str) -> bool:
    """Environment variables that could send test traffic off loopback: every proxy setting, in any case
    (http_proxy, HTTPS_PROXY, ALL_PROXY, no_proxy...), and every AWS_* (endpoints, profiles, credentials)."""
    return name.lower().endswith("_proxy") or name.upper().startswith("AWS_")


@pytest.fixture(scope="session", autouse=True)
def no_way_off_loopback():
    """The environment the suite was started in, without proxies and AWS_* variables, for the whole session:
    boto3 in this process, the moto server and every crawl see only what a test sets."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if leaves_loopback(name)]:
            patch.delenv(name)
        for name, value in HERMETIC_AWS.items():
            patch.setenv(name, value)
        yield


#: fixtures built from the corpus: a test that uses one must be marked needs_corpus
CORPUS_FIXTURES = {"news_site", "news_crawl", "corpus_crawl", "health_archive"}


def in_ci() -> bool:
    """CI sets ``CI=true`` (GitHub Actions, GitLab, most others; .ci/run too)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items
                if CORPUS_FIXTURES & set(getattr(item, "fixturenames", ())) and "needs_corpus" not in item.keywords]
    if unmarked:
        raise pytest.UsageError(f"tests that use the corpus without the needs_corpus mark: {unmarked}")
    missing = [str(path) for path in (CORPUS_DIR, FIXTURES_DIR) if not path.is_dir()]
    needing = [item for item in items if "needs_corpus" in item.keywords]
    if not missing or not needing:
        return
    where = " and ".join(missing) + " (set NEWS_CORPUS_DIR / NEWS_FIXTURES_DIR)"
    if in_ci():  # in CI a missing corpus is a failure, never a quiet skip
        raise pytest.UsageError(f"CI: the shared test data is missing: {where}; {len(needing)} tests need it")
    skip = pytest.mark.skip(reason=f"shared test data not found: {where}")
    for item in needing:
        item.add_marker(skip)


@dataclass
class CrawlResult:
    returncode: int
    stdout: str
    stderr: str
    archive: Path
    requests: Counter = field(default_factory=Counter)  #: path -> requests the site saw during this crawl

    def table(self, dataset: str):
        """The dataset's Delta table as a reader sees it (its current version), or None when there is none."""
        return read_delta(str(self.archive / dataset))

    def rows(self, dataset: str) -> list[dict]:
        table = self.table(dataset)
        return table.to_pylist() if table is not None else []

    def manifests(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted((self.archive / "runs").glob("*.json"))]


def crawl_command(archive: Path, start_urls: list[str] | None = None, *, spider_args: dict | None = None,
                  settings: dict | None = None) -> list[str]:
    """The `scrapy crawl news` command line a test runs: TEST_SETTINGS, ARCHIVE_URI, then ``settings``."""
    command = [sys.executable, "-m", "scrapy", "crawl", "news"]
    if start_urls:
        command += ["-a", "start_urls=" + ",".join(start_urls)]
    for name, value in (spider_args or {}).items():
        command += ["-a", f"{name}={value}"]
    for name, value in {**TEST_SETTINGS, "ARCHIVE_URI": str(archive), **(settings or {})}.items():
        command += ["-s", f"{name}={value}"]
    return command


def crawl_env(env: dict | None = None) -> dict:
    """This process's environment without ARCHIVE_*, AWS_* or proxy variables, no AWS configuration from this
    machine, plus ``env`` (what the test sets, proxies and AWS_* included)."""
    process_env = {k: v for k, v in os.environ.items() if not (k.startswith("ARCHIVE_") or leaves_loopback(k))}
    process_env.update(HERMETIC_AWS)
    process_env.update(env or {})
    return process_env


def run_crawl(archive: Path, start_urls: list[str] | None = None, *, spider_args: dict | None = None,
              settings: dict | None = None, timeout: float = 600, env: dict | None = None) -> CrawlResult:
    """`scrapy crawl news` in a subprocess, from the repository root, as the README runs it."""
    command = crawl_command(archive, start_urls, spider_args=spider_args, settings=settings)
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=crawl_env(env))
    warnings = python_warnings(completed.stderr)
    assert not warnings, f"a crawl's log carries Python warnings a newcomer would see: {warnings}"
    return CrawlResult(completed.returncode, completed.stdout, completed.stderr, archive)


def python_warnings(log: str) -> list[str]:
    """The Python warnings (deprecations and the like, which Scrapy logs as ``[py.warnings]``) in a crawl's log."""
    return [line for line in log.splitlines() if "[py.warnings]" in line]


class RunningCrawl:
    """`scrapy crawl news` started in the background (``crawl_command``, ``crawl_env``), its stderr read as it
    comes so that a test can wait for a log line instead of a time."""

    def __init__(self, command: list[str], env: dict) -> None:
        self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for_line(self, text: str, timeout: float = 120) -> str:
        """The first stderr line containing ``text``, once it has come; AssertionError if the crawl's output
        ended (or ``timeout`` s passed, a safety net) without one."""
        def found():
            return next((line for line in self._lines if text in line), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._ended, timeout)
            line = found()
        assert line is not None, f"no line with {text!r} in the crawl's output:\n{self.stderr[-3000:]}"
        return line

    def wait_for_lines(self, text: str, count: int, timeout: float = 120) -> None:
        """Wait until ``count`` stderr lines contain ``text``; AssertionError if the output ended first."""
        def seen() -> int:
            return sum(text in line for line in self._lines)

        with self._changed:
            self._changed.wait_for(lambda: seen() >= count or self._ended, timeout)
            found = seen()
        assert found >= count, f"{found} of {count} lines with {text!r} in the crawl's output:\n{self.stderr[-3000:]}"

    def finish(self, timeout: float = 120) -> str:
        """Wait for the process to end; its whole stderr."""
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return self.stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_until(condition, what: str, timeout: float = 120) -> None:
    """Wait until ``condition()`` holds (a file appears, an object is listed), checked every 20 ms; AssertionError
    naming ``what`` if ``timeout`` s pass first (a safety net, not a bound the test asserts)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {timeout:g} s"
        time.sleep(0.02)


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server as its own process on 127.0.0.1, port 0."""
    from s3fakes import MotoServer

    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(moto_server, monkeypatch):
    """A fresh bucket on the moto server; the environment points boto3 at it as production points at AWS."""
    import uuid

    import boto3
    from s3fakes import FAKE_ENV

    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return S3Target(bucket=bucket, client=client, endpoint=moto_server.url, env={**FAKE_ENV, "AWS_ENDPOINT_URL": moto_server.url})


@dataclass
class S3Target:
    bucket: str
    client: object
    endpoint: str
    env: dict

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def incomplete_uploads(self) -> list[dict]:
        return self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])

    def table_options(self) -> dict:
        """deltalake's storage options for this bucket on the moto server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": self.env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": self.env["AWS_SECRET_ACCESS_KEY"], "AWS_EC2_METADATA_DISABLED": "true"}

    def rows(self, prefix: str, dataset: str) -> list[dict]:
        """The rows of the dataset's Delta table under ``s3://<bucket>/<prefix>/``."""
        table = read_delta(f"s3://{self.bucket}/{prefix}/{dataset}", self.table_options())
        return table.to_pylist() if table is not None else []

    def data_keys(self, prefix: str = "") -> list[str]:
        """Keys of data files (not the tables' logs) under ``prefix``."""
        return [key for key in self.keys(prefix) if "/_delta_log/" not in key]


@dataclass
class ArchiveTarget:
    """Where a test archive lives, folder or bucket: its URI, the environment a crawl needs for it, deltalake's
    storage options, and the store (pipelines.storage) to read its files."""

    uri: str
    env: dict
    options: dict
    store: object

    def rows(self, dataset: str) -> list[dict]:
        table = read_delta(f"{self.uri}/{dataset}", self.options)
        return table.to_pylist() if table is not None else []


def archive_target(kind: str, tmp: Path, moto_server=None) -> ArchiveTarget:
    """A fresh archive: ``kind`` folder (under ``tmp``) or s3 (a new bucket on the moto server)."""
    from pipelines.storage import LocalStore

    if kind == "folder":
        return ArchiveTarget(str(tmp / "archive"), {}, {}, LocalStore(tmp / "archive"))
    import uuid

    import boto3
    from s3fakes import FAKE_ENV

    from pipelines.s3_store import S3Options, S3Store

    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1",
                 aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=bucket)
    env = {**FAKE_ENV, "AWS_ENDPOINT_URL": moto_server.url}
    target = S3Target(bucket=bucket, client=None, endpoint=moto_server.url, env=env)
    uri = f"s3://{bucket}/news"
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)  # boto3 reads its credentials when the store's client is made
    try:
        store = S3Store.from_uri(uri, S3Options(endpoint_url=moto_server.url, region="us-east-1"))
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    return ArchiveTarget(uri, env, target.table_options(), store)


def published_rows(path: Path) -> int:
    """The rows a published file holds, read back as a reader would (each file whole): a Parquet file's rows, a
    WARC file's response records (digests checked), a CDXJ index's response entries."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        pq.read_table(path)  # raises on a truncated or corrupt file
        return pq.ParquetFile(path).metadata.num_rows
    if path.name.endswith(".warc.gz"):
        from warcio.archiveiterator import ArchiveIterator

        with open(path, "rb") as source:
            return sum(record.rec_type == "response" for record in ArchiveIterator(source, check_digests="raise"))
    if path.name.endswith(".cdxj"):
        entries = [json.loads(line.split(" ", 2)[2]) for line in path.read_text().splitlines()]
        return sum("status" in entry for entry in entries)
    raise AssertionError(f"a published file of no known kind: {path}")


def news_archive(target: ArchiveTarget, tmp: Path, *argv: str, settings: dict | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
    """``news-archive <argv>`` in a subprocess as the README runs it, with the test settings as ``-s``, the spool and
    the cache under ``tmp`` and the archive's environment."""
    command = [sys.executable, "-m", "crawler.cli", *argv]
    for name, value in {**TEST_SETTINGS, "ARCHIVE_SPOOL_DIR": str(tmp / "spool"), **(settings or {})}.items():
        command += ["-s", f"{name}={value}"]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=crawl_env({**target.env, "XDG_CACHE_HOME": str(tmp / "cache"), **(env or {})}))


def crawl_news_site_into(kind: str, news_site, tmp: Path, moto_server=None) -> ArchiveTarget:
    """One crawl of the news site (raw capture on, the default) into a fresh folder or bucket."""
    from newssite import START_PATHS

    site, _ = news_site
    target = archive_target(kind, tmp, moto_server)
    result = run_crawl(tmp / "unused", [site.base_url + p for p in START_PATHS],
                       settings={"ARCHIVE_URI": target.uri, "ARCHIVE_SPOOL_DIR": str(tmp / "spool")},
                       env={**target.env, "XDG_CACHE_HOME": str(tmp / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    return target


def load_duckdb_extension(connection, package: str, name: str) -> None:
    """Load a DuckDB extension from its PyPI package (DuckDB cannot download it here), as the README says."""
    import duckdb

    module = __import__(package)
    connection.execute(f"LOAD '{Path(module.__file__).parent / 'extensions' / f'v{duckdb.__version__}' / name}'")


def duckdb_with_delta(target: ArchiveTarget | None = None):
    """A DuckDB connection with the delta extension; for an archive on the moto server also httpfs and a secret."""
    import duckdb

    connection = duckdb.connect()
    load_duckdb_extension(connection, "duckdb_extension_delta", "delta.duckdb_extension")
    if target is not None and target.uri.startswith("s3://"):
        load_duckdb_extension(connection, "duckdb_extension_httpfs", "httpfs.duckdb_extension")
        connection.execute(f"""CREATE SECRET (TYPE s3, KEY_ID '{target.env['AWS_ACCESS_KEY_ID']}',
            SECRET '{target.env['AWS_SECRET_ACCESS_KEY']}',
            ENDPOINT '{target.env['AWS_ENDPOINT_URL'].removeprefix('http://')}',
            URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')""")
    return connection


def read_delta(uri: str, storage_options: dict | None = None):
    """A Delta table's rows (pyarrow) as readers see them, or None when no table is there."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(uri, storage_options=storage_options).to_pyarrow_table()
    except TableNotFoundError:
        return None


@pytest.fixture(scope="session")
def news_site():
    site = LocalSite()
    base = site.start()
    spec = build_news_site(base)
    site.pages.update(spec.pages)
    yield site, spec
    site.stop()


#: the pages that link to the news site's copies (exact, near, AMP alias), and to no original of theirs
COPY_LISTINGS = ("/section/politics/", "/tag/nato/")


@pytest.fixture(scope="session")
def news_crawl(news_site, tmp_path_factory):
    """One crawl of the local news site, shared by the end-to-end assertions.

    Which of an original and its copy is archived is decided by which reaches deduplication first. Here the
    original does, by construction: the only pages linking to the copies are answered once every original
    has been answered in full (so a copy is requested after its original's page has arrived), and a single
    extraction worker takes the pages in the order they arrived.
    """
    site, spec = news_site
    archive = tmp_path_factory.mktemp("news") / "archive"
    originals = {*spec.exact_copies.values(), *spec.near_copies.values(), *spec.canonical_aliases.values()}
    before = Counter(site.statuses)

    def originals_answered(site) -> bool:
        answered = {path.split("?", 1)[0] for (path, status), n in site.statuses.items()
                    if status == 200 and n > before[(path, status)]}
        return originals <= answered

    release = threading.Event()
    held = {path: site.pages[path] for path in COPY_LISTINGS}
    for path, page in held.items():
        site.pages[path] = dataclasses.replace(page, hold=release)
    releaser = threading.Thread(target=lambda: (site.wait_for(originals_answered, timeout=300), release.set()),
                                daemon=True)
    releaser.start()
    requests_before = Counter(site.requests)
    try:
        result = run_crawl(archive, [site.base_url + path for path in START_PATHS], settings={"EXTRACT_WORKERS": "1"})
    finally:
        release.set()
        site.pages.update(held)
    result.requests = Counter(site.requests) - requests_before
    result.copies_held_until_originals = originals_answered(site)
    return site, spec, result


@pytest.fixture(scope="session")
def corpus_crawl(tmp_path_factory):
    """One crawl of every corpus news and magazine page, for the extraction quality gate."""
    site = LocalSite()
    base = site.start()
    pages, ids = build_corpus_site(base)
    site.pages.update(pages)
    archive = tmp_path_factory.mktemp("corpus") / "archive"
    result = run_crawl(archive, [base + "/robots.txt", base + "/"], settings={"CONCURRENT_REQUESTS_PER_DOMAIN": "16"})
    yield site, ids, result
    site.stop()


@dataclass
class HealthArchive:
    """Three local publishers crawled on HEALTH_DAYS days into one archive (``tests/healthsite.py``)."""

    archive: Path
    sites: dict  #: role -> HealthSite
    crawls: list  #: CrawlResult per day


HEALTH_DAYS = 4
#: role -> loopback host: one site moves its bodies into a script on the last day, one empties its sitemap, one
#: changes nothing but its new stories
HEALTH_HOSTS = {"layout": "127.0.0.2", "steady": "127.0.0.3", "sitemap": "127.0.0.4"}


@pytest.fixture(scope="session")
def health_archive(tmp_path_factory):
    from healthsite import HealthSite, corpus_texts

    per_site = 4 + 3 * (HEALTH_DAYS - 1)
    texts = corpus_texts(CORPUS_DIR, per_site * len(HEALTH_HOSTS))
    sites, servers = {}, []
    for i, (role, host) in enumerate(HEALTH_HOSTS.items()):
        site = HealthSite(f"The {role.title()} Gazette", texts[i * per_site:(i + 1) * per_site])
        server = LocalSite(host=host)
        site.base_url = server.start()
        sites[role] = site
        servers.append(server)
    sites["layout"].layout_from = HEALTH_DAYS
    sites["sitemap"].sitemap_emptied_from = HEALTH_DAYS
    archive = tmp_path_factory.mktemp("health") / "archive"
    crawls = []
    try:
        for day in range(1, HEALTH_DAYS + 1):
            for site, server in zip(sites.values(), servers):
                server.pages = site.edition(day)
            result = run_crawl(archive, [f"{site.base_url}{path}" for site in sites.values()
                                         for path in ("/", "/robots.txt")])
            assert result.returncode == 0, result.stderr[-3000:]
            crawls.append(result)
        yield HealthArchive(archive=archive, sites=sites, crawls=crawls)
    finally:
        for server in servers:
            server.stop()
