"""``news-archive``: the archive's commands under one roof.

::

    news-archive crawl -a start_urls=URL ... [-s NAME=VALUE ...]   the crawl, exactly ``scrapy crawl news ...``
    news-archive compact [ARCHIVE_URI] [options]                    compact closed partitions, then vacuum
    news-archive convert [ARCHIVE_URI]                              turn an older release's archive into tables
    news-archive reextract [ARCHIVE_URI] [--since DAY] [--until DAY] [--domain D] [--extractor-version V]
                                                                    extract the archive's WARC records again
    news-archive dedup [ARCHIVE_URI] [--since DAY] [--until DAY]    copies crawl workers archived at once: recorded
                                                                    as duplicates, removed from articles
    news-archive status [ARCHIVE_URI] [--days N] [--fail-on-alert]
                                                                    tables, last runs, articles per site, site health
    news-archive report [ARCHIVE_URI] -o report.html [--days N]    the same as one self-contained HTML page, with plots
    news-archive backfill [SOURCE ...] [--cc-news YYYY/MM] (--sites FILE | --start-urls URL,...)
                          [--since DAY] [--until DAY] [--archive ARCHIVE_URI]
                                                                    archive the sites' pages from WARC files

Settings come from ``crawler/settings.py`` and the environment as for a crawl (``ARCHIVE_URI``, ``ARCHIVE_S3_*``,
boto3's credentials); ``-s NAME=VALUE`` overrides one. Exit codes: 0 done, 1 a step failed (the reason on stderr),
2 bad arguments or an unusable archive, refused before anything is changed; ``status --fail-on-alert``: 3 when
site health flags a site.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import date, datetime, timedelta, timezone

from pipelines.exceptions import ArchiveError

EXIT_FAILED = 1
EXIT_REFUSED = 2
EXIT_ALERT = 3  #: status --fail-on-alert: a site is flagged


def _settings(archive_uri: str | None, overrides: list[str]):
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    for override in overrides:
        name, _, value = override.partition("=")
        if not name or not _:
            raise ArchiveError(f"-s takes NAME=VALUE, not {override!r}")
        settings.set(name, value, priority="cmdline")
    if archive_uri:
        settings.set("ARCHIVE_URI", archive_uri, priority="cmdline")
    return settings


def _settings_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                         help="override a setting")


def _ray_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--ray", action="store_true",
                         help="run as Ray tasks, one per WARC file (also when RAY_ADDRESS is set)")
    command.add_argument("--ray-address", metavar="ADDRESS",
                         help="the Ray cluster (default RAY_ADDRESS; none: a local cluster on this machine)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="news-archive", description="Crawl news sites into a Delta Lake archive.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crawl = commands.add_parser("crawl", help="crawl sites into the archive (scrapy crawl news)", add_help=False)
    crawl.add_argument("arguments", nargs=argparse.REMAINDER, help="scrapy crawl news's own arguments")
    for name, help_text in (("compact", "compact the small files of closed partitions, then vacuum"),
                            ("convert", "make the Delta tables of an archive an older release wrote, in place")):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("archive_uri", nargs="?", help="folder, file:// or s3:// URI (default: ARCHIVE_URI)")
        _settings_option(command)
    reextract = commands.add_parser(
        "reextract", help="extract the archive's WARC records again with the current extractor (nothing fetched)",
        description="Extract the archive's WARC records again with the current extractor: new article rows with "
                    "the same article_id and the new extractor_version, in table commits; a rerun goes on where "
                    "a stopped one ended.")
    reextract.add_argument("archive_uri", nargs="?", help="folder, file:// or s3:// URI (default: ARCHIVE_URI)")
    reextract.add_argument("--since", metavar="YYYY-MM-DD", help="only pages fetched on or after this day (UTC)")
    reextract.add_argument("--until", metavar="YYYY-MM-DD", help="only pages fetched on or before this day (UTC)")
    reextract.add_argument("--domain", action="append", default=[], metavar="DOMAIN",
                           help="only articles of this registered domain (repeatable)")
    reextract.add_argument("--extractor-version", metavar="VERSION",
                           help="only rows this extractor_version made")
    reextract.add_argument("--favor-precision", action="store_true", help="extract with EXTRACT_FAVOR_PRECISION")
    reextract.add_argument("--warc-file", action="append", default=[], metavar="KEY",
                           help="only records of this WARC file (its key in the archive; repeatable)")
    _ray_options(reextract)
    _settings_option(reextract)
    backfill = commands.add_parser(
        "backfill", help="archive the sites' pages from WARC files of other crawls (CC-NEWS or any)",
        description="Read WARC files (local paths, s3:// URIs, http(s) URLs, or a CC-NEWS month) as streams and "
                    "archive the records of the sites, as a crawl would; a rerun goes on where a stopped one ended.")
    backfill.add_argument("sources", nargs="*", metavar="SOURCE", help="WARC file or folder, s3:// URI or http(s) URL")
    backfill.add_argument("--cc-news", metavar="YYYY/MM", help="the CC-NEWS files of this month (BACKFILL_CC_NEWS_BASE)")
    backfill.add_argument("--archive", metavar="ARCHIVE_URI", help="folder, file:// or s3:// URI (default: ARCHIVE_URI)")
    which = backfill.add_mutually_exclusive_group(required=True)
    which.add_argument("--sites", metavar="FILE", help="the sites file whose hosts' records are kept")
    which.add_argument("--start-urls", metavar="URL,...", help="the sites, by their start URLs")
    backfill.add_argument("--since", metavar="YYYY-MM-DD",
                          help="only records fetched, then articles published, on or after this day")
    backfill.add_argument("--until", metavar="YYYY-MM-DD",
                          help="only records fetched, then articles published, on or before this day")
    _ray_options(backfill)
    _settings_option(backfill)
    dedup = commands.add_parser(
        "dedup", help="find copies crawl workers archived at once; record them as duplicates, remove their rows",
        description="Over the articles first archived in a time window (default: the last DEDUP_NEAR_WINDOW_DAYS "
                    "days), apply the crawl's rule in order of first capture: an article whose body equals, or whose "
                    "SimHash is within DEDUP_NEAR_DISTANCE of, one archived before it is a copy. Copies are "
                    "recorded in duplicates (detected_by = dedup) and removed from articles, in table commits; "
                    "a rerun finds nothing new.")
    dedup.add_argument("archive_uri", nargs="?", help="folder, file:// or s3:// URI (default: ARCHIVE_URI)")
    dedup.add_argument("--since", metavar="YYYY-MM-DD", help="articles first archived on or after this day (UTC)")
    dedup.add_argument("--until", metavar="YYYY-MM-DD", help="articles first archived on or before this day (UTC)")
    _ray_options(dedup)
    _settings_option(dedup)
    for name, help_text in (("status", "the tables, the last runs, new articles per site per day and site health"),
                            ("report", "the archive's status as one self-contained HTML page with plots")):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("archive_uri", nargs="?", help="folder, file:// or s3:// URI (default: ARCHIVE_URI)")
        command.add_argument("--days", type=int, default=14, metavar="N",
                             help="the per-day figures cover the last N days (UTC), today included (default 14)")
        _settings_option(command)
    commands.choices["status"].add_argument(
        "--fail-on-alert", action="store_true",
        help=f"exit {EXIT_ALERT} when site health flags a site (for a scheduler's alerting)")
    commands.choices["status"].add_argument("--runs", type=int, default=10, metavar="N",
                                            help="the last N runs shown (default 10)")
    commands.choices["report"].add_argument("-o", "--output", required=True, metavar="FILE",
                                            help="the HTML file written")
    compact = commands.choices["compact"]
    compact.add_argument("--target-bytes", type=int, help="size of the files written (ARCHIVE_COMPACT_TARGET_BYTES)")
    compact.add_argument("--closed-after-days", type=int,
                         help="a partition is closed this many days after its day (ARCHIVE_COMPACT_CLOSED_AFTER_DAYS)")
    compact.add_argument("--retain-hours", type=int, help="vacuum keeps what versions this young need "
                                                          "(ARCHIVE_VACUUM_RETAIN_HOURS)")
    compact.add_argument("--no-vacuum", action="store_true", help="compact only")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["crawl"]:  # everything after it is scrapy's
        os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
        from scrapy.cmdline import execute

        execute(["scrapy", "crawl", "news", *argv[1:]])  # exits with the crawl's own exit code
        return 0
    args = _parser().parse_args(argv)
    if args.command == "reextract":
        return _reextract(args)
    if args.command == "backfill":
        return _backfill(args)
    if args.command in ("status", "report"):
        return _status(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    try:
        settings = _settings(args.archive_uri, args.settings)
        from pipelines.archive import check_tables, open_store, open_tables

        store = open_store(settings)
        check_tables(store)
        window = _window(args) if args.command == "dedup" else None
        tables = open_tables(store)
    except ArchiveError as exc:
        print(f"news-archive: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        if args.command == "convert":
            for dataset, table in tables.items():
                print(f"{dataset}: table version {table.delta().version()}, {len(table.paths())} files")
            return 0
        if args.command == "dedup":
            return _dedup(store, tables, settings, window, args)
        return _compact(store, tables, settings, args)
    except Exception as exc:  # a step failed: say so in one line, and the exit code tells the scheduler
        logging.getLogger(__name__).exception("news-archive %s failed", args.command)
        print(f"news-archive: {args.command} failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED


def _reextract(args) -> int:
    """``scrapy crawl reextract`` with the command's options as its arguments and settings; with ``--ray`` (or
    ``RAY_ADDRESS``), one Ray task per WARC file that still has records to re-extract."""
    if args.ray or args.ray_address or os.environ.get("RAY_ADDRESS"):
        return _reextract_on_ray(args)
    return _scrapy_crawl("reextract", {
        "since": args.since, "until": args.until, "domains": ",".join(args.domain),
        "extractor_version": args.extractor_version, "warc_files": ",".join(args.warc_file),
    }, {"ARCHIVE_URI": args.archive_uri, "EXTRACT_FAVOR_PRECISION": "True" if args.favor_precision else None},
        args.settings)


def _reextract_on_ray(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    try:
        from crawler.spiders.reextract import selection_from_args
        from pipelines.archive import check_tables, open_store

        settings = _settings(args.archive_uri, args.settings)
        selection = selection_from_args(args.since, args.until, ",".join(args.domain), args.extractor_version,
                                        ",".join(args.warc_file))
        store = open_store(settings)
        check_tables(store)
    except ArchiveError as exc:
        print(f"news-archive: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    from pipelines.ray_tasks import plan_reextract_tasks, reextract_command, run_tasks, task_crawl_id

    todo, skipped = plan_reextract_tasks(store, selection, favor_precision=args.favor_precision)
    print(f"reextract on Ray: {len(todo)} WARC file(s) to re-extract, {len(skipped)} with nothing left to do")
    uri = settings["ARCHIVE_URI"]
    uri = uri if "://" in uri else os.path.abspath(uri)
    arguments = [part for day in ("since", "until") if getattr(args, day) for part in (f"--{day}", getattr(args, day))]
    arguments += [part for domain in args.domain for part in ("--domain", domain)]
    arguments += ["--extractor-version", args.extractor_version] if args.extractor_version else []
    arguments += ["--favor-precision"] if args.favor_precision else []
    arguments += [part for override in args.settings for part in ("-s", override)]
    now = datetime.now(timezone.utc)
    commands = {}
    for name in todo:
        crawl_id = task_crawl_id("reextract", name, now)
        commands[name] = (crawl_id, reextract_command(uri, name, crawl_id, arguments))
    results = run_tasks(commands, address=args.ray_address) if commands else []
    return _task_report("reextract", results, skipped=len(skipped))


def _backfill(args) -> int:
    """``scrapy crawl backfill`` with the command's options as its arguments and settings; the date range also
    bounds the publication day once extracted."""
    sources = [source if "://" in source else os.path.abspath(source) for source in args.sources]
    if args.ray or args.ray_address or os.environ.get("RAY_ADDRESS"):
        return _backfill_on_ray(args, sources)
    return _scrapy_crawl("backfill", {
        "sources": json.dumps(sources) if sources else None, "cc_news": args.cc_news, "sites": args.sites,
        "start_urls": args.start_urls, "since": args.since, "until": args.until,
    }, {"ARCHIVE_URI": args.archive, "EXTRACT_PUBLISHED_SINCE": args.since, "EXTRACT_PUBLISHED_UNTIL": args.until},
        args.settings)


def _backfill_on_ray(args, sources: list[str]) -> int:
    """One Ray task per WARC file no complete backfill has read yet: ``news-archive backfill FILE ...``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    from crawler.commands.crawl import check_before_crawl
    from crawler.spiders.backfill import done_sources, read_bytes
    from pipelines.archive import open_store
    from pipelines.backfill import SourceError, file_day, warc_sources

    try:
        settings = _settings(args.archive, args.settings)
        check_before_crawl(settings, {"sources": json.dumps(sources) if sources else None, "cc_news": args.cc_news,
                                      "sites": args.sites, "start_urls": args.start_urls, "since": args.since,
                                      "until": args.until}, spider="backfill")
        store = open_store(settings)
        files = warc_sources(sources, cc_news=args.cc_news, cc_news_base=settings["BACKFILL_CC_NEWS_BASE"],
                             read_bytes=lambda uri: read_bytes(uri, settings))
    except (ArchiveError, SourceError) as exc:
        print(f"news-archive: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    from pipelines.ray_tasks import backfill_command, run_tasks, task_crawl_id

    done = done_sources(store)
    since, until = (date.fromisoformat(day) if day else None for day in (args.since, args.until))

    def outside(uri: str) -> bool:  # as the backfill itself judges a file by the day in its name
        day = file_day(uri)
        return bool(day and ((since and day < since - timedelta(days=1)) or (until and day > until + timedelta(days=1))))

    out_of_range = [uri for uri in files if uri not in done and outside(uri)]
    todo = [uri for uri in files if uri not in done and uri not in out_of_range]
    print(f"backfill on Ray: {len(todo)} WARC file(s) to read, {len(files) - len(todo) - len(out_of_range)} read by "
          f"earlier backfills, {len(out_of_range)} outside the dates")
    uri = settings["ARCHIVE_URI"]
    uri = uri if "://" in uri else os.path.abspath(uri)
    arguments = ["--sites", os.path.abspath(args.sites)] if args.sites else ["--start-urls", args.start_urls]
    arguments += [part for day in ("since", "until") if getattr(args, day) for part in (f"--{day}", getattr(args, day))]
    arguments += [part for override in args.settings for part in ("-s", override)]
    now = datetime.now(timezone.utc)
    commands = {}
    for source in todo:
        crawl_id = task_crawl_id("backfill", source, now)
        commands[source] = (crawl_id, backfill_command(uri, source, crawl_id, arguments))
    results = run_tasks(commands, address=args.ray_address) if commands else []
    return _task_report("backfill", results, skipped=len(files) - len(todo))


def _task_report(stage: str, results, *, skipped: int) -> int:
    failed = [result for result in results if result.returncode != 0]
    for result in results:
        print(f"  {result.unit}: {'done' if result.returncode == 0 else f'exit {result.returncode}'} "
              f"(runs/{result.crawl_id}.json)")
    for result in failed:
        print(f"news-archive: task {result.unit} failed (exit {result.returncode}): "
              f"{result.output.strip().splitlines()[-1] if result.output.strip() else ''}", file=sys.stderr)
    print(f"{stage} on Ray: {len(results) - len(failed)} task(s) done, {len(failed)} failed, {skipped} skipped")
    return EXIT_FAILED if failed else 0


def _scrapy_crawl(spider: str, spider_args: dict, settings: dict, overrides: list[str]) -> int:
    """``scrapy crawl <spider>`` with the arguments and settings that have a value, then the user's ``-s``; it
    exits with the run's own exit code."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")
    from scrapy.cmdline import execute

    command = ["scrapy", "crawl", spider]
    command += [part for name, value in spider_args.items() if value for part in ("-a", f"{name}={value}")]
    command += [part for name, value in settings.items() if value for part in ("-s", f"{name}={value}")]
    command += [part for override in overrides for part in ("-s", override)]
    execute(command)
    return 0


def _status(args) -> int:
    """``status`` and ``report``: reading only, nothing is created or changed."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    try:
        if args.days < 1:
            raise ArchiveError(f"--days must be at least 1, not {args.days}")
        settings = _settings(args.archive_uri, args.settings)
        from pipelines.archive import open_store
        from pipelines.health import HealthSettings
        from pipelines.manifest import mask_uri
        from pipelines.status import read_overview

        store = open_store(settings)
        overview = read_overview(store, uri=mask_uri(settings["ARCHIVE_URI"]), days=args.days,
                                 health=HealthSettings.from_settings(settings),
                                 runs_read=settings.getint("HEALTH_RUNS_READ"))
    except ArchiveError as exc:
        print(f"news-archive: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except Exception as exc:
        logging.getLogger(__name__).exception("news-archive %s failed", args.command)
        print(f"news-archive: {args.command} failed: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    if args.command == "report":
        from pipelines.report import write_report

        try:
            write_report(overview, args.output)
        except OSError as exc:  # a missing folder, no permission, a full disk: no report, nothing half-written
            print(f"news-archive: report: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"report written to {args.output}: {len(overview.sites)} site(s), {len(overview.runs)} run(s), "
              f"{len(overview.alerts)} alert(s)")
        return 0
    from pipelines.status import render_status

    sys.stdout.write(render_status(overview, last_runs=args.runs))
    return EXIT_ALERT if args.fail_on_alert and overview.alerts else 0


def _window(args) -> tuple:
    from pipelines.exceptions import ArchiveConfigError

    days = []
    for name in ("since", "until"):
        value = getattr(args, name)
        try:
            days.append(date.fromisoformat(value) if value else None)
        except ValueError:
            raise ArchiveConfigError(f"--{name} must be a day, YYYY-MM-DD: {value!r}") from None
    return tuple(days)


def _dedup(store, tables, settings, window, args) -> int:
    from pipelines.dedup_pass import dedup_pass

    now = datetime.now(timezone.utc)
    since, until = window
    if since is None:
        since = now.date() - timedelta(days=settings.getint("DEDUP_NEAR_WINDOW_DAYS"))
    reader = None
    if args.ray or args.ray_address or os.environ.get("RAY_ADDRESS"):
        from pipelines.ray_tasks import partition_reader

        reader = partition_reader(settings["ARCHIVE_URI"] if "://" in settings["ARCHIVE_URI"]
                                  else os.path.abspath(settings["ARCHIVE_URI"]), args.settings,
                                  address=args.ray_address)
    report = dedup_pass(store, tables, pass_id=f"{now:%Y%m%dT%H%M%SZ}-dedup", since=since, until=until, now=now,
                        near_distance=settings.getint("DEDUP_NEAR_DISTANCE"), read_partitions=reader)
    if reader is not None:
        print(f"dedup on Ray: {report.partitions} partition(s) of articles read as {report.partitions} task(s)")
    for copy in report.copies:
        print(f"  {copy.kind} (distance {copy.distance}): {copy.row['canonical_url']} -> "
              f"{copy.original['canonical_url']}")
    print(report.line())
    return 0


def _compact(store, tables, settings, args) -> int:
    from pipelines.compact import compact_tables, vacuum_tables
    from pipelines.state import write_state_snapshot
    from pipelines.table import table_keys

    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-compact"
    done = compact_tables(
        tables,
        target_bytes=args.target_bytes or settings.getint("ARCHIVE_COMPACT_TARGET_BYTES"),
        closed_after_days=(args.closed_after_days if args.closed_after_days is not None
                           else settings.getint("ARCHIVE_COMPACT_CLOSED_AFTER_DAYS")),
        compression=settings["ARCHIVE_COMPRESSION"], run_id=run_id,
    )
    for part in done:
        print(f"{part.dataset} dt={part.dt}: {part.files_before} files ({part.bytes_before} bytes) -> "
              f"{part.files_after} ({part.bytes_after} bytes), table version {part.table_version}")
    if done:  # the state snapshot names files compaction replaced: the next crawl would read the tables whole
        keys, versions = table_keys(tables)
        write_state_snapshot(store, snapshot_id=run_id, near_distance=settings.getint("DEDUP_NEAR_DISTANCE"),
                             data_keys=keys, table_versions=versions)
    if not args.no_vacuum:
        retain = args.retain_hours if args.retain_hours is not None else settings.getint("ARCHIVE_VACUUM_RETAIN_HOURS")
        for dataset, removed in vacuum_tables(tables, retain_hours=retain).items():
            print(f"{dataset}: vacuum removed {len(removed)} file(s) older than {retain} h that no version needs")
    print(f"compacted {len(done)} partition(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
