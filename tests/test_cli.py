"""`scrapy crawl news` as a scheduler sees it: arguments, sites files, refusals and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, TEST_SETTINGS, crawl_env, run_crawl
from newssite import REFERENCE_PATH

pytestmark = [pytest.mark.slow, pytest.mark.needs_corpus]


def assert_one_line_refusal(stderr: str) -> str:
    """A refusal is one line on stderr, no traceback; returns that line."""
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("news-archive: "), last
    return last


@pytest.mark.parametrize("uri", ["s3://", "ftp://example.com/archive", "sftp://host/x"])
def test_bad_archive_uri_is_refused_before_any_fetch(news_site, tmp_path, uri):
    site, _ = news_site
    before = sum(site.requests.values())
    result = run_crawl(tmp_path / "unused", [site.base_url + "/"], settings={"ARCHIVE_URI": uri})
    assert result.returncode == 2
    assert_one_line_refusal(result.stderr)
    assert sum(site.requests.values()) == before


def test_unwritable_archive_folder_is_refused_before_any_fetch(news_site, tmp_path):
    site, _ = news_site
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    before = sum(site.requests.values())
    result = run_crawl(blocker / "archive", [site.base_url + "/"])
    assert result.returncode == 2
    assert "not writable" in assert_one_line_refusal(result.stderr)
    assert sum(site.requests.values()) == before


def test_unusable_frontier_folder_is_refused_before_any_fetch(news_site, tmp_path):
    site, _ = news_site
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    before = sum(site.requests.values())
    result = run_crawl(tmp_path / "archive", [site.base_url + "/"], settings={"CRAWL_FRONTIER_DIR": str(blocker / "frontier")})
    assert result.returncode == 2
    assert "CRAWL_FRONTIER_DIR" in assert_one_line_refusal(result.stderr)
    assert sum(site.requests.values()) == before


def test_missing_start_urls_is_a_clear_error(tmp_path):
    result = run_crawl(tmp_path / "archive")
    assert result.returncode == 2
    assert "start_urls" in assert_one_line_refusal(result.stderr)


def test_archive_uri_from_the_environment(news_site, tmp_path):
    site, _ = news_site
    archive = tmp_path / "from-env"
    # run_crawl passes ARCHIVE_URI with -s; here the environment alone must set it
    command = [sys.executable, "-m", "scrapy", "crawl", "news", "-a", f"start_urls={site.base_url}{REFERENCE_PATH}"]
    for name, value in TEST_SETTINGS.items():
        command += ["-s", f"{name}={value}"]
    env = crawl_env({"ARCHIVE_URI": archive.as_uri()})
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert len(list(archive.glob("articles/dt=*/*.parquet"))) == 1
    assert len(list(archive.glob("runs/*.json"))) == 1


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_sites_file_with_allow_and_deny(news_site, tmp_path, suffix):
    site, spec = news_site
    base = site.base_url
    sites_file = tmp_path / f"sites{suffix}"
    if suffix == ".yaml":
        sites_file.write_text(
            f"sites:\n  - name: Diplomatic Times\n    start_urls: ['{base}/']\n"
            f"    deny: ['/syndication/', '/amp/', '/partners/']\n"
        )
    else:
        sites_file.write_text(
            f'[[sites]]\nname = "Diplomatic Times"\nstart_urls = ["{base}/"]\n'
            f'deny = ["/syndication/", "/amp/", "/partners/"]\n'
        )
    result = run_crawl(tmp_path / "archive", spider_args={"sites": str(sites_file)})
    assert result.returncode == 0, result.stderr[-2000:]
    urls = [r["url"] for r in result.rows("articles")] + [r["url"] for r in result.rows("duplicates")]
    assert urls and not [u for u in urls if "/syndication/" in u or "/amp/" in u or "/partners/" in u]
    assert any(REFERENCE_PATH in u for u in urls)
    [manifest] = result.manifests()
    assert manifest["spider_args"]["sites"] == str(sites_file)


def test_bad_sites_file_is_refused(tmp_path):
    sites_file = tmp_path / "sites.yaml"
    sites_file.write_text("sites:\n  - name: no urls\n")
    result = run_crawl(tmp_path / "archive", spider_args={"sites": str(sites_file)})
    assert result.returncode == 2
    assert "needs start_urls" in assert_one_line_refusal(result.stderr)


def test_exit_code_is_non_zero_when_files_cannot_be_published(news_site, tmp_path):
    site, _ = news_site
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "articles").write_text("a file where the articles folder should be")
    result = run_crawl(archive, [site.base_url + REFERENCE_PATH])
    assert result.returncode == 1
    assert "archive was not fully written" in result.stderr.strip().splitlines()[-1]
    manifest = json.loads(next((archive / "runs").glob("*.json")).read_text())
    assert manifest["status"] == "failed"
    assert any("publish articles/" in error for error in manifest["errors"])
    spooled = list((archive / "_spool").rglob("*.parquet"))
    assert spooled, "the unpublished file is kept in the spool, not lost"


def test_no_secret_in_logs_stats_or_manifest(news_site, tmp_path):
    site, _ = news_site
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    result = run_crawl(tmp_path / "archive", [site.base_url + REFERENCE_PATH],
                       settings={"AWS_SECRET_ACCESS_KEY": secret, "ARCHIVE_S3_ENDPOINT_URL": f"http://user:{secret}@127.0.0.1:9"},
                       env={"AWS_SESSION_TOKEN": secret + "-token"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "AWS_SECRET_ACCESS_KEY" in result.stderr, "the overridden setting is logged, masked"
    assert secret not in result.stdout + result.stderr
    assert secret not in (tmp_path / "archive" / "runs").joinpath(next((tmp_path / "archive" / "runs").iterdir()).name).read_text()
