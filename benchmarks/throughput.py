"""Throughput and memory: `scrapy crawl news` against a plain Scrapy spider that extracts inline.

Generates a local site of N distinct article pages (real page layouts from
../shared/corpus, each with its paragraphs replaced by sentences drawn at
random from the whole corpus, so no two pages are near-duplicates), serves it
on 127.0.0.1 with a sitemap, and runs in the same invocation:

(a) a plain Scrapy spider that extracts every page inline with trafilatura in
    its callback and keeps nothing (the usual design),
(b) `scrapy crawl news` into a fresh archive, and
(c) unless --only says otherwise, the same plain spider extracting inline what
    the archive extracts (``pipelines.extract.extract_page``: trafilatura with
    metadata, dates, page signals, hashes): a like-for-like baseline, so the
    ratio to it shows what the worker pool buys and the ratio to (a) what the
    extra fields cost.

For each it prints pages per second, CPU seconds of the whole process tree
(and of the crawler's own process), and the peak memory of the whole process
tree (sampled every 0.1 s), then the ratios, with the machine's core count. Run:

    python benchmarks/throughput.py --pages 1500
    python benchmarks/throughput.py --pages 15000 --only news
    python benchmarks/throughput.py --pages 1500 --only news --only news_nowarc --only reextract

With ``news_nowarc`` the news crawl runs a second time with raw capture off (ARCHIVE_WARC_ENABLED=False): the
ratio shows what keeping every page as WARC costs; the WARC bytes per archived article are printed. With
``reextract`` the news crawl's archive is then re-extracted (``news-archive reextract --favor-precision``): pages
per second on all cores.

Environment: BENCH_CONCURRENCY (CONCURRENT_REQUESTS, default 16); BENCH_EXTRA_SETTINGS, extra `-s` settings for
the news crawl separated by ";" (for example "EXTRACT_WORKERS=1;JOBDIR=/tmp/job").
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crawler.localsite import LocalSite, Page  # noqa: E402

CORPUS = Path(os.environ.get("NEWS_CORPUS_DIR") or REPO.parent / "shared" / "corpus")
_PARAGRAPH = re.compile(rb"(<p\b[^>]*>)([^<]{40,})(</p>)", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

INLINE_SPIDER = '''
import scrapy, trafilatura
from scrapy.spiders import SitemapSpider

class InlineSpider(SitemapSpider):
    name = "inline"
    def parse(self, response):
        text = trafilatura.extract(response.text, url=response.url)  # extract inline, keep nothing
        self.crawler.stats.inc_value("inline/extracted" if text else "inline/empty")
'''

INLINE_SAME_SPIDER = '''
from datetime import datetime, timezone
from scrapy.spiders import SitemapSpider
from pipelines.extract import build_options, extract_page

class InlineSameSpider(SitemapSpider):
    name = "inline_same"
    options = build_options()
    def parse(self, response):
        extraction = extract_page(response.text, response.url, self.options, min_chars=300, now=datetime.now(timezone.utc))
        self.crawler.stats.inc_value(f"inline/{extraction.reason}")  # extract inline, keep nothing
'''


def load_corpus() -> tuple[list[bytes], list[str]]:
    """Page layouts (fundus HTML with enough paragraphs to vary) and every ground-truth sentence."""
    truth = json.loads((CORPUS / "fundus" / "ground_truth.json").read_text(encoding="utf-8"))
    layouts, sentences = [], []
    for record in truth.values():
        html = gzip.decompress((CORPUS / "fundus" / record["file"]).read_bytes())
        replaced = sum(len(match[1]) for match in _PARAGRAPH.findall(html))
        # only layouts whose article text sits in plain <p> elements, so that replacing them varies the body
        if replaced >= 0.8 * len(record["body"].encode()) and b"charset" in html[:4000].lower():
            layouts.append(html)
        sentences += [s for s in _SENTENCE.split(record["body"].replace("\n\n", " ")) if len(s) > 30]
    return layouts, sentences


def make_page(number: int, layouts: list[bytes], sentences: list[str]) -> bytes:
    rng = random.Random(number)
    layout = layouts[number % len(layouts)]

    def fill(match: re.Match) -> bytes:
        text = " ".join(rng.choice(sentences) for _ in range(rng.randint(2, 5)))
        return match.group(1) + text.encode("utf-8", "replace").replace(b"<", b"&lt;") + match.group(3)

    return _PARAGRAPH.sub(fill, layout)


def make_pages(count: int) -> list[bytes]:
    """The first ``count`` pages the benchmark site serves, for benchmarks that time one step on them."""
    layouts, sentences = load_corpus()
    return [make_page(number, layouts, sentences) for number in range(count)]


class LazySite(dict):
    """Pages made on first request (and then kept), so start-up does not wait for N pages."""

    def __init__(self, base: str, count: int, layouts, sentences) -> None:
        super().__init__()
        self.count, self.layouts, self.sentences = count, layouts, sentences
        urls = "".join(f"<url><loc>{base}/a/{i}/story-{i}-archive-benchmark/</loc></url>" for i in range(count))
        self["/robots.txt"] = Page(body=f"User-agent: *\nAllow: /\nSitemap: {base}/sitemap.xml\n".encode(),
                                   content_type="text/plain")
        self["/sitemap.xml"] = Page(body=f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                         f"{urls}</urlset>".encode(), content_type="application/xml")

    def get(self, path, default=None):
        match = re.fullmatch(r"/a/(\d+)/story-\d+-archive-benchmark/", path)
        if match and int(match.group(1)) < self.count:
            return Page(body=make_page(int(match.group(1)), self.layouts, self.sentences))
        return super().get(path, default)


def run_measured(command: list[str], env: dict, cwd: Path | str = REPO) -> dict:
    """Run ``command``; wall time, CPU seconds and peak memory of its whole process tree.

    Memory is sampled every 0.1 s two ways: the sum of resident sizes (RSS), which counts a page shared by
    several processes (libraries, pages a forked worker shares with the fork server) once per process, and
    the sum of proportional set sizes (PSS), which splits a shared page among its sharers: the memory the
    tree really occupies, what a container's memory limit sees (less the page cache)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    parent = psutil.Process(process.pid)
    peak_rss, peak_pss, cpu, per_process, peak_roles = 0, 0, {}, {}, {}
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    while process.poll() is None:
        try:
            tree = [parent] + parent.children(recursive=True)
            rss = pss = 0
            roles: dict[str, tuple[float, int]] = {}  # role: (PSS, processes)
            for proc in tree:
                try:
                    memory = proc.memory_full_info()
                    rss += memory.rss
                    pss += memory.pss
                    role = _role(proc, parent)
                    mb, count = roles.get(role, (0, 0))
                    roles[role] = (mb + memory.pss / 2**20, count + 1)
                    per_process[proc.pid] = max(per_process.get(proc.pid, 0), memory.rss)
                    times = proc.cpu_times()
                    cpu[proc.pid] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            if pss > peak_pss:
                peak_roles = roles
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    reader.join(timeout=5)
    main_peak = per_process.pop(process.pid, 0)
    return {"returncode": process.returncode, "wall": wall, "cpu": sum(cpu.values()), "main_cpu": cpu.get(process.pid, 0),
            "peak_mb": peak_rss / 2**20,
            "peak_pss_mb": peak_pss / 2**20, "main_mb": main_peak / 2**20,
            "children_mb": sorted(round(v / 2**20) for v in per_process.values()), "output": "".join(output),
            "peak_roles": peak_roles}


def _role(proc: psutil.Process, parent: psutil.Process) -> str:
    """What a process of the measured tree is: the crawler itself, the fork server, a worker, or a helper."""
    if proc.pid == parent.pid:
        return "crawler"
    command = " ".join(proc.cmdline())
    if "forkserver" in command:  # the workers are forked from it, under its command line
        return "fork server" if proc.ppid() == parent.pid else "workers"
    if "resource_tracker" in command:
        return "resource tracker"
    return "workers"


def manifest_counts(archive: Path, *, newest: bool = False) -> dict:
    """The counts of the archive's only run manifest (``newest``: of its last one)."""
    manifests = sorted((archive / "runs").glob("*.json"))
    if not newest and len(manifests) != 1:
        raise SystemExit(f"expected one run in {archive}, found {len(manifests)}")
    return json.loads(manifests[-1].read_text())["counts"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1500)
    parser.add_argument("--only", choices=("inline", "news", "inline_same", "news_nowarc", "reextract"),
                        action="append", help="run only these (repeatable); default: inline, news, inline_same; "
                                              "reextract needs news")
    args = parser.parse_args()
    layouts, sentences = load_corpus()
    site = LocalSite()
    base = site.start()
    site.pages = LazySite(base, args.pages, layouts, sentences)
    common = {"CONCURRENT_REQUESTS": int(os.environ.get("BENCH_CONCURRENCY", 16)), "CONCURRENT_REQUESTS_PER_DOMAIN": 16, "DOWNLOAD_DELAY": 0,
              "AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False,
              "ALLOW_PRIVATE_NETWORKS": "127.0.0.0/8",
              "CRAWL_ALLOWED_NETWORKS": "127.0.0.0/8"}  # the news crawl reaches loopback only (the plain spiders ignore it)
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    extra = os.environ.get("BENCH_EXTRA_SETTINGS", "")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        only = args.only or ["inline", "news", "inline_same"]
        for name, code, spider_class in (("inline", INLINE_SPIDER, "InlineSpider"),
                                         ("inline_same", INLINE_SAME_SPIDER, "InlineSameSpider")):
            if name not in only:
                continue
            spider = Path(folder) / f"{name}_spider.py"  # runs outside the project: Scrapy's defaults
            spider.write_text(code + f"\n{spider_class}.sitemap_urls = ['{base}/sitemap.xml']\n")
            command = [sys.executable, "-m", "scrapy", "runspider", str(spider)]
            for setting, value in common.items():
                command += ["-s", f"{setting}={value}"]
            results[name] = run_measured(command, env, cwd=folder)
        for name, capture in (("news", True), ("news_nowarc", False)):
            if name not in only:
                continue
            archive = Path(folder) / f"archive-{name}"
            command = [sys.executable, "-m", "scrapy", "crawl", "news", "-a", f"start_urls={base}/sitemap.xml",
                       "-s", f"ARCHIVE_URI={archive}", "-s", f"ARCHIVE_WARC_ENABLED={capture}"]
            for setting, value in common.items():
                command += ["-s", f"{setting}={value}"]
            for setting in filter(None, extra.split(";")):  # e.g. BENCH_EXTRA_SETTINGS="EXTRACT_WORKERS=1"
                command += ["-s", setting]
            results[name] = run_measured(command, env)
            results[name]["counts"] = manifest_counts(archive)
            results[name]["warc_bytes"] = sum(p.stat().st_size for p in (archive / "warc").rglob("*.warc.gz"))
            if name == "news" and "reextract" in only:  # the same archive, extracted again in precision mode
                command = [sys.executable, "-m", "crawler.cli", "reextract", str(archive), "--favor-precision",
                           "-s", "LOG_LEVEL=WARNING"]
                results["reextract"] = run_measured(command, env)
                results["reextract"]["counts"] = manifest_counts(archive, newest=True)
    site.stop()
    print(f"{args.pages} pages, {os.cpu_count()} cores")
    for name, result in results.items():
        if result["returncode"] != 0:
            print(f"{name} failed:\n{result['output'][-3000:]}")
            sys.exit(1)
        pages = result["counts"]["warc_records_read"] if name == "reextract" else args.pages
        print(f"{name:11s} {pages / result['wall']:5.1f} pages/s  wall {result['wall']:6.1f} s  "
              f"CPU {result['cpu']:6.1f} s (crawler process {result['main_cpu']:.1f} s)  peak memory of the process tree: PSS {result['peak_pss_mb']:4.0f} MB, "
              f"RSS {result['peak_mb']:4.0f} MB (peak RSS: crawler {result['main_mb']:.0f} MB, "
              f"other processes {result['children_mb']} MB)")
        if len(result["peak_roles"]) > 1:
            print(f"{'':11s} PSS at the peak: " + ", ".join(f"{role} {mb:.0f} MB" + (f" ({count})" if count > 1 else "")
                                                       for role, (mb, count) in result["peak_roles"].items()))
    if "news" in results:
        counts = results["news"]["counts"]
        print(f"raw capture: {results['news']['warc_bytes']} WARC bytes for {counts['articles_written']} articles "
              f"({counts['warc_records']} pages kept): {results['news']['warc_bytes'] / max(counts['articles_written'], 1):.0f} "
              f"bytes per archived article")
    if "news" in results and "news_nowarc" in results:
        on, off = results["news"], results["news_nowarc"]
        print(f"raw capture on / off: {off['wall'] / on['wall']:.2f}x the pages/s, peak PSS {on['peak_pss_mb']:.0f} / "
              f"{off['peak_pss_mb']:.0f} MB, CPU {on['cpu']:.1f} / {off['cpu']:.1f} s")
    if "reextract" in results:
        read = results["reextract"]["counts"]["warc_records_read"]
        print(f"reextract: {read} records, {read / results['reextract']['wall']:.1f} pages/s on {os.cpu_count()} cores "
              f"({read / results['reextract']['wall'] / os.cpu_count():.1f} per core), "
              f"report {results['reextract']['counts']['reextract']}")
    if "news" in results:
        counts = results["news"]["counts"]
        cpu = counts["cpu_seconds"]
        follow = cpu.get("dedup", 0) + cpu.get("archive", 0) + cpu.get("upload", 0)
        print(f"news: {counts['articles_written']} articles written, dropped {counts['dropped']}, "
              f"duplicates {counts['duplicates']}")
        print(f"news CPU: extraction {cpu.get('extract', 0):.1f} s in workers; dedup + Parquet + publishing "
              f"{follow:.2f} s = {follow / max(cpu.get('extract', 0), 1e-9):.1%} of it; "
              f"max pages in extraction at once {counts['extract_max_in_flight']}")
    for baseline, what in (("inline", "the inline spider"),
                           ("inline_same", "the inline spider extracting what the archive extracts")):
        if baseline in results and "news" in results:
            ratio = results[baseline]["wall"] / results["news"]["wall"]
            print(f"ratio: the archive runs {ratio:.2f}x as fast as {what}")


if __name__ == "__main__":
    main()
