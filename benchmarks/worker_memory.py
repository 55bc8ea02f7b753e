"""An extraction worker's private memory over its life, with and without giving freed pages back (malloc_trim).

Does what the crawl's fork server does (imports ``pipelines.extract.WORKER_PRELOAD``, which extracts one page and
freezes the collector), then forks one worker per setting of ``--trim-every`` (0: never trim); each extracts the same
``--pages`` pages through ``extract_task``, as a pool worker does, and reports its private memory (USS) before the
first page and after the last, and its CPU per page. Pages are the ones ``benchmarks/throughput.py`` serves. Run:

    python benchmarks/worker_memory.py --pages 100 --trim-every 0 --trim-every 1 --trim-every 10
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pipelines import extract  # noqa: E402
from throughput import make_pages  # noqa: E402


def worker(pages: list[bytes], trim_every: int) -> str:
    """In a forked child: the pages (the parent's, shared, not copied) extracted as a pool worker would; a line of
    figures."""
    extract.init_worker(False)
    extract.WORKER_TRIM_EVERY = trim_every or 2**62
    process = psutil.Process()
    before = process.memory_full_info().uss
    started = time.process_time()
    now = datetime.now(timezone.utc)
    for number, body in enumerate(pages):
        url = f"http://127.0.0.1/a/{number}/story-{number}-archive-benchmark/"
        extract.extract_task(body, "text/html", url, 300, now)
    cpu = time.process_time() - started
    after = process.memory_full_info().uss
    return (f"trim every {trim_every or 'never':>5}: private memory {before / 2**20:5.1f} MB before the first page, "
            f"{after / 2**20:5.1f} MB after the {len(pages)}th (+{(after - before) / 2**20:4.1f} MB), "
            f"CPU {1000 * cpu / len(pages):.1f} ms a page")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--trim-every", type=int, action="append", help="pages between trims; 0: never (repeatable)")
    args = parser.parse_args()
    pages = make_pages(args.pages)
    for name in extract.WORKER_PRELOAD:  # what the fork server does before it forks any worker
        importlib.import_module(name)
    for trim_every in args.trim_every or [0, extract.WORKER_TRIM_EVERY]:
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            os.write(write, worker(pages, trim_every).encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as answer:
            print(answer.read())
        os.waitpid(child, 0)


if __name__ == "__main__":
    main()
