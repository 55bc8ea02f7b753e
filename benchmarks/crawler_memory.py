"""The crawler process's memory over a long crawl, by kind: what grows with the number of pages, and what does not.

Runs ``scrapy crawl news`` against the site ``benchmarks/throughput.py`` serves (N distinct article pages, a
sitemap), with the project's extensions and one more, ``MemoryProbe`` below, which every ``--every`` archived pages
writes, from inside the crawler process:

- PSS, and its anonymous and file-backed parts (``/proc/self/smaps_rollup``; file-backed: the shared libraries'
  pages the crawler touched);
- glibc's view (``mallinfo2``): bytes in its arenas and in mmap'd blocks, and of those in use and free (the crawler
  gives free pages back every ``MEMORY_TRIM_INTERVAL`` seconds);
- Python's: blocks held by its allocator (``sys.getallocatedblocks``), and with ``--trace`` the bytes tracemalloc
  sees (started when the probe starts, after the imports; it slows the crawl) and the lines whose memory grew most
  since the first checkpoint;
- Arrow's: bytes pyarrow holds (rows waiting for their row group, ``ARCHIVE_ROW_GROUP_BYTES``);
- the crawl's own indexes: articles in the run's dedup index and requests Scrapy's duplicate filter has seen.

Then the change of each figure per 1,000 pages from the first checkpoint to the last. Run:

    python benchmarks/crawler_memory.py --pages 15000 --every 1500
    python benchmarks/crawler_memory.py --pages 6000 --every 2000 --trace
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

OUT = "CRAWLER_MEMORY_OUT"  #: where the probe appends its JSON lines (set by the benchmark)
EVERY = "CRAWLER_MEMORY_EVERY"
TRACE = "CRAWLER_MEMORY_TRACE"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def _rollup() -> dict[str, float]:
    figures = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            name, _, rest = line.partition(":")
            if name in ("Pss", "Pss_Anon", "Pss_File"):
                figures[name] = int(rest.split()[0]) / 1024
    return figures


class MemoryProbe:
    """Scrapy extension (benchmark only): the crawler's memory by kind every ``CRAWLER_MEMORY_EVERY`` items."""

    def __init__(self, crawler) -> None:
        from scrapy import signals

        self.crawler = crawler
        self.items = 0
        self.every = int(os.environ.get(EVERY, "1500"))
        self.out = open(os.environ[OUT], "a", encoding="utf-8")  # noqa: SIM115 (open for the crawl's life)
        self.libc = ctypes.CDLL("libc.so.6")
        self.libc.mallinfo2.restype = _MallInfo2
        self.first_snapshot = None
        if os.environ.get(TRACE):
            import tracemalloc

            tracemalloc.start(1)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def item_scraped(self, item, **_) -> None:
        self.items += 1
        if self.items % self.every == 0:
            self.out.write(json.dumps(self.figures()) + "\n")
            self.out.flush()

    def spider_closed(self, spider=None) -> None:
        self.out.close()

    def figures(self) -> dict:
        import tracemalloc

        import pyarrow

        from pipelines.dedup import DedupPipeline

        mib = 2**20
        info = self.libc.mallinfo2()
        dedup = self.crawler.get_item_pipeline(DedupPipeline)
        dupefilter = getattr(self.crawler.engine.scheduler, "df", None)  # Scrapy's RFPDupeFilter
        figures = {"items": self.items, **_rollup(),
                   "glibc_arenas": info.arena / mib, "glibc_mmap": info.hblkhd / mib,
                   "glibc_in_use": (info.uordblks + info.hblkhd) / mib, "glibc_free": info.fordblks / mib,
                   "python_blocks": sys.getallocatedblocks(), "arrow": pyarrow.total_allocated_bytes() / mib,
                   "dedup_articles": len(dedup.index) if dedup is not None else 0,
                   "seen_requests": len(getattr(dupefilter, "fingerprints", ()))}
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            figures["traced"] = sum(stat.size for stat in snapshot.statistics("filename")) / mib
            if self.first_snapshot is None:
                self.first_snapshot = snapshot
            else:  # the lines whose memory grew most since the first checkpoint
                figures["top"] = [(str(stat.traceback[0]), round(stat.size_diff / mib, 2), stat.count_diff)
                                  for stat in snapshot.compare_to(self.first_snapshot, "lineno")[:8]]
        return figures


COLUMNS = [("items", "pages", "{:>7d}"), ("Pss", "PSS MB", "{:7.1f}"), ("Pss_Anon", "anon", "{:6.1f}"),
           ("Pss_File", "file", "{:6.1f}"), ("glibc_arenas", "glibc arenas", "{:12.1f}"),
           ("glibc_mmap", "mmap", "{:5.1f}"), ("glibc_in_use", "in use", "{:6.1f}"), ("glibc_free", "free", "{:5.1f}"),
           ("python_blocks", "Python blocks", "{:13d}"), ("arrow", "Arrow", "{:5.1f}"),
           ("dedup_articles", "dedup index", "{:11d}"), ("seen_requests", "seen requests", "{:13d}")]


def main() -> None:
    import argparse
    import subprocess
    import tempfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    sys.path.insert(0, str(repo / "benchmarks"))
    from crawler import settings as project_settings
    from crawler.localsite import LocalSite
    from throughput import LazySite, load_corpus

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=15000)
    parser.add_argument("--every", type=int, default=1500, help="a checkpoint every this many archived pages")
    parser.add_argument("--trace", action="store_true", help="tracemalloc in the crawler (slower)")
    args = parser.parse_args()
    layouts, sentences = load_corpus()
    site = LocalSite()
    base = site.start()
    site.pages = LazySite(base, args.pages, layouts, sentences)
    extensions = {**project_settings.EXTENSIONS, "benchmarks.crawler_memory.MemoryProbe": 1000}
    settings = {"CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "DOWNLOAD_DELAY": 0,
                "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "WARNING", "ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
                "CRAWL_ALLOWED_NETWORKS": "127.0.0.0/8", "EXTENSIONS": json.dumps(extensions)}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "probe.jsonl"
        command = [sys.executable, "-m", "scrapy", "crawl", "news", "-a", f"start_urls={base}/sitemap.xml",
                   "-s", f"ARCHIVE_URI={folder}/archive"]
        for name, value in settings.items():
            command += ["-s", f"{name}={value}"]
        env = {**os.environ, OUT: str(out), EVERY: str(args.every), TRACE: "1" if args.trace else "",
               "AWS_EC2_METADATA_DISABLED": "true"}
        finished = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
        site.stop()
        if finished.returncode != 0 or not out.exists():
            sys.exit(f"the crawl failed (exit code {finished.returncode}):\n{finished.stderr[-3000:]}")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    print(f"{args.pages} pages, a checkpoint every {args.every} archived pages (MB unless said)")
    print("  ".join(title for _, title, _ in COLUMNS))
    for row in rows:
        print("  ".join(form.format(row[key]).rjust(len(title)) for key, title, form in COLUMNS))
        for line, size, blocks in row.get("top", []):
            print(f"{'':9}{size:+6.2f} MB {blocks:+8d} blocks since the first checkpoint  {line}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        per = 1000 / (last["items"] - first["items"])
        print("per 1,000 pages, checkpoint " + f"{first['items']} to {last['items']}: " + ", ".join(
            f"{title} {(last[key] - first[key]) * per:+.{0 if isinstance(last[key], int) else 2}f}"
            for key, title, _ in COLUMNS[1:]))
        if "traced" in last:
            print(f"traced by tracemalloc: {first['traced']:.1f} -> {last['traced']:.1f} MB")


if __name__ == "__main__":
    main()
