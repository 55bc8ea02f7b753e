"""Backfill throughput: `news-archive backfill` of one local WARC file, records read per second per core.

Writes a CC-NEWS-like WARC file of N response records (each with its request record) made from the pages of
../shared/corpus (each page's paragraphs replaced by sentences drawn at random from the whole corpus, as the
throughput benchmark does, so no two are near-duplicates), a share of them on the sites' hosts and the rest
on other hosts, then backfills it into a fresh archive and prints records read per second, per core, the pages
extracted per second, and the peak memory of the process tree. Run:

    python benchmarks/backfill.py --records 3000 --site-share 0.5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import load_corpus, make_page, run_measured  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

SITES = ["www.site-one.example", "www.site-two.example"]


def write_warc(path: Path, records: int, site_share: float) -> int:
    layouts, sentences = load_corpus()
    random.seed(7)
    when = datetime(2025, 11, 7, 8, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True, warc_version="WARC/1.1")
        for number in range(records):
            host = random.choice(SITES) if random.random() < site_share else f"www.other-{number % 97}.example"
            url = f"https://{host}/2025/11/07/story-{number}-backfill-benchmark/"
            body = make_page(number, layouts, sentences)
            request = writer.create_warc_record(
                url, "request", payload=io.BytesIO(b""), length=0, warc_headers_dict={"WARC-Date": when},
                http_headers=StatusAndHeaders(f"GET {url} HTTP/1.1", [("Host", host)], is_http_request=True))
            response = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body), warc_headers_dict={"WARC-Date": when},
                http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                              protocol="HTTP/1.1"))
            writer.write_record(request)
            writer.write_record(response)
    return records * 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000, help="response records in the file")
    parser.add_argument("--site-share", type=float, default=0.5, help="share of them on the sites' hosts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        warc = Path(folder) / "CC-NEWS-20251107080000-00000.warc.gz"
        total = write_warc(warc, args.records, args.site_share)
        archive = Path(folder) / "archive"
        command = [sys.executable, "-m", "crawler.cli", "backfill", str(warc), "--archive", str(archive),
                   "--start-urls", ",".join(f"https://{host}/" for host in SITES),
                   "-s", "LOG_LEVEL=WARNING", "-s", "TELNETCONSOLE_ENABLED=False"]
        result = run_measured(command, {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})
        if result["returncode"] != 0:
            print(result["output"][-3000:])
            sys.exit(1)
        [manifest] = [json.loads(p.read_text()) for p in (archive / "runs").glob("*.json")]
        counts = manifest["counts"]
        cores = os.cpu_count()
        print(f"{args.records} response records ({total} records, {warc.stat().st_size} bytes), {cores} cores")
        print(f"backfill: {total / result['wall']:.1f} records read/s = {total / result['wall'] / cores:.1f} per "
              f"core; {counts['warc_records_read']} site pages extracted, {counts['pages_extracted'] / result['wall']:.1f}"
              f" pages/s; {counts['articles_written']} articles; wall {result['wall']:.1f} s, CPU {result['cpu']:.1f} s; "
              f"peak PSS {result['peak_pss_mb']:.0f} MB; skipped {counts['backfill']}")


if __name__ == "__main__":
    main()
