"""``scrapy crawl`` whose exit code tells a scheduler the truth.

Scrapy's own command exits 0 whenever the crawl ran. This one exits 1 when
the archive could not be written (a file not published, a row refused, the
manifest not written), so cron, Kubernetes and Airflow see a failed run.
"""

from __future__ import annotations

import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand

from pipelines import stats


class Command(ScrapyCrawlCommand):
    def run(self, args, opts):
        if len(args) < 1:
            return super().run(args, opts)
        crawler = self.crawler_process.create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed or getattr(self.crawler_process, "has_exception", False):
            self.exitcode = 1
            return
        status = crawler.stats.get_value(stats.STATUS) if crawler.stats else None
        if status == "failed":
            reasons = crawler.stats.get_value(stats.WRITE_FAILED, 0)
            print(f"news-archive: the archive was not fully written ({reasons} failure(s)); see the log", file=sys.stderr)
            self.exitcode = 1
