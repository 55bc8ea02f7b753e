"""Per-site health: is a publisher's yield or extraction falling apart while every run still exits 0?

Each site (a registered domain) is judged on its own recent level: the per-site counts of its last
``low_runs`` crawl runs (the runs judged) against the median of the ``baseline_runs`` runs before them. Only
complete crawl runs count (not a stopped or failed run, nor a re-extraction or a backfill), and only runs in
which the site was crawled (it has rows in the run's manifest: a start page fetched is one). Signals:

- ``yield_drop``: new articles per run below ``yield_drop`` x the site's median, in each run judged, for a site
  whose median is at least ``min_articles`` (a site that went to zero, or nearly);
- ``failed_share``: the share of the site's pages that failed (no body found, too short, extraction failed or
  timed out, HTTP errors, timeouts, connection errors) up by ``share_rise`` or more over its median share;
- ``not_article_share``: the same for pages judged not articles (listing, section or utility pages);
- ``body_length``: the median body length of the new article rows below ``body_drop`` x the median of the
  site's recent medians;
- ``title_coverage``, ``author_coverage``, ``date_coverage``: the share of article rows with a title, an author,
  a publication date down by ``coverage_drop`` or more.

Shares are judged only with at least ``min_pages`` pages on both sides (in the runs judged, and in each baseline
run counted), body lengths and coverage only with at least ``min_rows`` article rows on both sides (a few
stories of a small site vary too much in length to say anything); a site with fewer than ``min_baseline_runs``
runs before the judged ones is not judged yet.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from pipelines.runs import RunSummary

#: rejects that mean a page failed: its body was lost, or it could not be fetched
FAILED_REASONS = frozenset({
    "empty", "too_short", "extraction_failed", "extract_timeout", "worker_crashed",
    "http_error", "download_timeout", "dns_error", "connection_error", "download_error",
})
#: failed requests that got no answer (not counted in a site's pages fetched)
UNANSWERED_REASONS = frozenset({"download_timeout", "dns_error", "connection_error", "download_error"})
NOT_ARTICLE_REASONS = frozenset({"not_article"})
SIGNALS = ("yield_drop", "failed_share", "not_article_share", "body_length", "title_coverage",
           "author_coverage", "date_coverage")


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """The thresholds (settings ``HEALTH_*``, defaults in ``crawler/settings.py``)."""

    baseline_runs: int = 5
    min_baseline_runs: int = 2
    low_runs: int = 1
    min_articles: float = 3
    yield_drop: float = 0.2
    share_rise: float = 0.3
    body_drop: float = 0.5
    coverage_drop: float = 0.3
    min_pages: int = 3
    min_rows: int = 8

    @classmethod
    def from_settings(cls, settings) -> "HealthSettings":
        return cls(
            baseline_runs=settings.getint("HEALTH_BASELINE_RUNS"),
            min_baseline_runs=settings.getint("HEALTH_MIN_BASELINE_RUNS"),
            low_runs=settings.getint("HEALTH_LOW_RUNS"),
            min_articles=settings.getfloat("HEALTH_MIN_ARTICLES"),
            yield_drop=settings.getfloat("HEALTH_YIELD_DROP"),
            share_rise=settings.getfloat("HEALTH_SHARE_RISE"),
            body_drop=settings.getfloat("HEALTH_BODY_DROP"),
            coverage_drop=settings.getfloat("HEALTH_COVERAGE_DROP"),
            min_pages=settings.getint("HEALTH_MIN_PAGES"),
            min_rows=settings.getint("HEALTH_MIN_ROWS"),
        )

    @property
    def runs_needed(self) -> int:
        return self.baseline_runs + self.low_runs


@dataclass(frozen=True, slots=True)
class SiteRun:
    """One site in one run: its counts from the run's manifest."""

    site: str
    crawl_id: str
    started_at: object
    fetched: int
    tried: int  #: pages fetched, and requests that failed without an answer
    articles: int
    new_articles: int
    duplicates: int
    failed: int
    not_article: int
    body_chars_median: int | None
    with_title: int
    with_authors: int
    with_date: int
    rejects: dict

    @classmethod
    def from_counts(cls, site: str, run: RunSummary, counts: dict) -> "SiteRun":
        rejects = dict(counts.get("rejects") or {})
        fetched = int(counts.get("fetched") or 0)
        unanswered = sum(n for reason, n in rejects.items() if reason in UNANSWERED_REASONS)
        return cls(
            site=site, crawl_id=run.crawl_id, started_at=run.started_at, fetched=fetched,
            tried=fetched + unanswered,
            articles=int(counts.get("articles") or 0), new_articles=int(counts.get("new_articles") or 0),
            duplicates=sum((counts.get("duplicates") or {}).values()),
            failed=sum(n for reason, n in rejects.items() if reason in FAILED_REASONS),
            not_article=sum(n for reason, n in rejects.items() if reason in NOT_ARTICLE_REASONS),
            body_chars_median=counts.get("body_chars_median"),
            with_title=int(counts.get("with_title") or 0), with_authors=int(counts.get("with_authors") or 0),
            with_date=int(counts.get("with_date") or 0), rejects=rejects,
        )


@dataclass(frozen=True, slots=True)
class Alert:
    site: str
    signal: str  #: one of SIGNALS
    crawl_id: str  #: the newest run judged
    value: float
    baseline: float
    message: str

    def line(self) -> str:
        return f"site {self.site} flagged: {self.signal}: {self.message}"


def judged_runs(runs: list[RunSummary]) -> list[RunSummary]:
    """The runs health reads, oldest first: complete crawl runs with per-site counts."""
    kept = [run for run in runs if run.job == "crawl" and run.status == "complete" and run.sites is not None]
    return sorted(kept, key=lambda run: (run.started_at.isoformat() if run.started_at else "", run.crawl_id))


def site_series(runs: list[RunSummary]) -> dict[str, list[SiteRun]]:
    """Per site, its runs oldest first."""
    series: dict[str, list[SiteRun]] = {}
    for run in judged_runs(runs):
        for site, counts in run.sites.items():
            series.setdefault(site, []).append(SiteRun.from_counts(site, run, counts))
    return series


def site_alerts(runs: list[SiteRun], settings: HealthSettings) -> list[Alert]:
    """The alerts of one site, judging its newest ``low_runs`` runs against the ones before."""
    if len(runs) < settings.low_runs + settings.min_baseline_runs:
        return []
    judged = runs[-settings.low_runs:]
    baseline = runs[-settings.runs_needed:-settings.low_runs]
    site, crawl_id = judged[-1].site, judged[-1].crawl_id
    alerts = []

    def alert(signal: str, value: float, level: float, message: str) -> None:
        alerts.append(Alert(site=site, signal=signal, crawl_id=crawl_id, value=value, baseline=level,
                            message=message))

    runs_word = "the last run" if len(judged) == 1 else f"each of the last {len(judged)} runs"
    level = statistics.median(run.new_articles for run in baseline)
    if level >= settings.min_articles and all(run.new_articles < settings.yield_drop * level for run in judged):
        newest = ", ".join(str(run.new_articles) for run in judged)
        alert("yield_drop", judged[-1].new_articles, level,
              f"{newest} new article(s) in {runs_word}, against a median of {level:g} per run over the "
              f"{len(baseline)} runs before")

    tried = sum(run.tried for run in judged)
    for signal, part, what in (("failed_share", "failed", "failed (no body found, too short, or not fetched)"),
                               ("not_article_share", "not_article", "judged not articles")):
        shares = [getattr(run, part) / run.tried for run in baseline if run.tried >= settings.min_pages]
        if tried < settings.min_pages or len(shares) < settings.min_baseline_runs:
            continue
        share, level = sum(getattr(run, part) for run in judged) / tried, statistics.median(shares)
        if share - level >= settings.share_rise:
            alert(signal, share, level, f"{share:.0%} of {tried} page(s) {what} in {runs_word}, against a median "
                                        f"of {level:.0%} over the {len(baseline)} runs before")

    articles = sum(run.articles for run in judged)
    medians = [run.body_chars_median for run in baseline if run.body_chars_median is not None]
    newest_medians = [run.body_chars_median for run in judged if run.body_chars_median is not None]
    if (articles >= settings.min_rows and sum(run.articles for run in baseline) >= settings.min_rows
            and len(medians) >= settings.min_baseline_runs and newest_medians):
        value, level = statistics.median(newest_medians), statistics.median(medians)
        if value < settings.body_drop * level:
            alert("body_length", value, level, f"median body {value:g} characters in {runs_word}, against a "
                                               f"median of {level:g} over the {len(baseline)} runs before")

    base_articles = sum(run.articles for run in baseline)
    if articles >= settings.min_rows and base_articles >= settings.min_rows:
        for signal, part, what in (("title_coverage", "with_title", "a title"),
                                   ("author_coverage", "with_authors", "an author"),
                                   ("date_coverage", "with_date", "a publication date")):
            share = sum(getattr(run, part) for run in judged) / articles
            level = sum(getattr(run, part) for run in baseline) / base_articles
            if level - share >= settings.coverage_drop:
                alert(signal, share, level, f"{share:.0%} of {articles} article(s) with {what} in {runs_word}, "
                                            f"against {level:.0%} over the {len(baseline)} runs before")
    return alerts


def archive_alerts(runs: list[RunSummary], settings: HealthSettings) -> list[Alert]:
    """Every site's alerts, by site."""
    return [alert for site, series in sorted(site_series(runs).items()) for alert in site_alerts(series, settings)]


def site_lines(alerts: list[Alert]) -> dict[str, list[str]]:
    """site -> its alerts as ``signal: message``, in the order found."""
    lines: dict[str, list[str]] = {}
    for alert in alerts:
        lines.setdefault(alert.site, []).append(f"{alert.signal}: {alert.message}")
    return lines


def flagged_runs(series: list[SiteRun], settings: HealthSettings) -> dict[str, list[str]]:
    """crawl_id -> the signals that flagged the site when that run was the newest: for the report's marks."""
    flagged = {}
    for end in range(1, len(series) + 1):
        signals = [alert.signal for alert in site_alerts(series[:end], settings)]
        if signals:
            flagged[series[end - 1].crawl_id] = signals
    return flagged
