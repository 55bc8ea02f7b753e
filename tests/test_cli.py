"""`scrapy crawl news` as a scheduler sees it: arguments, sites files, refusals and exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from conftest import REPO, TEST_SETTINGS, crawl_env, run_crawl
from crawler.localsite import LocalSite, Page
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


def test_an_unusable_table_location_is_refused_before_any_fetch(news_site, tmp_path):
    site, _ = news_site
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "articles").write_text("a file where the articles table should be")
    before = sum(site.requests.values())
    result = run_crawl(archive, [site.base_url + REFERENCE_PATH])
    assert result.returncode == 2
    assert "articles table" in assert_one_line_refusal(result.stderr)
    assert sum(site.requests.values()) == before


def test_exit_code_is_non_zero_when_files_cannot_be_published(news_site, tmp_path):
    from datetime import datetime, timezone

    site, _ = news_site
    archive = tmp_path / "archive"
    archive.mkdir()
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    (archive / "articles").mkdir()
    (archive / "articles" / f"dt={today}").write_text("a file where today's partition folder should be")
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


def refusing_port(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a port on ``host`` that does not listen: every connection to it is refused."""
    sock = socket.socket()
    sock.bind((host, 0))
    return sock


def test_a_run_that_reaches_no_site_says_so_and_exits_4(tmp_path):
    with refusing_port() as closed:
        base = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = run_crawl(tmp_path / "archive", [base + "/", base + "/feed/"], settings={"RETRY_TIMES": "0"})
    assert result.returncode == 4, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-2:]
    assert last == ["news-archive: site 127.0.0.1 was not reached: none of its start URLs could be fetched",
                    "news-archive: no site could be reached (DNS, connection, timeout or 5xx on every start URL); "
                    "nothing was archived"]
    [manifest] = result.manifests()
    assert manifest["status"] == "unreachable" and manifest["unreachable_sites"] == ["127.0.0.1"]
    assert sorted((r["url"], r["reason"]) for r in result.rows("rejects")) == [
        (base + "/", "robots_unavailable"), (base + "/feed/", "robots_unavailable")]


def test_an_unreachable_site_among_others_is_named_and_the_run_succeeds(tmp_path):
    with LocalSite() as site, refusing_port("127.0.0.2") as closed:
        site.pages["/"] = Page(body=b"<html><body><h1>Front page</h1><p>Nothing new today.</p></body></html>")
        gone = f"http://127.0.0.2:{closed.getsockname()[1]}/"
        result = run_crawl(tmp_path / "archive", [site.base_url + "/", gone], settings={"RETRY_TIMES": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "news-archive: site 127.0.0.2 was not reached: none of its start URLs could be fetched")
    [manifest] = result.manifests()
    assert manifest["status"] == "complete" and manifest["unreachable_sites"] == ["127.0.0.2"]


def test_a_site_answering_503_is_unreachable_and_one_answering_404_is_not(tmp_path):
    with LocalSite() as busy, LocalSite(host="127.0.0.2") as empty:
        busy.pages["/robots.txt"] = Page(body=b"", status=404)
        busy.pages["/"] = Page(body=b"<html><body>Down for maintenance</body></html>", status=503)
        result = run_crawl(tmp_path / "archive", [busy.base_url + "/", empty.base_url + "/nothing-here/"],
                           settings={"RETRY_TIMES": "0"})
    assert result.returncode == 0, result.stderr[-2000:]
    [manifest] = result.manifests()
    assert manifest["unreachable_sites"] == ["127.0.0.1"], "the 404 site answered; the 503 one did not"


def test_a_crawl_log_carries_no_python_warning(tmp_path):
    """run_crawl refuses any ``[py.warnings]`` line; this crawl shows the check sees them: a spider middleware
    that warns is reported."""
    from conftest import crawl_command, crawl_env, python_warnings

    with LocalSite() as site:
        site.pages["/"] = Page(body=b"<html><body><h1>Front page</h1></body></html>")
        clean = run_crawl(tmp_path / "archive", [site.base_url + "/"])
        assert clean.returncode == 0 and python_warnings(clean.stderr) == []
        command = crawl_command(tmp_path / "archive2", [site.base_url + "/"],
                                settings={"EXTENSIONS": json.dumps({"noisy.DeprecatedThing": 0})})
        warned = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                                env=crawl_env({"PYTHONPATH": str(REPO / "tests")}))
    assert warned.returncode == 0, warned.stderr[-2000:]
    [line] = python_warnings(warned.stderr)
    assert "ScrapyDeprecationWarning: a deprecated thing" in line
