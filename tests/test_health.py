"""Site health over an archive built by crawling three local publishers on four days (``health_archive``): on the
last day one moved its bodies into a script blob (client-side rendering), one emptied its Google News sitemap, and
the third changed nothing but its new stories."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from conftest import HEALTH_DAYS, HEALTH_HOSTS, ArchiveTarget, news_archive
from pipelines.health import HealthSettings, SiteRun, archive_alerts, site_alerts
from pipelines.runs import RunSummary, load_runs
from pipelines.storage import LocalStore

LAYOUT, STEADY, SITEMAP = HEALTH_HOSTS["layout"], HEALTH_HOSTS["steady"], HEALTH_HOSTS["sitemap"]
ALERT_LINE = re.compile(r"^  ALERT site (\S+) flagged: (\w+): ", re.M)


def _target(health_archive) -> ArchiveTarget:
    return ArchiveTarget(uri=str(health_archive.archive), env={}, options={}, store=None)


def _manifests(health_archive) -> list[dict]:
    return health_archive.crawls[0].manifests()  # one archive: every day's manifest, oldest first


@pytest.mark.needs_corpus
def test_status_fail_on_alert_names_the_broken_sites_and_their_signals(health_archive, tmp_path):
    status = news_archive(_target(health_archive), tmp_path, "status", str(health_archive.archive), "--fail-on-alert")
    assert status.returncode == 3, status.stderr[-2000:]
    assert sorted(ALERT_LINE.findall(status.stdout)) == [(LAYOUT, "failed_share"), (LAYOUT, "yield_drop"),
                                                         (SITEMAP, "yield_drop")]
    assert "health: 3 alert(s) over 3 site(s)" in status.stdout
    assert f"site {STEADY} flagged" not in status.stdout  # the unchanged site
    last_run = _manifests(health_archive)[-1]["crawl_id"]
    assert re.search(rf"ALERT site {re.escape(SITEMAP)} flagged: yield_drop: 0 new article\(s\) in the last run, "
                     rf"against a median of 3 per run over the 3 runs before \(run {last_run}\)", status.stdout)


@pytest.mark.needs_corpus
def test_status_shows_tables_runs_and_articles_per_site(health_archive, tmp_path):
    status = news_archive(_target(health_archive), tmp_path, "status", str(health_archive.archive), "--runs", "2")
    assert status.returncode == 0, status.stderr[-2000:]  # without --fail-on-alert, alerts are shown, not fatal
    manifests = _manifests(health_archive)
    articles = sum(m["counts"]["articles_written"] for m in manifests)
    assert re.search(rf"^  articles\s+{HEALTH_DAYS}\s+{HEALTH_DAYS}\s+{articles}\s", status.stdout, re.M)
    assert f"last runs (2 of {HEALTH_DAYS} read):" in status.stdout
    shown = re.findall(r"^  (\d{8}T\d{6}Z-\w{6})\s+crawl\s+complete", status.stdout, re.M)
    assert shown == [m["crawl_id"] for m in reversed(manifests)][:2]  # newest first
    today = datetime.now(timezone.utc).date()
    for role, host in HEALTH_HOSTS.items():  # every article of the four days was first archived today
        total = sum(m["sites"][host]["new_articles"] for m in manifests)
        assert re.search(rf"^  {re.escape(host)}(\s+0){{6}}\s+{total}\s+{total}$", status.stdout, re.M), (
            role, status.stdout)
    assert f"{today:%m-%d}  total" in status.stdout


@pytest.mark.needs_corpus
def test_the_crawl_log_ends_with_one_line_per_flagged_site(health_archive):
    for crawl in health_archive.crawls[:-1]:
        assert "flagged" not in crawl.stderr
    lines = health_archive.crawls[-1].stderr.rstrip().splitlines()
    flagged = [line for line in lines if "[crawler.sitehealth]" in line]
    assert lines[-2:] == flagged  # the log's last lines, one per site
    assert re.search(rf"WARNING: site {re.escape(LAYOUT)} flagged: yield_drop: .*; failed_share: 75% of 4 page\(s\) "
                     rf"failed", flagged[0])
    assert re.search(rf"WARNING: site {re.escape(SITEMAP)} flagged: yield_drop: 0 new article", flagged[1])


@pytest.mark.needs_corpus
def test_each_manifest_counts_per_site(health_archive):
    manifests = _manifests(health_archive)
    sites = health_archive.sites
    duplicates = health_archive.crawls[-1].rows("duplicates")
    for day, manifest in enumerate(manifests, start=1):
        assert sorted(manifest["sites"]) == sorted(HEALTH_HOSTS.values())
        steady = manifest["sites"][STEADY]
        new = len(sites["steady"].new_on(day))
        # the home page (judged not an article), the new stories, and on day 1 the dead links of the site's chrome
        # and home page (404s, not requested again while their back-off lasts)
        dead = 4 if day == 1 else 0
        # a home page's short link (a redirect) to a story the sitemap had already led to is a url duplicate; one
        # answered first leads to the story itself: how many of each depends on the order of the answers
        recorded = [r for r in duplicates if r["crawl_id"] == manifest["crawl_id"] and r["domain"] == STEADY]
        assert all(r["kind"] == "url" and not r["fetched"] for r in recorded) and len(recorded) <= new
        assert steady == {
            "fetched": 1 + new + dead, "articles": new, "new_articles": new,
            "duplicates": {"url": len(recorded)} if recorded else {},
            "rejects": {"http_error": dead, "not_article": 1} if dead else {"not_article": 1},
            "body_chars_median": steady["body_chars_median"], "with_title": new, "with_authors": new,
            "with_date": new,
        }
    last = manifests[-1]["sites"]
    assert last[LAYOUT] == {"fetched": 4, "articles": 0, "new_articles": 0, "duplicates": {},
                            "rejects": {"not_article": 1, "too_short": 3}, "body_chars_median": None,
                            "with_title": 0, "with_authors": 0, "with_date": 0}
    assert last[SITEMAP]["new_articles"] == 0 and last[SITEMAP]["fetched"] == 1
    # the counts are the rows: the articles table agrees with every manifest
    rows = health_archive.crawls[-1].rows("articles")
    for manifest in manifests:
        for host, counts in manifest["sites"].items():
            mine = [r for r in rows if r["crawl_id"] == manifest["crawl_id"] and r["domain"] == host]
            assert len(mine) == counts["articles"]
            if mine:
                lengths = sorted(len(r["body"]) for r in mine)
                assert counts["body_chars_median"] == int((lengths[(len(lengths) - 1) // 2]
                                                           + lengths[len(lengths) // 2]) / 2)


def test_status_of_an_empty_folder_and_a_missing_one(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    target = ArchiveTarget(uri=str(empty), env={}, options={}, store=None)
    status = news_archive(target, tmp_path, "status", str(empty), "--fail-on-alert")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^  articles\s+none\s+0\s+0\s+0 B\s+0$", status.stdout, re.M)
    assert "health: 0 alert(s) over 0 site(s)" in status.stdout
    missing = tmp_path / "no" / "such" / "archive"
    status = news_archive(target, tmp_path, "status", str(missing))
    assert status.returncode == 2
    assert status.stderr.startswith("news-archive: ") and len(status.stderr.splitlines()) == 1
    assert not missing.exists() and not missing.parent.exists()  # reading only: nothing created
    status = news_archive(target, tmp_path, "status", str(empty), "--days", "0")
    assert status.returncode == 2 and "--days must be at least 1" in status.stderr


def test_a_broken_manifest_is_skipped_with_a_warning(tmp_path, caplog):
    store = LocalStore(tmp_path / "archive")
    good = {"crawl_id": "20261201T000000Z-aaaaaa", "status": "complete", "settings": {"ARCHIVE_JOB": "crawl"},
            "started_at": "2026-12-01T00:00:00+00:00", "finished_at": "2026-12-01T00:01:00+00:00", "counts": {}}
    store.put_bytes("runs/20261201T000000Z-aaaaaa.json", json.dumps(good).encode())
    store.put_bytes("runs/20261202T000000Z-bbbbbb.json", b'{"crawl_id": "20261202T0')
    with caplog.at_level("WARNING"):
        runs = load_runs(store)
    assert [run.crawl_id for run in runs] == ["20261201T000000Z-aaaaaa"]
    assert runs[0].seconds == 60.0 and runs[0].sites is None
    assert "runs/20261202T000000Z-bbbbbb.json could not be read" in caplog.text


# --- the rule, on series made by hand -----------------------------------------------------------------------------

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def site_run(n: int, *, new: int = 10, fetched: int = 12, rejects: dict | None = None, body: int | None = 3000,
             title: int | None = None, authors: int | None = None, date: int | None = None) -> SiteRun:
    counts = {"fetched": fetched, "articles": new, "new_articles": new, "duplicates": {},
              "rejects": rejects if rejects is not None else {"not_article": fetched - new},
              "body_chars_median": body if new else None, "with_title": new if title is None else title,
              "with_authors": new if authors is None else authors, "with_date": new if date is None else date}
    run = RunSummary(crawl_id=f"run-{n}", job="crawl", status="complete", started_at=START + timedelta(days=n),
                     finished_at=None, sites={"example.com": counts})
    return SiteRun.from_counts("example.com", run, counts)


def signals(series: list[SiteRun], settings: HealthSettings = HealthSettings()) -> list[str]:
    return [alert.signal for alert in site_alerts(series, settings)]


def test_a_steady_site_is_not_flagged():
    series = [site_run(n, new=8 + n % 5, body=2500 + 300 * (n % 3)) for n in range(10)]
    assert signals(series) == []


def test_yield_falls_far_below_the_sites_own_level():
    base = [site_run(n, new=10) for n in range(5)]
    # (few pages in the runs judged: too few to judge their shares)
    assert signals(base + [site_run(5, new=1, fetched=1)]) == ["yield_drop"]
    assert signals(base + [site_run(5, new=2, fetched=2)]) == []  # 2 is not below 0.2 x 10
    quiet = [site_run(n, new=2, fetched=4) for n in range(5)]  # a site that publishes little: not judged on yield
    assert signals(quiet + [site_run(5, new=0, fetched=2)]) == []
    two_runs = HealthSettings(low_runs=2)  # K = 2: zero in each of the last two runs
    assert signals(base + [site_run(5, new=0, fetched=1), site_run(6, new=6, fetched=8)], two_runs) == []
    assert signals(base + [site_run(5, new=0, fetched=1), site_run(6, new=1, fetched=1)], two_runs) == ["yield_drop"]


def test_a_site_with_too_few_runs_is_not_judged_yet():
    assert signals([site_run(0, new=10), site_run(1, new=0, fetched=0)]) == []
    assert signals([site_run(0, new=10), site_run(1, new=10), site_run(2, new=0, fetched=0)]) == ["yield_drop"]


def test_shares_of_failed_and_not_article_pages():
    base = [site_run(n, new=10, fetched=12, rejects={"not_article": 2}) for n in range(5)]
    failed = site_run(5, new=7, fetched=12, rejects={"not_article": 2, "empty": 2, "too_short": 1})
    assert signals(base + [failed]) == []  # 3 of 12 failed: up 0.25, below 0.3
    broken = site_run(5, new=6, fetched=10, rejects={"not_article": 2, "dns_error": 4, "http_error": 2})
    # tried = 10 fetched + 4 unanswered; failed 6 of 14 = 0.43 over a median 0
    assert signals(base + [broken]) == ["failed_share"]
    listing = site_run(5, new=6, fetched=14, rejects={"not_article": 8})  # 8 of 14 = 0.57 against 2 of 12 = 0.17
    assert signals(base + [listing]) == ["not_article_share"]


def test_bodies_and_coverage_drop_sharply():
    base = [site_run(n, new=10, body=3000) for n in range(5)]
    assert signals(base + [site_run(5, new=10, body=1400)]) == ["body_length"]
    assert signals(base + [site_run(5, new=10, body=1600)]) == []
    assert signals(base + [site_run(5, new=5, fetched=7, body=1000)]) == []  # 5 rows: too few to judge a length
    assert signals(base + [site_run(5, new=10, title=8, authors=2, date=10)]) == ["author_coverage"]
    assert signals(base + [site_run(5, new=10, date=6)]) == ["date_coverage"]
    assert signals(base + [site_run(5, new=10, title=6)]) == ["title_coverage"]


def test_only_complete_crawl_runs_are_judged():
    def summary(n: int, *, new: int, job: str = "crawl", status: str = "complete") -> RunSummary:
        counts = {"fetched": new + 2, "articles": new, "new_articles": new, "rejects": {"not_article": 2}}
        return RunSummary(crawl_id=f"run-{n}", job=job, status=status, started_at=START + timedelta(days=n),
                          finished_at=None, sites={"example.com": counts})

    runs = [summary(n, new=10) for n in range(4)]
    assert archive_alerts(runs + [summary(4, new=0, status="partial")], HealthSettings()) == []
    assert archive_alerts(runs + [summary(4, new=0, job="reextract")], HealthSettings()) == []
    assert [a.signal for a in archive_alerts(runs + [summary(4, new=0)], HealthSettings())] == ["yield_drop"]


def test_the_report_of_an_empty_archive_and_to_a_missing_folder(tmp_path):
    from pipelines.report import PLOTS, plots_in

    empty = tmp_path / "empty"
    empty.mkdir()
    target = ArchiveTarget(uri=str(empty), env={}, options={}, store=None)
    out = tmp_path / "report.html"
    written = news_archive(target, tmp_path, "report", str(empty), "-o", str(out))
    assert written.returncode == 0, written.stderr
    text = out.read_text(encoding="utf-8")
    assert plots_in(text) == list(PLOTS) and "No site flagged (0 site(s) judged)" in text
    assert text.count("in the window") == 6  # every plot says it has nothing to draw (the SVG keeps its text)
    missing = tmp_path / "no" / "such" / "report.html"
    written = news_archive(target, tmp_path, "report", str(empty), "-o", str(missing))
    assert written.returncode == 1
    assert written.stderr == f"news-archive: report: cannot write {missing}: No such file or directory\n"
    assert not missing.parent.exists()
