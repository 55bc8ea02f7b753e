"""The crawl's last log lines: one WARNING per site of the run that site health flags (``pipelines/health.py``),
with every signal that flagged it.

Run once the engine has stopped, after the run's manifest was written: the run is then the newest of its sites.
Health never changes the crawl's exit code (``news-archive status --fail-on-alert`` is what alerts a scheduler);
a failure to judge is logged and changes nothing either.
"""

from __future__ import annotations

import logging

from scrapy import signals
from scrapy.exceptions import NotConfigured

from pipelines.health import HealthSettings, site_alerts, site_lines, site_series
from pipelines.runs import load_runs

logger = logging.getLogger(__name__)


class SiteHealthLog:
    def __init__(self, *, settings: HealthSettings, open_store, crawl_id_of, runs_read: int) -> None:
        self.settings = settings
        self.open_store = open_store  #: () -> the archive's store
        self.crawl_id_of = crawl_id_of  #: () -> this run's crawl id (set once the spider has started)
        self.runs_read = runs_read

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.getbool("HEALTH_ENABLED"):
            raise NotConfigured("HEALTH_ENABLED is off")
        from pipelines.archive import open_store

        extension = cls(settings=HealthSettings.from_settings(crawler.settings),
                        open_store=lambda: open_store(crawler.settings),
                        crawl_id_of=lambda: crawler.settings.get("ARCHIVE_CRAWL_ID"),
                        runs_read=crawler.settings.getint("HEALTH_RUNS_READ"))
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def engine_stopped(self) -> None:
        crawl_id = self.crawl_id_of()
        if not crawl_id:
            return
        try:
            alerts = self.alerts(crawl_id)
        except Exception as exc:  # the archive is unreadable now: the run's own outcome says why
            logger.warning("site health could not be judged: %s: %s", type(exc).__name__, exc)
            return
        for site, lines in site_lines(alerts).items():
            logger.warning("site %s flagged: %s (news-archive status)", site, "; ".join(lines))

    def alerts(self, crawl_id: str) -> list:
        """The alerts of this run's sites, when this run is a complete crawl with per-site counts."""
        runs = load_runs(self.open_store(), limit=self.runs_read)
        this = next((run for run in runs if run.crawl_id == crawl_id), None)
        if this is None or this.job != "crawl" or this.status != "complete" or not this.sites:
            return []
        series = site_series(runs)
        return [alert for site in sorted(this.sites) for alert in site_alerts(series.get(site, []), self.settings)
                if alert.crawl_id == crawl_id]
