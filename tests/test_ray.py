"""Batch stages on Ray: re-extraction as one task per WARC file on a local Ray cluster (two CPUs, loopback only)
gives exactly the rows the local pool gives, and a rerun skips every file whose work is committed."""

from __future__ import annotations

import shutil

import pytest

from conftest import ArchiveTarget, news_archive, run_crawl
from newssite import START_PATHS
from pipelines.storage import LocalStore
import test_backfill

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]

#: columns that say when and by which run a row was made: they differ between any two runs
RUN_COLUMNS = {"crawl_id", "extracted_at", "detected_at"}
cc_news = test_backfill.cc_news  # the CC-NEWS-style files (a module fixture of tests/test_backfill.py)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of two CPUs on 127.0.0.1, for the module; its address for the command line."""
    from pipelines.ray_tasks import connect

    context = connect(num_cpus=2)  # on 127.0.0.1 only
    address = context.address_info["gcs_address"]
    assert address.startswith("127.0.0.1:"), address
    yield address
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def several_warc_files(news_site, tmp_path_factory):
    """The news site crawled once with small WARC files (several of them), kept as a template to copy."""
    site, _ = news_site
    tmp = tmp_path_factory.mktemp("ray-crawl")
    result = run_crawl(tmp / "archive", [site.base_url + path for path in START_PATHS],
                       settings={"ARCHIVE_WARC_MAX_FILE_BYTES": "150000", "ARCHIVE_SPOOL_DIR": str(tmp / "spool")})
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted((tmp / "archive" / "warc").rglob("*.warc.gz"))
    assert len(files) >= 3, files
    return tmp / "archive"


def copy_of(template, tmp_path, name: str) -> ArchiveTarget:
    shutil.copytree(template, tmp_path / name)
    return ArchiveTarget(str(tmp_path / name), {}, {}, LocalStore(tmp_path / name))


def comparable(rows: list[dict]) -> list[tuple]:
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items() if k not in RUN_COLUMNS)) for row in rows)


def test_reextraction_on_ray_gives_the_rows_of_the_local_pool(several_warc_files, ray_cluster, tmp_path):
    local, on_ray = copy_of(several_warc_files, tmp_path, "local"), copy_of(several_warc_files, tmp_path, "ray")
    warc_files = len(list((tmp_path / "ray" / "warc").rglob("*.warc.gz")))
    with_articles = len({row["warc_filename"] for row in local.rows("articles")})  # the others hold rejects only
    assert 3 <= with_articles <= warc_files
    by_pool = news_archive(local, tmp_path / "l", "reextract", local.uri, "--favor-precision")
    assert by_pool.returncode == 0, by_pool.stderr[-3000:]
    by_ray = news_archive(on_ray, tmp_path / "r", "reextract", on_ray.uri, "--favor-precision",
                          "--ray-address", ray_cluster)
    assert by_ray.returncode == 0, by_ray.stdout[-2000:] + by_ray.stderr[-3000:]
    lines = by_ray.stdout.strip().splitlines()
    assert lines[0] == (f"reextract on Ray: {with_articles} WARC file(s) to re-extract, "
                        f"{warc_files - with_articles} with nothing left to do")
    assert lines[-1] == f"reextract on Ray: {with_articles} task(s) done, 0 failed, {warc_files - with_articles} skipped"
    for dataset in ("articles", "duplicates", "rejects"):
        assert comparable(on_ray.rows(dataset)) == comparable(local.rows(dataset)), dataset
    new_rows = [row for row in on_ray.rows("articles") if "-reextract-" in row["crawl_id"]]
    assert len({row["crawl_id"] for row in new_rows}) == with_articles, "one run (and writer) per WARC file"

    again = news_archive(on_ray, tmp_path / "r2", "reextract", on_ray.uri, "--favor-precision",
                         "--ray-address", ray_cluster)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[0] == \
        f"reextract on Ray: 0 WARC file(s) to re-extract, {warc_files} with nothing left to do"
    assert comparable(on_ray.rows("articles")) == comparable(local.rows("articles")), "the rerun added nothing"


@pytest.fixture(scope="module")
def archive_with_copies(tmp_path_factory):
    """Two workers that archived one story at once (each its site's copy, answered once both asked), into one
    folder archive: the dedup stage has a copy to find."""
    import threading

    from conftest import RunningCrawl, crawl_command, crawl_env
    from crawler.localsite import LocalSite
    from newssite import corpus_page, select_corpus_articles
    from test_shard_workers import front_page, syndicated_copy

    tmp = tmp_path_factory.mktemp("ray-copies")
    records = select_corpus_articles(5, 0)
    held = threading.Event()
    sites = []
    for number, host in enumerate(("127.0.0.10", "127.0.0.11")):
        site = LocalSite(host=host)
        site.start()
        story = corpus_page(records[0]) if number == 0 else syndicated_copy(corpus_page(records[0]))
        story.hold = held
        own = records[1 + 2 * number:3 + 2 * number]
        paths = [f"/news/{rec.id.lower()}/" for rec in own] + ["/story/"]
        site.pages.update({path: corpus_page(rec) for path, rec in zip(paths, own)})
        site.pages["/story/"] = story
        site.pages["/"] = front_page(paths)
        sites.append(site)
    workers = [RunningCrawl(crawl_command(tmp / "archive", [site.base_url + "/"], settings={
        "ARCHIVE_SPOOL_DIR": str(tmp / f"spool-{n}"), "ARCHIVE_STATE_REFRESH_SECONDS": "0"}), crawl_env())
        for n, site in enumerate(sites)]
    try:
        for site in sites:
            assert site.wait_for(lambda s: s.requests["/story/"] >= 1, timeout=120)
        held.set()
        for worker in workers:
            stderr = worker.finish(timeout=300)
            assert worker.process.returncode == 0, stderr[-3000:]
    finally:
        held.set()
        for worker in workers:
            worker.kill()
        for site in sites:
            site.stop()
    return tmp / "archive"


def test_the_dedup_stage_on_ray_gives_the_rows_of_a_local_pass(archive_with_copies, ray_cluster, tmp_path):
    local, on_ray = copy_of(archive_with_copies, tmp_path, "local"), copy_of(archive_with_copies, tmp_path, "ray")
    before = local.rows("articles")
    articles, days = len(before), len({row["fetched_at"].date() for row in before})  # dt: the day of the fetch
    by_pass = news_archive(local, tmp_path / "l", "dedup", local.uri)
    assert by_pass.returncode == 0, by_pass.stderr[-3000:]
    by_ray = news_archive(on_ray, tmp_path / "r", "dedup", on_ray.uri, "--ray-address", ray_cluster)
    assert by_ray.returncode == 0, by_ray.stderr[-3000:]
    line = (f"dedup: {articles} articles read, 1 copies found (0 exact, 1 near), 1 recorded in duplicates, "
            f"1 article rows removed")
    assert by_pass.stdout.strip().splitlines()[-1] == by_ray.stdout.strip().splitlines()[-1] == line
    for dataset in ("articles", "duplicates", "rejects"):
        assert comparable(on_ray.rows(dataset)) == comparable(local.rows(dataset)), dataset
    assert [row["detected_by"] for row in on_ray.rows("duplicates")] == ["dedup"]
    assert by_ray.stdout.strip().splitlines()[0] == f"dedup on Ray: {days} partition(s) of articles read as {days} task(s)"


def test_backfill_on_ray_then_the_dedup_stage_archives_what_a_local_backfill_does(cc_news, ray_cluster, tmp_path):
    """One task per WARC file: two tasks that meet one story in different files at once may each archive it (the
    local run, reading the files in turn, records the second as a duplicate); after the dedup stage the articles
    and the duplicate pages are the same."""
    from conftest import archive_target
    from test_backfill import SINCE, SITES, UNTIL

    _, _, folder, expected = cc_news
    files = sorted(str(path) for path in folder.glob("*.warc.gz"))
    outside = [path for path in files if "-2023" in path]  # a file of September 2023: before SINCE, never read
    assert len(outside) == 1
    (tmp_path / "l").mkdir(), (tmp_path / "r").mkdir()
    local, on_ray = archive_target("folder", tmp_path / "l"), archive_target("folder", tmp_path / "r")
    common = ["--start-urls", SITES, "--since", SINCE, "--until", UNTIL]
    by_run = news_archive(local, tmp_path / "l", "backfill", str(folder), "--archive", local.uri, *common)
    assert by_run.returncode == 0, by_run.stderr[-3000:]
    by_ray = news_archive(on_ray, tmp_path / "r", "backfill", str(folder), "--archive", on_ray.uri, *common,
                          "--ray-address", ray_cluster)
    assert by_ray.returncode == 0, by_ray.stdout[-2000:] + by_ray.stderr[-3000:]
    lines = by_ray.stdout.strip().splitlines()
    assert lines[0] == f"backfill on Ray: {len(files) - 1} WARC file(s) to read, 0 read by earlier backfills, 1 outside the dates"
    assert lines[-1] == f"backfill on Ray: {len(files) - 1} task(s) done, 0 failed, 1 skipped"
    dedup = news_archive(on_ray, tmp_path / "r", "dedup", on_ray.uri, "--since", SINCE)
    assert dedup.returncode == 0, dedup.stderr[-3000:]
    assert sorted(row["url"] for row in on_ray.rows("articles")) == expected["articles"] == \
        sorted(row["url"] for row in local.rows("articles"))
    assert sorted(row["url"] for row in on_ray.rows("duplicates")) == expected["duplicates"] == \
        sorted(row["url"] for row in local.rows("duplicates"))
    assert sorted(row["reason"] for row in on_ray.rows("rejects")) == sorted(row["reason"] for row in local.rows("rejects"))
    again = news_archive(on_ray, tmp_path / "r", "backfill", str(folder), "--archive", on_ray.uri, *common,
                         "--ray-address", ray_cluster)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[0] == \
        f"backfill on Ray: 0 WARC file(s) to read, {len(files) - 1} read by earlier backfills, 1 outside the dates"
