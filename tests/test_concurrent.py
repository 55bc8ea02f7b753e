"""Writers at once, and runs killed around their commits: every article once, no file in two commits."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from deltalake import DeltaTable

from conftest import REPO, crawl_command, crawl_env, read_delta, run_crawl
from crawler.localsite import LocalSite, Page
from newssite import corpus_page, select_corpus_articles
from publishersite import build_publisher_site

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]

DATASETS = ("articles", "duplicates", "rejects")


class Archive:
    """Where the crawls write (a folder, or a bucket of the moto server) and how to read it back."""

    def __init__(self, uri: str, env: dict, options: dict, log_reader) -> None:
        self.uri, self.env, self.options, self._log = uri, env, options, log_reader

    def rows(self, dataset: str) -> list[dict]:
        table = read_delta(f"{self.uri}/{dataset}", self.options)
        return table.to_pylist() if table is not None else []

    def table(self, dataset: str) -> DeltaTable:
        return DeltaTable(f"{self.uri}/{dataset}", storage_options=self.options)

    def commits(self, dataset: str) -> list[list[dict]]:
        """The actions of every commit of the dataset's log, in version order."""
        return self._log(dataset)


@pytest.fixture(params=["folder", "s3"])
def archive(request, tmp_path) -> Archive:
    if request.param == "folder":
        root = tmp_path / "archive"

        def log(dataset: str):
            return [[json.loads(line) for line in path.read_text().splitlines()]
                    for path in sorted((root / dataset / "_delta_log").glob("*.json"))]

        return Archive(str(root), {}, {}, log)
    s3 = request.getfixturevalue("s3")

    def s3_log(dataset: str):
        keys = [k for k in s3.keys(f"a/{dataset}/_delta_log/") if k.endswith(".json")]
        return [[json.loads(line) for line in s3.client.get_object(Bucket=s3.bucket, Key=k)["Body"].read().splitlines()]
                for k in keys]

    return Archive(f"s3://{s3.bucket}/a", s3.env, s3.table_options(), s3_log)


def added_paths(archive: Archive, dataset: str) -> Counter:
    return Counter(action["add"]["path"] for commit in archive.commits(dataset) for action in commit if "add" in action)


def assert_no_file_in_two_commits_and_the_table_holds_them_all(archive: Archive) -> None:
    for dataset in DATASETS:
        added = added_paths(archive, dataset)
        assert [path for path, count in added.items() if count > 1] == [], dataset
        current = set(archive.table(dataset).get_add_actions(flatten=True).column("path").to_pylist())
        assert current == set(added), f"{dataset}: every committed file is in the table (nothing removed here)"


# --- three writers at once ----------------------------------------------------------------------------------

def corpus_sites(count: int, per_site: int):
    """``count`` sites on their own loopback hosts, each serving its own corpus articles behind a home page."""
    records = select_corpus_articles(count * per_site, 0)
    sites = []
    for number in range(count):
        site = LocalSite(host=f"127.0.0.{number + 1}")
        site.start()
        mine = records[number * per_site:(number + 1) * per_site]
        paths = [f"/news/{rec.id.lower()}/" for rec in mine]
        site.pages.update({path: corpus_page(rec) for path, rec in zip(paths, mine)})
        links = "".join(f'<li><a href="{path}">story</a></li>' for path in paths)
        site.pages["/"] = Page(body=f"<html><body><h1>Front page</h1><ul>{links}</ul></body></html>".encode())
        sites.append((site, paths))
    return sites


def test_three_crawls_at_once_commit_every_article_once(archive, tmp_path, capsys):
    sites = corpus_sites(3, 6)
    expected = Counter(f"{site.base_url}{path}" for site, paths in sites for path in paths)
    processes = []
    try:
        for number, (site, _) in enumerate(sites):
            command = crawl_command(tmp_path / "unused", [site.base_url + "/"],
                                    settings={"ARCHIVE_URI": archive.uri, "ARCHIVE_MAX_FILE_ROWS": "1",
                                              "ARCHIVE_SPOOL_DIR": str(tmp_path / f"spool-{number}")})
            env = crawl_env({**archive.env, "XDG_CACHE_HOME": str(tmp_path / f"cache-{number}")})
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True))
        for process in processes:
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-3000:]
    finally:
        for site, _ in sites:
            site.stop()
    rows = archive.rows("articles")
    assert Counter(row["canonical_url"] for row in rows) == expected, "every article once"
    assert_no_file_in_two_commits_and_the_table_holds_them_all(archive)
    crawl_ids = {row["crawl_id"] for row in rows}
    assert len(crawl_ids) == 3
    for dataset in DATASETS:
        table = archive.table(dataset)
        history = list(reversed(table.history()))
        assert [h["version"] for h in history] == list(range(len(history))), "versions one after the other"
        writes = Counter(h["news_archive.crawl_id"] for h in history if h["operation"] == "WRITE")
        assert set(writes) <= crawl_ids
        for crawl_id, count in writes.items():  # each writer's commit numbers are 1..n, none lost or doubled
            assert table.transaction_version(crawl_id) == count
        files = Counter(action["add"]["path"].rsplit("/", 1)[1].rsplit("-", 1)[0]
                        for commit in archive.commits(dataset) for action in commit if "add" in action)
        assert files == writes, f"{dataset}: one file per commit of each writer"
        with capsys.disabled():
            print(f"\n{dataset}: {sum(writes.values())} commits by 3 writers at once, table versions 0..{len(history) - 1} "
                  f"one after the other, {sum(files.values())} files each in one commit, "
                  f"{len(archive.rows(dataset))} rows")


# --- runs killed around their commits --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def publisher():
    site = LocalSite()
    spec = build_publisher_site(site.start())
    site.pages = spec.edition(1)
    yield site, spec
    site.stop()


@pytest.mark.parametrize("where", ["published", "committing", "committed"])
def test_a_run_killed_around_a_commit_then_run_again_archives_every_article_once(archive, publisher, tmp_path, where):
    """Killed once its second file is published but before its commit number is written, between its first
    commit and its second (the number written, the commit not made), or just after a commit (before the file left
    the spool): the next run with the same spool commits what is left, once."""
    site, spec = publisher
    start = [spec.url(path) for path in spec.start_paths]
    settings = {"ARCHIVE_URI": archive.uri, "ARCHIVE_MAX_FILE_ROWS": "2", "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool"),
                "EXTENSIONS": json.dumps({"faults.KillAtCommit": 0}), "FAULT_KILL_AT": where, "FAULT_KILL_COMMIT": "2"}
    env = {**archive.env, "PYTHONPATH": str(REPO / "tests"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    killed = run_crawl(tmp_path / "unused", start, settings=settings, env=env)
    assert killed.returncode == -9, killed.stderr[-3000:]
    spooled = [p for p in (tmp_path / "spool").rglob("*.parquet")]
    assert spooled, "the killed run left a file in its spool"
    again = run_crawl(tmp_path / "unused", start, env={**archive.env, "XDG_CACHE_HOME": str(tmp_path / "cache")},
                      settings={"ARCHIVE_URI": archive.uri, "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool")})
    assert again.returncode == 0, again.stderr[-3000:]
    archived = Counter(urlsplit(row["canonical_url"]).path for row in archive.rows("articles"))
    assert archived == Counter(spec.story_paths(1)), "every article exactly once"
    assert_no_file_in_two_commits_and_the_table_holds_them_all(archive)
    assert not [p for p in (tmp_path / "spool").rglob("*") if p.is_file() and p.name != ".lock"], "spool emptied"
