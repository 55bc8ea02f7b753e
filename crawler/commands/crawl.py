"""``scrapy crawl`` whose exit code tells a scheduler the truth.

Scrapy's own command exits 0 whenever the crawl ran. This one refuses bad
arguments and an unusable ARCHIVE_URI with one line and exit code 2 before
anything is fetched, exits 1 when the archive could not be written (a
file not published, a row refused, the manifest not written), and exits 3
when the run was stopped before its end (SIGTERM or SIGINT: what was complete
is published, the manifest says "partial"; a second signal exits at once), and
exits 4 when no site could be reached at all (every start URL failed: DNS,
connection, timeout, 5xx; the manifest says "unreachable"), so cron,
Kubernetes and Airflow see a failed, cut-short or empty run.
"""

from __future__ import annotations

import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand

from crawler import redaction
from crawler.containment import AddressPolicy
from crawler.frontier import check_frontier_dir
from crawler.progress import bar_mode
from crawler.shards import shard_from_settings
from pipelines import stats
from pipelines.archive import check_tables, open_store
from pipelines.exceptions import ArchiveConfigError, ArchiveError
from pipelines.storage import check_crawl_id

EXIT_FAILED = 1  #: the archive was not fully written
EXIT_REFUSED = 2  #: bad arguments or an unusable ARCHIVE_URI, refused before any fetch
EXIT_PARTIAL = 3  #: stopped before the end (a signal); what was complete is published
EXIT_UNREACHABLE = 4  #: no site could be reached: every start URL failed (DNS, connection, timeout, 5xx)


def check_before_crawl(settings, spider_args: dict, *, spider: str = "news") -> None:
    """Refuse bad arguments and an unusable archive with one line, before anything is fetched."""
    from crawler.spiders.news import sites_from_args
    from crawler.spiders.reextract import selection_from_args
    from crawler.spiders.warcpages import day_arg

    if spider in ("news", "backfill"):
        sites_from_args(spider_args.get("start_urls"), spider_args.get("sites"))
    if spider == "backfill":
        from crawler.spiders.backfill import source_list
        from pipelines.backfill import check_month

        if not source_list(spider_args.get("sources")) and not spider_args.get("cc_news"):
            raise ArchiveConfigError("give WARC files to read or a CC-NEWS month (--cc-news YYYY/MM)")
        if spider_args.get("cc_news"):
            check_month(spider_args["cc_news"])
        day_arg("since", spider_args.get("since"))
        day_arg("until", spider_args.get("until"))
    if spider == "reextract":
        selection_from_args(spider_args.get("since"), spider_args.get("until"), spider_args.get("domains"),
                            spider_args.get("extractor_version"), spider_args.get("warc_files"))
    if spider == "news":
        shard_from_settings(settings)  # CRAWL_SHARD, or JOB_COMPLETION_INDEX with CRAWL_SHARDS
    AddressPolicy.from_settings(settings)  # ALLOW_PRIVATE_NETWORKS, CRAWL_ALLOWED_NETWORKS
    check_frontier_dir(settings)
    bar_mode(settings)  # PROGRESS_BAR: auto or off
    if settings.get("ARCHIVE_CRAWL_ID"):
        check_crawl_id(settings["ARCHIVE_CRAWL_ID"])
    check_tables(open_store(settings))  # a table that cannot take this release's schema is refused here


def reextract_report(values: dict) -> str:
    """What a re-extraction changed, from its stats (the manifest's ``counts.reextract`` holds the same)."""
    def count(name: str) -> int:
        return values.get(stats.reextracted(name), 0)

    rows = count("rows")
    duplicates = sum(v for k, v in values.items() if k.startswith(stats.duplicate("", earlier=True))
                     or k.startswith(stats.duplicate("")))
    rejected = sum(v for k, v in values.items() if k.startswith(stats.dropped("")))
    return "\n".join([
        f"re-extracted: {values.get(stats.WARC_RECORDS_READ, 0)} records read, {rows} new article rows, "
        f"{duplicates} now duplicates of another article, {rejected} not articles or unreadable",
        f"  body changed in {count('body_changed')} rows (+{count('body_chars_added')} / "
        f"-{count('body_chars_removed')} characters in all)",
        f"  title changed in {count('title_changed')}, publication time in {count('published_at_changed')}, "
        f"authors in {count('authors_changed')}; {count('unchanged')} rows unchanged",
    ])


class Command(ScrapyCrawlCommand):
    def run(self, args, opts):
        if len(args) < 1:
            return super().run(args, opts)
        redaction.install(self.settings)
        if args[0] in ("news", "reextract", "backfill"):
            try:
                check_before_crawl(self.settings, opts.spargs, spider=args[0])
            except ArchiveError as exc:
                print(f"news-archive: {exc}", file=sys.stderr)
                self.exitcode = EXIT_REFUSED
                return
        crawler = self.crawler_process.create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed or getattr(self.crawler_process, "has_exception", False):
            self.exitcode = EXIT_FAILED
            return
        if args[0] not in ("news", "reextract", "backfill"):
            return
        if args[0] == "reextract" and crawler.stats:
            print(reextract_report(crawler.stats.get_stats()))
        status = crawler.stats.get_value(stats.STATUS) if crawler.stats else None
        unreachable = crawler.stats.get_value(stats.UNREACHABLE_SITES) if crawler.stats else None
        for site in unreachable or []:
            print(f"news-archive: site {site} was not reached: none of its start URLs could be fetched",
                  file=sys.stderr)
        if status == "failed":
            reason = crawler.stats.get_value(stats.FAILURE) or "see the log"
            print(f"news-archive: the archive was not fully written: {reason}", file=sys.stderr)
            self.exitcode = EXIT_FAILED
        elif status == "unreachable":
            print("news-archive: no site could be reached (DNS, connection, timeout or 5xx on every start URL); "
                  "nothing was archived", file=sys.stderr)
            self.exitcode = EXIT_UNREACHABLE
        elif status != "complete":
            how = "its complete files are published" if status == "partial" else "stopped at once"
            print(f"news-archive: the run was stopped before its end ({how}); the next run goes on from the "
                  f"archive", file=sys.stderr)
            self.exitcode = EXIT_PARTIAL
