"""What importing costs: the private memory (USS) a fresh interpreter gains by importing a set of modules.

Each figure comes from its own fresh interpreter, so nothing imported before is counted twice. Measured: the
extraction workers' fork server (``pipelines.extract.WORKER_PRELOAD``, what every worker is forked from), and what a
local crawl's process no longer imports, each on top of what the crawler imports anyway (Twisted's reactor, Scrapy,
pyarrow): Scrapy's remote control (aiohttp), boto3, cdxj-indexer (pyamf, pkg_resources), and cdxj-indexer as the
archive imports it when a WARC file closes (``pipelines.warc.cdxj_indexer``: without its AMF module). Run:

    python benchmarks/import_memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: what the crawler imports in any case, before the measured module
CRAWLER_BASE = ["twisted.internet.asyncioreactor", "scrapy.crawler", "pyarrow.parquet"]

_PROBE = """
import importlib, json, sys
import psutil
for name in {base!r}:
    importlib.import_module(name)
process = psutil.Process()
before = process.memory_full_info().uss
for name in {modules!r}:
    module, _, function = name.partition(":")  # "module:function": imported, then called
    imported = importlib.import_module(module)
    if function:
        getattr(imported, function)()
print(json.dumps([before, process.memory_full_info().uss]))
"""


def import_cost(modules: list[str], base: list[str] = ()) -> float:
    """MB of private memory that importing ``modules`` adds to a fresh interpreter that has imported ``base``."""
    code = _PROBE.format(base=list(base), modules=list(modules))
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    before, after = json.loads(completed.stdout.strip().splitlines()[-1])
    return (after - before) / 2**20


def main() -> None:
    sys.path.insert(0, str(REPO))
    from pipelines.extract import WORKER_PRELOAD

    print(f"the workers' fork server ({', '.join(WORKER_PRELOAD)}): +{import_cost(WORKER_PRELOAD):.1f} MB")
    for label, modules in (("Scrapy's remote control (aiohttp.web)", ["scrapy.extensions.remote_control"]),
                           ("boto3", ["boto3"]),
                           ("cdxj-indexer (pyamf, pkg_resources)", ["cdxj_indexer.main"])):
        print(f"on top of the crawler's own imports, {label}: +{import_cost(modules, CRAWLER_BASE):.1f} MB")
    archive_base = [*CRAWLER_BASE, "pipelines.warc"]  # the capture's module, which the crawler imports anyway
    print("on top of the crawler's own imports, cdxj-indexer as the archive imports it (pipelines.warc.cdxj_indexer):"
          f" +{import_cost(['pipelines.warc:cdxj_indexer'], archive_base):.1f} MB")


if __name__ == "__main__":
    main()
