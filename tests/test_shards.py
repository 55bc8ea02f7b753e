"""Sharding by site (crawler/shards.py) and the CPUs a worker may use (pipelines/cpus.py): unit tests, and the
refusal of a bad shard setting before any fetch."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from conftest import run_crawl
from crawler.shards import Shard, parse_shard, shard_from_settings, shard_of
from crawler.sites import Site
from pipelines.cpus import cgroup_cpu_limit, usable_cpus
from pipelines.exceptions import ArchiveConfigError
from scrapy.settings import Settings


def test_a_domain_always_falls_in_the_same_shard():
    # pinned: a site must not move between workers from one release (or machine, or Python) to the next
    assert [shard_of(domain, 3) for domain in ("example.com", "bbc.co.uk", "127.0.0.2", "127.0.0.5")] == [1, 2, 2, 0]
    assert shard_of("Example.COM", 3) == shard_of("example.com", 3)
    assert {shard_of(f"site{n}.example", 1) for n in range(50)} == {0}


def test_shards_share_the_sites_evenly():
    counts = Counter(shard_of(f"publisher-{n}.example", 4) for n in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(900 <= count <= 1100 for count in counts.values()), counts


def test_a_site_is_sharded_by_its_registered_domain():
    site = Site(name="Example", start_urls=["https://www.example.co.uk/news", "https://feeds.example.co.uk/rss"])
    assert site.shard_key == "example.co.uk"
    shards = [Shard(i, 5) for i in range(5)]
    assert [shard.holds(site.shard_key) for shard in shards].count(True) == 1


@pytest.mark.parametrize("value, expected", [("0/3", Shard(0, 3)), ("2/3", Shard(2, 3)), (" 1 / 2 ", Shard(1, 2)),
                                             ("0/1", Shard(0, 1))])
def test_parse_shard(value, expected):
    assert parse_shard(value) == expected


@pytest.mark.parametrize("value, message", [("3/3", "below the number of shards"), ("0/0", "at least 1"),
                                            ("one/three", "must be i/N"), ("-1/3", "must be i/N"), ("1", "must be i/N")])
def test_bad_shard_is_refused(value, message):
    with pytest.raises(ArchiveConfigError, match=message):
        parse_shard(value)


def test_shard_from_an_indexed_job():
    assert shard_from_settings(Settings({"CRAWL_SHARDS": "4", "JOB_COMPLETION_INDEX": "3"})) == Shard(3, 4)
    # CRAWL_SHARD wins over the Job's index
    assert shard_from_settings(Settings({"CRAWL_SHARD": "0/2", "CRAWL_SHARDS": "4", "JOB_COMPLETION_INDEX": "3"})) \
        == Shard(0, 2)
    assert shard_from_settings(Settings({})) is None
    with pytest.raises(ArchiveConfigError, match="no shard index"):
        shard_from_settings(Settings({"CRAWL_SHARDS": "4"}))
    with pytest.raises(ArchiveConfigError, match="below the number"):
        shard_from_settings(Settings({"CRAWL_SHARDS": "4", "JOB_COMPLETION_INDEX": "4"}))


@pytest.mark.slow
@pytest.mark.needs_corpus
@pytest.mark.parametrize("settings, env", [
    ({"CRAWL_SHARD": "3/3"}, {}),
    ({"CRAWL_SHARD": "0/0"}, {}),
    ({"CRAWL_SHARD": "first"}, {}),
    ({}, {"CRAWL_SHARDS": "3", "JOB_COMPLETION_INDEX": "5"}),
], ids=["index-too-large", "no-shards", "text", "job-index-too-large"])
def test_a_bad_shard_setting_is_refused_before_any_fetch(news_site, tmp_path, settings, env):
    site, _ = news_site
    before = sum(site.requests.values())
    result = run_crawl(tmp_path / "archive", [site.base_url + "/"], settings=settings, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("news-archive: ") and "Traceback" not in result.stderr
    assert ("CRAWL_SHARD" in last) or ("JOB_COMPLETION_INDEX" in last), last
    assert sum(site.requests.values()) == before
    assert not (tmp_path / "archive").exists()


# --- the CPUs a worker may use ---------------------------------------------------------------------------------

def cgroup_v2(tmp_path, limits: dict[str, str], path: str = "/kubepods/pod1/crawler"):
    root = tmp_path / "cgroup"
    for folder, value in limits.items():
        (root / folder.strip("/")).mkdir(parents=True, exist_ok=True)
        (root / folder.strip("/") / "cpu.max").write_text(value + "\n")
    (root / path.strip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(f"0::{path}\n")
    return root, proc


def test_cgroup_v2_quota_of_the_cgroup_and_its_ancestors(tmp_path):
    root, proc = cgroup_v2(tmp_path, {"kubepods/pod1/crawler": "max 100000", "kubepods/pod1": "150000 100000",
                                      "kubepods": "800000 100000"})
    assert cgroup_cpu_limit(root, proc) == 1.5
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == min(2, len(os.sched_getaffinity(0)))  # 1.5 rounds up


def test_cgroup_v2_in_a_container_namespace(tmp_path):
    # in a container the cgroup namespace puts the pod's cgroup at the mount's root: /proc says "0::/"
    root, proc = cgroup_v2(tmp_path, {"": "100000 100000"}, path="/")
    assert cgroup_cpu_limit(root, proc) == 1.0
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == 1


def test_no_quota_leaves_the_affinity(tmp_path):
    root, proc = cgroup_v2(tmp_path, {"": "max 100000"}, path="/")
    assert cgroup_cpu_limit(root, proc) is None
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == len(os.sched_getaffinity(0))
    assert usable_cpus(cgroup_root=tmp_path / "none", proc_cgroup=tmp_path / "none") == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota(tmp_path):
    root = tmp_path / "cgroup"
    cpu = root / "cpu,cpuacct" / "docker" / "abc"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cgroup_cpu_limit(root, proc) == 0.5
    assert usable_cpus(cgroup_root=root, proc_cgroup=proc) == 1  # never below one worker
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(root, proc) is None


def test_extraction_workers_follow_the_cpu_limit(tmp_path, monkeypatch):
    from pipelines import extract

    monkeypatch.setattr(extract, "usable_cpus", lambda: 3)
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(settings_dict={"ARCHIVE_CRAWL_ID": "20261202T000000Z-abcdef", "EXTRACT_WORKERS": -1})
    assert extract.ExtractPipeline.from_crawler(crawler).workers == 3
    crawler = get_crawler(settings_dict={"ARCHIVE_CRAWL_ID": "20261202T000000Z-abcdef", "EXTRACT_WORKERS": 1})
    assert extract.ExtractPipeline.from_crawler(crawler).workers == 1
