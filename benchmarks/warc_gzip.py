"""What raw capture's gzip costs: one WARC response record per page, written by warcio, at each gzip setting.

Generates the pages ``benchmarks/throughput.py`` serves (~350 KB each) and writes each as a WARC response record
(warcio: digests, headers, one gzip member per record) with warcio's own writer (zlib at level 9), with zlib at
level 6, and with the archive's ``LevelWARCWriter`` (zlib-ng) at levels 6, 4 and 1. Prints CPU milliseconds per
page (``time.process_time``, this one process) and the compression ratio (page bytes / record bytes) of each,
measured in the same run. Run:

    python benchmarks/warc_gzip.py --pages 200
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import GzippingWrapper, WARCWriter  # noqa: E402

from pipelines.warc import LevelWARCWriter  # noqa: E402
from throughput import make_pages  # noqa: E402


class _Zlib6(GzippingWrapper):
    def __init__(self, out) -> None:
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS + 16)
        self.out = out


class ZlibLevel6Writer(WARCWriter):
    def _write_warc_record(self, out, record):
        return super()._write_warc_record(_Zlib6(out), record)


def measure(pages: list[bytes], make_writer) -> tuple[float, float]:
    """(CPU ms per page, page bytes / record bytes)."""
    written = 0
    started = time.process_time()
    for number, body in enumerate(pages):
        out = io.BytesIO()
        writer = make_writer(out)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(f"http://127.0.0.1/a/{number}/", "response",
                                                      payload=io.BytesIO(body), http_headers=headers))
        written += out.tell()
    return 1000 * (time.process_time() - started) / len(pages), sum(map(len, pages)) / written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    pages = make_pages(args.pages)
    print(f"{len(pages)} pages, mean {sum(map(len, pages)) / len(pages) / 1024:.0f} KiB")
    for name, make_writer in (
        ("warcio's WARCWriter, zlib level 9", lambda out: WARCWriter(out, gzip=True)),
        ("zlib level 6", lambda out: ZlibLevel6Writer(out, gzip=False)),
        ("LevelWARCWriter, zlib-ng level 6", lambda out: LevelWARCWriter(out, level=6)),
        ("LevelWARCWriter, zlib-ng level 4", lambda out: LevelWARCWriter(out, level=4)),
        ("LevelWARCWriter, zlib-ng level 1", lambda out: LevelWARCWriter(out, level=1)),
    ):
        ms, ratio = measure(pages, make_writer)
        print(f"  {name:36s} {ms:6.2f} ms per page  ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
