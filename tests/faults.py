"""Faults injected into a real `scrapy crawl news` by tests, with no hook in the code under test.

Named in ``-s EXTENSIONS={"faults.ParquetWriteFault": 0}`` with ``tests/`` on ``PYTHONPATH``, the extension
makes the Nth row group written to an ``articles`` file raise, as a bug in our own code would
(``FAULT_PARQUET_ROW_GROUP``, default 3).

``faults.HeldExtraction`` makes the extraction of pages whose URL matches ``FAULT_HOLD_EXTRACT_URL`` (a
regex) last until the file ``FAULT_HOLD_EXTRACT_RELEASE`` exists, or, without one, until the pool's time
limit kills the worker: a runaway extraction by construction, whatever the machine's speed. Each held page
leaves a file in ``FAULT_HOLD_EXTRACT_ANNOUNCE`` (when set) as its worker starts holding it.

``-s TWISTED_DNS_RESOLVER=faults.StaticDNSResolver`` answers the names of ``FAULT_DNS_ANSWERS`` without DNS.

``faults.ModulesInUse`` injects nothing: it writes the crawler process's imported modules (JSON) to
``FAULT_MODULES_FILE`` when the first article is scraped, in the middle of the crawl.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import time
from pathlib import Path

import psutil
from scrapy.resolver import dnscache

from crawler.containment import PrivateNetworkResolver
from pipelines import extract
from pipelines.parquet import _PartitionFile

_extract_task = extract.extract_task


class InjectedFault(RuntimeError):
    pass


def faulty_write(number: int, dataset: str = "articles"):
    """A ``_PartitionFile.write`` whose ``number``-th row group written to a ``dataset`` file raises (once)."""
    original = _PartitionFile.write
    count = itertools.count(1)

    def write(self, table):
        if self.key.startswith(dataset + "/") and next(count) == number:
            raise InjectedFault(f"injected fault in row group {number} of {self.key}")
        return original(self, table)

    return write


class ParquetWriteFault:
    @classmethod
    def from_crawler(cls, crawler):
        _PartitionFile.write = faulty_write(crawler.settings.getint("FAULT_PARQUET_ROW_GROUP", 3))
        return cls()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def held_extract_task(body, content_type, url, min_chars, now, *, pattern: str, release: str, announce: str, crawler: int):
    """``extract_task``, held first when ``url`` matches ``pattern`` (in the worker process)."""
    if re.search(pattern, url):
        if announce:
            Path(announce, f"held-{os.getpid()}-{time.monotonic_ns()}").write_text(url)
        while not (release and os.path.exists(release)):
            if not _running(crawler):  # killed: nothing waits for this page (the fork server outlives its workers)
                os._exit(0)
            time.sleep(0.02)
    return _extract_task(body, content_type, url, min_chars, now)


class HeldExtraction:
    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        # read by ExtractPipeline when the item pipelines are built, after the extensions
        extract.extract_task = functools.partial(
            held_extract_task, pattern=settings["FAULT_HOLD_EXTRACT_URL"],
            release=settings.get("FAULT_HOLD_EXTRACT_RELEASE", ""),
            announce=settings.get("FAULT_HOLD_EXTRACT_ANNOUNCE", ""), crawler=os.getpid())
        return cls()


class StaticDNSResolver(PrivateNetworkResolver):
    """The crawler's resolver (``TWISTED_DNS_RESOLVER``), answering the names of ``FAULT_DNS_ANSWERS`` (JSON:
    name -> address) from Scrapy's DNS cache, with no lookup: a name that resolves to a public address, no DNS."""

    @classmethod
    def from_crawler(cls, crawler, reactor):
        for name, address in json.loads(crawler.settings.get("FAULT_DNS_ANSWERS", "{}")).items():
            dnscache[name] = address
        return super().from_crawler(crawler, reactor)


class KillAtCommit:
    """SIGKILL the crawl at one point of its Nth commit to a table (``FAULT_KILL_COMMIT``, default 2):
    ``FAULT_KILL_AT`` = ``published`` (the file is published, its commit number not written yet), ``committing``
    (the number is written beside it, the commit not made: between two commits when N > 1) or ``committed`` (the
    commit is made, the file not yet removed from the spool)."""

    @classmethod
    def from_crawler(cls, crawler):
        import os
        import signal

        from pipelines import spool
        from pipelines.table import DatasetTable

        where = crawler.settings.get("FAULT_KILL_AT", "committing")
        nth = crawler.settings.getint("FAULT_KILL_COMMIT", 2)
        counter = itertools.count(1)
        commit, write_intent = DatasetTable.commit, spool.write_intent

        def die():
            os.kill(os.getpid(), signal.SIGKILL)

        def intent(path, entry):
            if where == "published" and next(counter) == nth:
                die()
            return write_intent(path, entry)

        def committing(self, files, **kwargs):
            if where == "committing" and next(counter) == nth:
                die()
            made = commit(self, files, **kwargs)
            if where == "committed" and next(counter) == nth:
                die()
            return made

        spool.write_intent = intent
        DatasetTable.commit = committing
        return cls()


class ModulesInUse:
    """The crawler's ``sys.modules`` at its first article (``FAULT_MODULES_FILE``): what a crawl has loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_crawler(cls, crawler):
        from scrapy import signals

        from pipelines.records import ArticleRecord

        probe = cls(Path(crawler.settings["FAULT_MODULES_FILE"]))

        def scraped(item, **_):
            if isinstance(item, ArticleRecord) and not probe.path.exists():
                import sys

                probe.path.write_text(json.dumps(sorted(sys.modules)))

        crawler.signals.connect(scraped, signal=signals.item_scraped, weak=False)
        return probe
