"""Faults injected into a real `scrapy crawl news` by tests, with no hook in the code under test.

Named in ``-s EXTENSIONS={"faults.ParquetWriteFault": 0}`` with ``tests/`` on ``PYTHONPATH``, the extension
makes the Nth row group written to an ``articles`` file raise, as a bug in our own code would
(``FAULT_PARQUET_ROW_GROUP``, default 3).
"""

from __future__ import annotations

import itertools

from pipelines.parquet import _PartitionFile


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
