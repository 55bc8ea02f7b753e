"""Every default of the crawler and the archive; every environment variable is read here and nowhere else.

Override any of them with ``-s NAME=VALUE``; ``ARCHIVE_URI`` (and
``CRAWL_CONTACT``) may also come from the environment.
"""

import os
from importlib.metadata import version

from scrapy.settings import default_settings as _scrapy_defaults

BOT_NAME = "news-archive"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
COMMANDS_MODULE = "crawler.commands"  # `scrapy crawl` that exits non-zero when the archive was not written

# --- the archive ---------------------------------------------------------------------------------------------
ARCHIVE_URI = os.environ.get("ARCHIVE_URI", "./archive")  # folder path, file:// URI or s3://bucket/prefix
# Closed files wait here until published; default <archive>/_spool for a folder,
# $XDG_CACHE_HOME/news-archive/spool/<hash of the URI> for S3.
ARCHIVE_SPOOL_DIR = os.environ.get("ARCHIVE_SPOOL_DIR", "")
ARCHIVE_CRAWL_ID = ""  # default: made at start, e.g. 20261125T143800Z-3f9a1c
ARCHIVE_MAX_FILE_ROWS = 100_000  # a Parquet file holds at most this many rows (then it is rolled)...
ARCHIVE_MAX_FILE_BYTES = 128 * 2**20  # ...or about this many bytes of row data
ARCHIVE_ROW_GROUP_ROWS = 10_000  # a row group is written when the buffer reaches this many rows...
ARCHIVE_ROW_GROUP_BYTES = 8 * 2**20  # ...or about this many bytes (16 MiB: the crawler ~13 MB more at 4,000 pages)
ARCHIVE_COMPRESSION = "zstd"
ARCHIVE_UPLOAD_THREADS = 2  # files published in the background while the crawl goes on

# S3 (ARCHIVE_URI=s3://bucket/prefix). Credentials: boto3's default chain only (environment, profile,
# container or instance role). Endpoint: AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3, or the setting below.
ARCHIVE_S3_ENDPOINT_URL = ""
ARCHIVE_S3_REGION = ""
ARCHIVE_S3_ADDRESSING_STYLE = ""  # auto, path (MinIO, most S3-compatible stores) or virtual
ARCHIVE_S3_STORAGE_CLASS = ""  # e.g. STANDARD_IA, INTELLIGENT_TIERING
ARCHIVE_S3_SSE = ""  # AES256 or aws:kms
ARCHIVE_S3_SSE_KMS_KEY_ID = ""
ARCHIVE_S3_RETRY_MODE = "standard"  # botocore retry mode: standard or adaptive
ARCHIVE_S3_MAX_ATTEMPTS = 5
ARCHIVE_S3_CONNECT_TIMEOUT = 10
ARCHIVE_S3_READ_TIMEOUT = 60
ARCHIVE_S3_MULTIPART_THRESHOLD = 64 * 2**20  # boto3 managed transfer: multipart above this size
ARCHIVE_S3_MULTIPART_CHUNKSIZE = 16 * 2**20

# --- extraction ----------------------------------------------------------------------------------------------
EXTRACT_MIN_CHARS = 300  # shorter bodies are not articles (CJK characters count three)
EXTRACT_FAVOR_PRECISION = False
EXTRACT_WORKERS = -1  # extraction processes; -1: one per CPU the container may use (its CPU limit, affinity); 0: extract in the crawler's own process
EXTRACT_TIMEOUT = 20  # seconds one page may take; then its worker is killed and replaced
EXTRACT_MAX_HTML_BYTES = 5 * 2**20  # larger pages are dropped without being parsed
EXTRACT_MAX_TASKS_PER_WORKER = 100  # a worker is replaced after this many pages, so its memory stays flat
# Backpressure: while responses waiting for their items (extraction) hold more than this many bytes, no new
# download starts (Scrapy's default 5 MB let ~40 pages of 350 KB wait for 2 workers: ~60 MB in the crawler)
SCRAPER_SLOT_MAX_ACTIVE_SIZE = 2 * 2**20
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"  # extraction is awaited as asyncio

# --- deduplication -------------------------------------------------------------------------------------------
DEDUP_NEAR_DISTANCE = 7  # SimHash Hamming distance; measured by benchmarks/simhash_threshold.py
DEDUP_MAX_PENDING_ALIASES = 100_000
DEDUP_NEAR_WINDOW_DAYS = 30  # near-duplicates are searched among articles fetched this many days back

# --- raw capture (WARC) ------------------------------------------------------------------------------------------
ARCHIVE_WARC_ENABLED = True  # every page handed to extraction kept as WARC/1.1 under <archive>/warc/
ARCHIVE_WARC_MAX_FILE_BYTES = 2**30  # a WARC file is rolled at this size (1 GiB, as Common Crawl does)
ARCHIVE_WARC_GZIP_LEVEL = 6  # deflate level (zlib-ng) of each record's gzip member (benchmarks/warc_gzip.py)

# --- re-extraction and backfill (news-archive reextract, news-archive backfill) -----------------------------------
ARCHIVE_JOB = "crawl"  # what the run is (crawl, reextract, backfill), set by its spider; in the manifest
WARC_MAX_IN_FLIGHT = 32  # WARC records read and not yet written, at most (memory stays flat)
BACKFILL_CC_NEWS_BASE = "https://data.commoncrawl.org/"  # where --cc-news finds crawl-data/CC-NEWS/ (or s3://commoncrawl/)
EXTRACT_PUBLISHED_SINCE = ""  # YYYY-MM-DD: an article published (as it states) before this day is a reject
EXTRACT_PUBLISHED_UNTIL = ""  # YYYY-MM-DD: ... after this day

# --- tables: compaction and vacuum (news-archive compact) ----------------------------------------------------
ARCHIVE_COMPACT_TARGET_BYTES = 128 * 2**20  # compaction writes files of about this size
ARCHIVE_COMPACT_CLOSED_AFTER_DAYS = 1  # a partition is compacted once its day is this many days behind today (UTC)
ARCHIVE_VACUUM_RETAIN_HOURS = 168  # vacuum deletes files no table version of the last this many hours needs

# --- state across runs (kept in <archive>/state/) ------------------------------------------------------------
ARCHIVE_STATE_SNAPSHOT_FILES = 200  # write a new state snapshot when this many data files are not covered
# While a run goes on, read what other writers (crawl workers of other shards) committed this often, so that an
# article one of them archived minutes ago is a duplicate here, not a second row; 0: only at start.
ARCHIVE_STATE_REFRESH_SECONDS = 300

# --- crawling ------------------------------------------------------------------------------------------------
# Sharding by site (crawler/shards.py): worker i of N crawls only the sites whose registered domain hashes to i.
# CRAWL_SHARD="i/N"; or, in a Kubernetes Indexed Job, CRAWL_SHARDS=N and the JOB_COMPLETION_INDEX it sets.
CRAWL_SHARD = os.environ.get("CRAWL_SHARD", "")
CRAWL_SHARDS = os.environ.get("CRAWL_SHARDS", "")
JOB_COMPLETION_INDEX = os.environ.get("JOB_COMPLETION_INDEX", "")
CRAWL_MAX_LINK_DEPTH = 3  # HTML link hops from a start page (feed and sitemap entries are fetched, not followed)
CRAWL_MAX_LINKS_PER_PAGE = 1000  # links followed from one page (the first ones); a page of 50,000 links blocks no one
CRAWL_REVISIT_AFTER_DAYS = 0  # >0: article URLs archived this many days ago are fetched again (conditionally)
# A URL that failed permanently (404, 410, a redirect off the site, too large, not HTML) is not requested again
# for this many days; each further failure doubles the wait. 5xx, 429 and timeouts are retried on the next run.
CRAWL_RETRY_FAILED_AFTER_DAYS = 7
CRAWL_CONTACT = os.environ.get("CRAWL_CONTACT", "")  # URL or e-mail site owners can reach you at
USER_AGENT = f"news-archive/{version('news-archive')}"  # the spider appends " (+CRAWL_CONTACT)"

ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 10 * 2**20  # Scrapy's default is 1 GiB
DOWNLOAD_WARNSIZE = 4 * 2**20
RETRY_TIMES = 2
# Breadth first: home pages, feeds and sitemaps (where new articles are) before deep pages.
DEPTH_PRIORITY = 1
SCHEDULER_DISK_QUEUE = "scrapy.squeues.PickleFifoDiskQueue"
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"
# The frontier (requests waiting) in disk queues in a temporary folder of the run, removed at its end (crawler/frontier.py):
# a 50,000-URL sitemap does not grow the crawler. Ignored when JOBDIR is set (Scrapy's own resumable queues).
SCHEDULER = "crawler.frontier.DiskFrontierScheduler"
CRAWL_FRONTIER_ON_DISK = True
CRAWL_FRONTIER_DIR = ""  # default: the system's temporary folder (TMPDIR)
DEPTH_LIMIT = 8  # safety net for nested sitemap indexes; link depth is CRAWL_MAX_LINK_DEPTH
REDIRECT_MAX_TIMES = 5
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # Scrapy 2.19's HTTP server that runs Python code sent to it
# Off, and not even imported: left out of the base list, since Scrapy imports every class named in EXTENSIONS, a
# None there too (the remote control pulls in aiohttp: ~9 MB per crawl). Put one in EXTENSIONS to have it back.
_OFF = {"scrapy.extensions.telnet.TelnetConsole", "scrapy.extensions.remote_control.RemoteControl"}
EXTENSIONS_BASE = {name: order for name, order in _scrapy_defaults.EXTENSIONS_BASE.items() if name not in _OFF}
EXTENSIONS = {
    "crawler.memory.ReturnFreedMemory": 0,
    "crawler.progress.CrawlProgress": 0,
    "crawler.sitehealth.SiteHealthLog": 10,  # the crawl's last lines: the sites health flags (pipelines/health.py)
}
# A progress line at INFO every this many seconds (pages fetched, articles, duplicates, rejects, requests waiting,
# pages/s over the interval, extraction workers busy), and a last one with the totals when the spider closes; 0: off.
PROGRESS_INTERVAL = 5
# auto: a live progress bar (tqdm) instead of the line when stderr is a terminal, the line when it is not (a
# CronJob's log); off: always the line.
PROGRESS_BAR = "auto"
# glibc, in the crawler's process: blocks from this size up are mmap'd and given back when freed; 0 leaves
# glibc's default, whose threshold grows so that freed response bodies stay resident. (Extraction workers instead
# malloc_trim every 10 pages, pipelines/extract.py WORKER_TRIM_EVERY, and are recycled every
# EXTRACT_MAX_TASKS_PER_WORKER pages.)
MEMORY_MALLOC_THRESHOLD = 128 * 1024
MEMORY_TRIM_INTERVAL = 1  # seconds between malloc_trim calls in the crawler's process (0: never)
MEMORY_ARROW_SYSTEM_POOL = True  # pyarrow allocates through malloc, not its own mimalloc/jemalloc pool
REQUEST_FINGERPRINTER_CLASS = "crawler.fingerprinter.CanonicalRequestFingerprinter"

# Only http and https: Scrapy also fetches file://, s3://, ftp:// and data: by default.
DOWNLOAD_HANDLERS = {"file": None, "s3": None, "ftp": None, "data": None}

# Containment: no connection to loopback, private, link-local, reserved or metadata addresses (checked on the
# resolved address, redirects included). True allows them all; networks ("127.0.0.0/8,::1") allow those only.
ALLOW_PRIVATE_NETWORKS = False
# Networks ("127.0.0.0/8,::1", a data centre's ranges): when given, no address outside them is ever connected to,
# public ones included (reject network_not_allowed); the rule above still applies inside them. Empty: no restriction.
CRAWL_ALLOWED_NETWORKS = ""
TWISTED_DNS_RESOLVER = "crawler.containment.PrivateNetworkResolver"
DOWNLOADER_MIDDLEWARES = {
    # an off-site redirect target is refused where the request's errback records it, not silently at scheduling
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "crawler.offsite.RecordedOffsiteMiddleware": 50,
    "crawler.containment.ContainmentMiddleware": 60,  # after OffsiteMiddleware, before robots.txt
    # robots.txt that answers 5xx or cannot be fetched: the site is disallowed for the run (RFC 9309)
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.robotstxt.StrictRobotsTxtMiddleware": 100,
    # a redirect to a URL already archived or requested is not followed (before Scrapy's RedirectMiddleware, 600)
    "crawler.known.KnownRedirectFilter": 650,
    "crawler.reachability.StartUrlReachability": 950,  # next to the downloader: sees every answer
    "crawler.received.ReceivedHeaders": 940,  # the headers as received, before decompression rewrites them
    # meta refresh read from the page's first 16 KiB, not from the whole page decoded in the crawler
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,
    "crawler.metarefresh.HeadMetaRefreshMiddleware": 580,
}
# Skip what is known: after the depth and URL-length filters (900, 800), so what it counts as requested is sent
SPIDER_MIDDLEWARES = {
    "crawler.known.KnownUrlFilter": 650,
}

ITEM_PIPELINES = {
    "pipelines.capture.CapturePipeline": 50,  # raw capture: the exchange kept as WARC, the row given its pointer
    "pipelines.extract.ExtractPipeline": 100,
    "pipelines.dedup.DedupPipeline": 200,
    "pipelines.archive.ArchivePipeline": 300,
}

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
FEED_EXPORT_ENCODING = "utf-8"

# Site health (pipelines/health.py; news-archive status --fail-on-alert, the report, the crawl's last log lines):
# each site judged on its last HEALTH_LOW_RUNS complete crawl runs against the median of the HEALTH_BASELINE_RUNS
# runs before them (at least HEALTH_MIN_BASELINE_RUNS of them).
HEALTH_ENABLED = True  # the crawl ends with one log line per flagged site
HEALTH_BASELINE_RUNS = 5
HEALTH_MIN_BASELINE_RUNS = 2
HEALTH_LOW_RUNS = 1
HEALTH_MIN_ARTICLES = 3  # a site whose median is fewer new articles per run is not judged on its yield
HEALTH_YIELD_DROP = 0.2  # flagged: new articles below this fraction of the site's median in each run judged
HEALTH_SHARE_RISE = 0.3  # flagged: the share of failed (or not-article) pages up by this much over its median
HEALTH_BODY_DROP = 0.5  # flagged: the median body length below this fraction of its recent median
HEALTH_COVERAGE_DROP = 0.3  # flagged: the share of rows with a title, an author or a date down by this much
HEALTH_MIN_PAGES = 3  # shares are judged on at least this many pages on both sides
HEALTH_MIN_ROWS = 8  # body lengths and coverage on at least this many article rows on both sides
HEALTH_RUNS_READ = 200  # run manifests read, newest first (an S3 GET each)
