"""``scrapy crawl`` whose exit code tells a scheduler the truth.

Scrapy's own command exits 0 whenever the crawl ran. This one refuses bad
arguments and an unusable ARCHIVE_URI with one line and exit code 2 before
anything is fetched, and exits 1 when the archive could not be written (a
file not published, a row refused, the manifest not written), so cron,
Kubernetes and Airflow see a failed run.
"""

from __future__ import annotations

import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand

from crawler import redaction
from crawler.containment import AddressPolicy
from pipelines import stats
from pipelines.archive import open_store
from pipelines.exceptions import ArchiveError


def check_before_crawl(settings, spider_args: dict) -> None:
    """Refuse bad arguments and an unusable archive with one line, before anything is fetched."""
    from crawler.spiders.news import sites_from_args

    sites_from_args(spider_args.get("start_urls"), spider_args.get("sites"))
    AddressPolicy.from_setting(settings.get("ALLOW_PRIVATE_NETWORKS"))
    open_store(settings)


class Command(ScrapyCrawlCommand):
    def run(self, args, opts):
        if len(args) < 1:
            return super().run(args, opts)
        redaction.install(self.settings)
        if args[0] == "news":
            try:
                check_before_crawl(self.settings, opts.spargs)
            except ArchiveError as exc:
                print(f"news-archive: {exc}", file=sys.stderr)
                self.exitcode = 2
                return
        crawler = self.crawler_process.create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed or getattr(self.crawler_process, "has_exception", False):
            self.exitcode = 1
            return
        status = crawler.stats.get_value(stats.STATUS) if crawler.stats else None
        if status == "failed":
            reason = crawler.stats.get_value(stats.FAILURE) or "see the log"
            print(f"news-archive: the archive was not fully written: {reason}", file=sys.stderr)
            self.exitcode = 1
