"""Re-extraction on Ray: pages per second with 1 and 2 Ray workers on this machine, the local pool beside them,
the scaling efficiency, and the projected wall time of a one-month CC-NEWS backfill on N nodes.

Crawls the throughput benchmark's site (real corpus layouts, sentences drawn from the whole corpus, ~170 KB a
page) into an archive with small WARC files (``--warc-mib``, so that there are several tasks), copies it, then
re-extracts each copy in precision mode (every record is extracted again): with the crawl's own local pool
(``news-archive reextract``), and as one Ray task per WARC file on a local Ray cluster of 1 CPU, then of 2 CPUs
(``news-archive reextract --ray-address``; the cluster is started before the clock starts). Pages per second are
records re-extracted over wall time, in the same invocation. Scaling efficiency = rate(2) / (2 x rate(1)).

The projection: a CC-NEWS month of ``--month-files`` WARC files of 1 GiB (Common Crawl rolls its files at 1 GiB;
the month's ``warc.paths.gz`` lists them) holds 1 GiB / (WARC bytes per page, measured on this crawl) pages; a
backfill extracts every page of the sites it keeps, so at worst every page: wall time = pages / (per-core rate
with 2 Ray workers x cores per node x N nodes). Run:

    python benchmarks/ray_reextract.py --pages 600
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import LazySite, load_corpus, run_measured  # noqa: E402

from crawler.localsite import LocalSite  # noqa: E402


def reextracted(archive: Path, since: set[str]) -> int:
    """Records the re-extraction runs (manifests not in ``since``) read."""
    total = 0
    for path in (archive / "runs").glob("*.json"):
        if path.name not in since:
            total += json.loads(path.read_text())["counts"]["warc_records_read"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=600)
    parser.add_argument("--warc-mib", type=float, default=4, help="WARC file size of the crawl (MiB)")
    parser.add_argument("--month-files", type=int, default=500, help="WARC files of 1 GiB in the CC-NEWS month")
    parser.add_argument("--cores-per-node", type=int, default=16)
    args = parser.parse_args()
    env = {"AWS_EC2_METADATA_DISABLED": "true", "RAY_USAGE_STATS_ENABLED": "0"}
    layouts, sentences = load_corpus()
    site = LocalSite()
    base = site.start()
    site.pages = LazySite(base, args.pages, layouts, sentences)
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template"
        crawl = [sys.executable, "-m", "scrapy", "crawl", "news", "-a", f"start_urls={base}/sitemap.xml",
                 "-s", f"ARCHIVE_URI={template}", "-s", f"ARCHIVE_WARC_MAX_FILE_BYTES={int(args.warc_mib * 2**20)}",
                 "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False", "-s", "LOG_LEVEL=WARNING",
                 "-s", "ALLOW_PRIVATE_NETWORKS=127.0.0.0/8", "-s", "CRAWL_ALLOWED_NETWORKS=127.0.0.0/8",
                 "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16"]
        result = run_measured(crawl, {**os.environ, **env})
        site.stop()
        if result["returncode"] != 0:
            sys.exit(f"the crawl failed:\n{result['output'][-3000:]}")
        warc_files = sorted((template / "warc").rglob("*.warc.gz"))
        warc_bytes = sum(path.stat().st_size for path in warc_files)
        crawled = {path.name for path in (template / "runs").glob("*.json")}
        [manifest] = [json.loads((template / "runs" / name).read_text()) for name in crawled]
        pages_kept = manifest["counts"]["warc_records"]
        rates = {}
        for name, cpus in (("local pool", None), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
            archive = Path(folder) / name.replace(" ", "").replace(",", "-")
            shutil.copytree(template, archive)
            command = [sys.executable, "-m", "crawler.cli", "reextract", str(archive), "--favor-precision",
                       "-s", "LOG_LEVEL=WARNING"]
            context = None
            if cpus is not None:
                from pipelines.ray_tasks import connect

                context = connect(num_cpus=cpus)
                command += ["--ray-address", context.address_info["gcs_address"]]
            try:  # the environment as Ray left it (its authentication mode, once a cluster is started)
                result = run_measured(command, {**os.environ, **env})
            finally:
                if context is not None:
                    import ray

                    ray.shutdown()
            if result["returncode"] != 0:
                sys.exit(f"{name} failed:\n{result['output'][-3000:]}")
            records = reextracted(archive, crawled)
            rates[name] = records / result["wall"]
            print(f"{name:15s} {records} records in {result['wall']:6.1f} s: {rates[name]:5.1f} pages/s, "
                  f"CPU {result['cpu']:6.1f} s, peak PSS {result['peak_pss_mb']:4.0f} MB")
    efficiency = rates["ray, 2 workers"] / (2 * rates["ray, 1 worker"])
    per_core = rates["ray, 2 workers"] / 2
    per_page = warc_bytes / pages_kept
    month_pages = args.month_files * 2**30 / per_page
    print(f"{args.pages} pages, {len(warc_files)} WARC files ({warc_bytes / 2**20:.1f} MiB, {per_page / 1024:.0f} KiB "
          f"per page with its request record), {os.cpu_count()} cores")
    print(f"scaling efficiency 1 -> 2 Ray workers: {rates['ray, 2 workers']:.1f} / (2 x {rates['ray, 1 worker']:.1f}) "
          f"= {efficiency:.2f}; Ray with 2 workers / local pool: {rates['ray, 2 workers'] / rates['local pool']:.2f}")
    print(f"CC-NEWS month: {args.month_files} files x 1 GiB / {per_page / 1024:.0f} KiB = {month_pages / 1e6:.1f} M pages; "
          f"at {per_core:.1f} pages/s per core x {args.cores_per_node} cores per node:")
    for nodes in (1, 4, 16, 64):
        hours = month_pages / (per_core * args.cores_per_node * nodes) / 3600
        print(f"  {nodes:3d} node(s): {hours:7.1f} h")


if __name__ == "__main__":
    main()
