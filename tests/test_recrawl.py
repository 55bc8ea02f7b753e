"""Scheduled re-crawls of a publisher whose site changed overnight (tests/publishersite.py).

Two runs of ``scrapy crawl news``, each a fresh process with nothing kept between them but the archive (a
folder, then ``s3://`` on the moto server): the second archives every article published since the first,
downloads no article page already archived, follows no redirect it knows, requests no dead link again and
archives nothing twice. Every claim is checked on the site's own request log.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from urllib.parse import urlsplit

import pytest

from conftest import read_delta, run_crawl
from crawler.localsite import LocalSite
from publishersite import (ARCHIVE_SITEMAP, FEED, HOME, NEWS_SITEMAP, PAGES_SITEMAP, ROBOTS, SITEMAP_INDEX,
                           build_publisher_site)

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]


class Run:
    """One crawl: its exit code, its log, the site's requests during it, and what the archive holds after it."""

    def __init__(self, result, log, archive_reader) -> None:
        self.returncode, self.stderr = result.returncode, result.stderr
        self.log = log  #: the site's LogEntry list for this run, in order
        self._archive = {name: archive_reader(name) for name in ("articles", "duplicates", "rejects", "runs")}

    @property
    def requested(self) -> Counter:
        return Counter(entry.path for entry in self.log)

    def statuses(self, path: str) -> list[int]:
        return sorted(entry.status for entry in self.log if entry.path == path)

    def rows(self, dataset: str) -> list[dict]:
        """The dataset's rows as they were in the archive right after this run."""
        return self._archive[dataset]

    def manifests(self) -> list[dict]:
        return self._archive["runs"]


def folder_reader(archive):
    def read(dataset: str):
        if dataset == "runs":
            return [json.loads(p.read_text()) for p in sorted((archive / "runs").glob("*.json"))]
        table = read_delta(str(archive / dataset))
        return table.to_pylist() if table is not None else []
    return read


def s3_reader(client, bucket: str, prefix: str, options: dict):
    def read(dataset: str):
        if dataset != "runs":
            table = read_delta(f"s3://{bucket}/{prefix}/{dataset}", options)
            return table.to_pylist() if table is not None else []
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/runs/")
        keys = sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))
        return [json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]
    return read


@pytest.fixture(scope="module")
def publisher():
    site = LocalSite()
    spec = build_publisher_site(site.start())
    yield site, spec
    site.stop()


@pytest.fixture(scope="module", params=["folder", "s3"])
def recrawl(request, publisher, tmp_path_factory):
    """The two runs, into a folder or into a bucket of the moto server."""
    site, spec = publisher
    tmp = tmp_path_factory.mktemp(f"recrawl-{request.param}")
    if request.param == "folder":
        uri, env, reader = str(tmp / "archive"), {}, folder_reader(tmp / "archive")
    else:
        import boto3
        from s3fakes import FAKE_ENV

        moto = request.getfixturevalue("moto_server")
        bucket = f"recrawl-{uuid.uuid4().hex[:12]}"
        client = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                              aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=bucket)
        options = {"AWS_ENDPOINT_URL": moto.url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": FAKE_ENV["AWS_ACCESS_KEY_ID"],
                   "AWS_SECRET_ACCESS_KEY": FAKE_ENV["AWS_SECRET_ACCESS_KEY"]}
        uri, env = f"s3://{bucket}/news", {**FAKE_ENV, "AWS_ENDPOINT_URL": moto.url}
        reader = s3_reader(client, bucket, "news", options)
    runs = []
    for number, edition in enumerate((1, 2), start=1):
        site.pages = spec.edition(edition)
        start = len(site.log)
        result = run_crawl(tmp / "unused", [spec.url(path) for path in spec.start_paths],
                           settings={"ARCHIVE_URI": uri},
                           env={**env, "XDG_CACHE_HOME": str(tmp / f"cache-{number}")})  # a fresh container
        runs.append(Run(result, list(site.log[start:]), reader))
    first, second = runs
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    return spec, first, second


def paths(rows: list[dict], column: str = "canonical_url") -> Counter:
    return Counter(urlsplit(row[column]).path + (f"?{urlsplit(row[column]).query}" if urlsplit(row[column]).query else "")
                   for row in rows)


def second_run_id(first, second) -> str:
    ids = {m["crawl_id"] for m in second.manifests()} - {m["crawl_id"] for m in first.manifests()}
    [crawl_id] = ids
    return crawl_id


def test_the_first_run_archives_every_story_once_under_its_canonical_url(recrawl):
    spec, first, _ = recrawl
    [manifest] = first.manifests()
    archived = paths(first.rows("articles"))
    assert archived == Counter(spec.story_paths(1))
    for row in first.rows("articles"):
        assert row["canonical_url"] == spec.url(urlsplit(row["canonical_url"]).path)
    assert manifest["status"] == "complete" and manifest["counts"]["new_articles"] == 20


def test_the_second_run_archives_every_new_article_and_nothing_twice(recrawl):
    spec, first, second = recrawl
    crawl_id = second_run_id(first, second)
    rows = second.rows("articles")
    new = [row for row in rows if row["crawl_id"] == crawl_id]
    assert paths(new) == Counter(s.path for s in spec.new_in(2)), "every article published since the first run"
    assert paths(rows) == Counter(spec.story_paths(2)), "each story once over both runs"
    manifest = next(m for m in second.manifests() if m["crawl_id"] == crawl_id)
    assert manifest["counts"]["new_articles"] == manifest["counts"]["articles_written"] == 12


def test_the_second_run_downloads_no_known_article_and_follows_no_known_redirect(recrawl):
    spec, _, second = recrawl
    for story in spec.stories_in(1):
        requested = {path: second.requested[path] for path in spec.variant_paths(story) if second.requested[path]}
        assert requested == {}, (story.path, requested)


def test_the_second_run_requests_no_dead_link_again(recrawl):
    spec, first, second = recrawl
    dead_in_first = {path for path in spec.dead_paths if first.requested[path]}
    assert dead_in_first == set(spec.dead_paths), "the first run met every dead link"
    assert spec.deleted_short_path in first.requested
    again = {path: second.requested[path] for path in [*dead_in_first, spec.deleted_short_path] if second.requested[path]}
    assert again == {}


def test_the_unchanged_index_answers_304_and_still_leads_to_its_changed_news_sitemap(recrawl):
    spec, first, second = recrawl
    assert first.statuses(SITEMAP_INDEX) == [200]
    assert second.statuses(SITEMAP_INDEX) == [304]
    assert second.statuses(ROBOTS) == [200, 304], "Scrapy's robots.txt check, then the start URL conditionally"
    assert second.statuses(NEWS_SITEMAP) == [200] and second.statuses(FEED) == [200], "both changed overnight"
    # the index dates the archive and pages sitemaps before the first run read them: not asked again
    assert first.statuses(ARCHIVE_SITEMAP) == [200] and first.statuses(PAGES_SITEMAP) == [200]
    assert second.requested[ARCHIVE_SITEMAP] == second.requested[PAGES_SITEMAP] == 0
    [index] = [entry for entry in second.log if entry.path == SITEMAP_INDEX]
    assert index.if_none_match and index.if_modified_since, "asked with both of the first run's validators"
    assert second.statuses(HOME) == [200], "a listing page is always fetched"


def test_the_partner_copy_appearing_later_is_a_duplicate_of_the_archived_story(recrawl):
    spec, first, second = recrawl
    crawl_id = second_run_id(first, second)
    [first_id] = {m["crawl_id"] for m in first.manifests()}
    assert second.statuses(spec.offsite_canonical_variant) == [200]
    later = [row for row in second.rows("duplicates") if row["crawl_id"] == crawl_id]
    assert [(urlsplit(r["url"]).path, r["kind"], r["fetched"]) for r in later] == [
        (spec.offsite_canonical_variant, "exact", True)]
    assert later[0]["duplicate_of_url"] == spec.url(spec.offsite_variant_of.path)
    assert later[0]["duplicate_of_crawl_id"] == first_id


def test_the_manifest_counts_what_was_skipped_and_why(recrawl):
    spec, first, second = recrawl
    crawl_id = second_run_id(first, second)
    counts = next(m for m in second.manifests() if m["crawl_id"] == crawl_id)["counts"]
    requested_paths = set(second.requested)
    linked_old = {href for story in spec.stories_in(1) for page, hrefs in story.links.get(2, {}).items()
                  if page in requested_paths for href in hrefs}
    assert counts["skipped_known"] + counts["skipped_alias"] >= len(linked_old) > 0
    assert counts["skipped_alias"] > 0 and counts["skipped_failed"] > 0
    assert counts["skipped_unchanged_sitemaps"] == 2
    assert counts["redirects_to_known"] == 0, "known redirects are not even requested"


def test_no_duplicates_row_names_itself_as_its_original(recrawl):
    _, _, second = recrawl
    rows = second.rows("duplicates")
    assert rows
    for row in rows:
        assert row["url"] != row["duplicate_of_url"], row
        if not row["fetched"] and row["redirect_urls"]:
            assert row["redirect_urls"][0] == row["url"], row


def test_figures(recrawl, capsys):
    """The figures the issue asks for, printed (``pytest -s -k figures``)."""
    spec, first, second = recrawl
    crawl_id = second_run_id(first, second)
    new = [row for row in second.rows("articles") if row["crawl_id"] == crawl_id]
    known_pages = {p for s in spec.stories_in(1) for p in (s.path, s.amp_path)}
    known_redirects = {p for s in spec.stories_in(1) for p in spec.variant_paths(s)} - known_pages
    redirects_followed = sum(1 for e in second.log if 300 <= e.status < 400)
    with capsys.disabled():
        print(f"\nsecond run: new articles archived {len(new)} / published {len(spec.new_in(2))}; "
              f"known article pages downloaded {sum(second.requested[p] for p in known_pages)}; "
              f"known redirects followed {sum(second.requested[p] for p in known_redirects)} "
              f"(redirects answered in all: {redirects_followed}, of new stories); "
              f"dead links requested {sum(second.requested[p] for p in spec.dead_paths)}; "
              f"requests {len(second.log)} against the first run's {len(first.log)}")
    assert len(new) == len(spec.new_in(2))
