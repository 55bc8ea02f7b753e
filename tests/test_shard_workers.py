"""Crawl workers side by side on one archive: a worker reads what the others commit while it runs
(ARCHIVE_STATE_REFRESH_SECONDS), so their articles are duplicates there, not second rows."""

from __future__ import annotations

import re
import threading

import pytest

from conftest import RunningCrawl, crawl_command, crawl_env, read_delta, run_crawl
from crawler.localsite import LocalSite, Page
from newssite import corpus_page, select_corpus_articles

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]


def front_page(paths: list[str]) -> Page:
    links = "".join(f'<li><a href="{path}">story</a></li>' for path in paths)
    return Page(body=f"<html><body><h1>Front page</h1><ul>{links}</ul></body></html>".encode())


@pytest.mark.parametrize("refresh", [True, False], ids=["refreshed", "read-once"])
def test_a_worker_sees_what_another_committed_while_it_runs(tmp_path, refresh):
    """Worker B is fetching a copy of a story when worker A commits the original: with the refresh, B reads A's
    commit before its page is answered and records the copy as an exact duplicate of A's row; reading the
    archive only at start, it writes a second row (what the dedup stage is then for)."""
    story = select_corpus_articles(1, 0)[0]
    held = threading.Event()
    site_a, site_b = LocalSite(host="127.0.0.8"), LocalSite(host="127.0.0.9")
    base_a, base_b = site_a.start(), site_b.start()
    site_a.pages.update({"/": front_page(["/news/original/"]), "/news/original/": corpus_page(story)})
    copy = corpus_page(story)
    copy.hold = held
    site_b.pages.update({"/": front_page(["/wire/copy/"]), "/wire/copy/": copy})
    archive = tmp_path / "archive"
    settings = {"ARCHIVE_STATE_REFRESH_SECONDS": "0.2" if refresh else "0"}
    worker_b = RunningCrawl(crawl_command(archive, [site_b.base_url + "/"],
                                          settings={**settings, "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool-b")}),
                            crawl_env())
    try:
        assert site_b.wait_for(lambda site: site.requests["/wire/copy/"] >= 1, timeout=120), worker_b.stderr[-3000:]
        worker_a = run_crawl(archive, [site_a.base_url + "/"], settings={"ARCHIVE_SPOOL_DIR": str(tmp_path / "spool-a")})
        assert worker_a.returncode == 0, worker_a.stderr[-3000:]
        if refresh:  # A's commits land one table at a time: a refresh may read its rejects before its articles
            worker_b.wait_for_line("other writers committed (1 article rows)")  # before B's page is answered
        held.set()
        stderr = worker_b.finish()
        assert worker_b.process.returncode == 0, stderr[-3000:]
        if refresh:  # A's one article row, read once over all of B's refreshes
            assert sum(map(int, re.findall(r"other writers committed \((\d+) article rows\)", stderr))) == 1
    finally:
        held.set()
        worker_b.kill()
        site_a.stop(), site_b.stop()
    articles = read_delta(str(archive / "articles")).to_pylist()
    duplicates = read_delta(str(archive / "duplicates"))
    original = f"{base_a}/news/original/"
    if refresh:
        assert [row["canonical_url"] for row in articles] == [original]
        assert [(row["url"], row["kind"], row["duplicate_of_url"], row["detected_by"])
                for row in duplicates.to_pylist()] == [(f"{base_b}/wire/copy/", "exact", original, "crawl")]
    else:
        assert sorted(row["canonical_url"] for row in articles) == sorted([original, f"{base_b}/wire/copy/"])
        assert duplicates is None or duplicates.num_rows == 0


# --- three workers, six sites, one s3:// archive, then the dedup stage ------------------------------------------

#: the six sites' hosts and the shard of 3 each falls in (SHA-256 of the host: an IP has no registered domain)
HOSTS = {"127.0.0.2": 2, "127.0.0.3": 1, "127.0.0.4": 1, "127.0.0.5": 0, "127.0.0.6": 2, "127.0.0.7": 0}
#: the story syndicated by two sites of different shards: the original and a wire copy with a credit line added
SYNDICATED = ("127.0.0.2", "127.0.0.5")


def syndicated_copy(page: Page) -> Page:
    html = page.body.decode("utf-8")
    credit = "<p>This story was first published by our partner newsroom and is republished with permission.</p>"
    index = html.lower().rfind("</article>")
    index = index if index >= 0 else html.lower().rfind("</body>")
    return Page(body=(html[:index] + credit + html[index:]).encode("utf-8"), content_type=page.content_type)


def test_three_shard_workers_then_the_dedup_stage(tmp_path, moto_server, capsys):
    from conftest import archive_target, news_archive

    records = select_corpus_articles(13, 0)
    story, own = records[0], records[1:]
    held = threading.Event()
    sites, expected = {}, set()
    for number, host in enumerate(HOSTS):
        site = LocalSite(host=host)
        base = site.start()
        paths = [f"/news/{rec.id.lower()}/" for rec in own[2 * number:2 * number + 2]]
        site.pages.update({path: corpus_page(rec) for path, rec in zip(paths, own[2 * number:2 * number + 2])})
        if host in SYNDICATED:
            page = corpus_page(story) if host == SYNDICATED[0] else syndicated_copy(corpus_page(story))
            page.hold = held  # answered once both workers asked: neither has the other's commit yet
            paths.append("/world/syndicated-story/")
            site.pages[paths[-1]] = page
        site.pages["/"] = front_page(paths)
        sites[host] = site
        expected |= {f"{base}{path}" for path in paths}
    target = archive_target("s3", tmp_path, moto_server)
    start = ",".join(f"{site.base_url}/" for site in sites.values())
    workers = []
    try:
        for shard in range(3):
            command = crawl_command(tmp_path / "unused", spider_args={"start_urls": start}, settings={
                "ARCHIVE_URI": target.uri, "CRAWL_SHARD": f"{shard}/3", "ARCHIVE_STATE_REFRESH_SECONDS": "0",
                "ARCHIVE_SPOOL_DIR": str(tmp_path / f"spool-{shard}"), "CRAWL_CONTACT": f"worker-{shard}@example.invalid"})
            workers.append(RunningCrawl(command, crawl_env({**target.env, "XDG_CACHE_HOME": str(tmp_path / f"cache-{shard}")})))
        for host in SYNDICATED:
            assert sites[host].wait_for(lambda site: site.requests["/world/syndicated-story/"] >= 1, timeout=120), \
                "\n".join(worker.stderr[-2000:] for worker in workers)
        held.set()
        for worker in workers:
            stderr = worker.finish(timeout=300)
            assert worker.process.returncode == 0, stderr[-3000:]
    finally:
        held.set()
        for worker in workers:
            worker.kill()
        for site in sites.values():
            site.stop()

    # each site was crawled by exactly one worker: the one its shard names
    by_site = {}
    for host, site in sites.items():
        agents = {entry.user_agent for entry in site.log}
        assert len(agents) == 1, (host, agents)
        by_site[host] = next(iter(agents))
        assert f"worker-{HOSTS[host]}@example.invalid" in by_site[host], (host, by_site[host])
    requests = {host: len(site.log) for host, site in sites.items()}

    before = target.rows("articles")
    assert sorted(row["canonical_url"] for row in before) == sorted(expected), "each article once, the copy too"
    assert target.rows("duplicates") == []
    pair = sorted((row for row in before if row["canonical_url"].endswith("/world/syndicated-story/")),
                  key=lambda row: (row["first_seen_at"], row["article_id"]))
    assert len(pair) == 2 and len({row["crawl_id"] for row in pair}) == 2, "two workers archived the story"
    kept, copy = pair

    result = news_archive(target, tmp_path, "dedup", target.uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == (
        f"dedup: {len(expected)} articles read, 1 copies found (0 exact, 1 near), 1 recorded in duplicates, "
        f"1 article rows removed")
    after = target.rows("articles")
    assert sorted(row["canonical_url"] for row in after) == sorted(expected - {copy["canonical_url"]})
    duplicates = target.rows("duplicates")
    assert [(d["canonical_url"], d["kind"], d["duplicate_of_id"], d["duplicate_of_crawl_id"], d["detected_by"])
            for d in duplicates] == [(copy["canonical_url"], "near", kept["article_id"], kept["crawl_id"], "dedup")]
    assert 0 < duplicates[0]["distance"] <= 7
    assert duplicates[0]["warc_filename"] == copy["warc_filename"]  # the copy's raw page stays reachable

    again = news_archive(target, tmp_path, "dedup", target.uri)  # idempotent
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1].startswith(f"dedup: {len(expected) - 1} articles read, 0 copies found")
    assert len(target.rows("duplicates")) == 1 and len(target.rows("articles")) == len(expected) - 1
    with capsys.disabled():
        print("\nthree workers: requests per site (worker) "
              + ", ".join(f"{host}: {requests[host]} (shard {HOSTS[host]})" for host in HOSTS)
              + f"; articles {len(before)} rows before the dedup stage, {len(after)} after; duplicates: "
              f"{duplicates[0]['kind']} at distance {duplicates[0]['distance']}, detected_by {duplicates[0]['detected_by']}")


def test_a_shard_worker_killed_mid_run_costs_only_its_own_uncommitted_work(tmp_path):
    """Worker 0 of 2 is killed while a page of its site is being answered; worker 1 ends as if alone; the next run
    of shard 0 (the same spool) archives its site's articles, each once, and nothing of the other site again."""
    records = select_corpus_articles(4, 0)
    held = threading.Event()
    sites = {}
    for host, own in (("127.0.0.13", records[:2]), ("127.0.0.12", records[2:])):  # shard 0 and shard 1 of 2
        site = LocalSite(host=host)
        base = site.start()
        paths = [f"/news/{rec.id.lower()}/" for rec in own]
        site.pages.update({path: corpus_page(rec) for path, rec in zip(paths, own)})
        site.pages["/"] = front_page(paths)
        sites[host] = (site, {f"{base}{path}" for path in paths}, paths)
    victim, victim_urls, victim_paths = sites["127.0.0.13"]
    victim.pages[victim_paths[1]].hold = held
    archive = tmp_path / "archive"
    start = ",".join(f"{site.base_url}/" for site, _, _ in sites.values())

    def worker(shard: int) -> RunningCrawl:
        return RunningCrawl(crawl_command(archive, spider_args={"start_urls": start}, settings={
            "CRAWL_SHARD": f"{shard}/2", "ARCHIVE_SPOOL_DIR": str(tmp_path / f"spool-{shard}")}), crawl_env())

    killed, other = worker(0), worker(1)
    try:
        assert victim.wait_for(lambda site: site.requests[victim_paths[1]] >= 1, timeout=120), killed.stderr[-3000:]
        killed.process.kill()
        killed.finish()
        stderr = other.finish(timeout=300)
        assert other.process.returncode == 0, stderr[-3000:]
        held.set()
        after_kill = {row["canonical_url"] for row in read_delta(str(archive / "articles")).to_pylist()}
        assert after_kill & sites["127.0.0.12"][1] == sites["127.0.0.12"][1], "the other worker archived its site"
        assert not after_kill & victim_urls, "the killed run committed nothing (its files close at its end)"
        rerun = run_crawl(archive, spider_args={"start_urls": start}, settings={
            "CRAWL_SHARD": "0/2", "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool-0")})
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    finally:
        held.set()
        killed.kill(), other.kill()
        for site, _, _ in sites.values():
            site.stop()
    rows = [row["canonical_url"] for row in read_delta(str(archive / "articles")).to_pylist()]
    assert sorted(rows) == sorted(victim_urls | sites["127.0.0.12"][1]), "every article of both sites once"
    assert all(entry.path in {"/", "/robots.txt", *sites["127.0.0.12"][2]} or entry.status == 404
               for entry in sites["127.0.0.12"][0].log), "the other site's articles were not fetched again"
    assert sum(entry.path in sites["127.0.0.12"][2] for entry in sites["127.0.0.12"][0].log) == 2
