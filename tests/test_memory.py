"""The crawler's process gives freed memory back (crawler/memory.py); the benchmark measures how much."""


import pyarrow as pa
import pytest
from scrapy.utils.test import get_crawler

from crawler import memory

glibc_only = pytest.mark.skipif(memory._glibc() is None, reason="glibc only")


@glibc_only
def test_thresholds_and_trim_apply_on_glibc():
    assert memory.return_freed_memory(128 * 1024) is True
    assert memory.return_freed_memory(0) is False
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # 128 MB in the heap (below the mmap threshold)
    del blocks[::2]  # holes in the middle of the heap, which only malloc_trim gives back
    assert memory.trim_freed_memory() is True


@glibc_only
def test_extension_switches_pyarrow_to_malloc_and_trims_while_the_spider_runs():
    from crawler.spiders.news import NewsSpider

    crawler = get_crawler(NewsSpider, {"MEMORY_MALLOC_THRESHOLD": 131072, "MEMORY_TRIM_INTERVAL": 5,
                                       "MEMORY_ARROW_SYSTEM_POOL": True})
    extension = memory.ReturnFreedMemory.from_crawler(crawler)
    previous = pa.default_memory_pool()
    try:
        extension.spider_opened()
        assert pa.default_memory_pool().backend_name == "system"
        assert extension.trimmer.running
        extension.spider_closed()
        assert not extension.trimmer.running
    finally:
        pa.set_memory_pool(previous)


def test_extension_is_enabled_by_default_and_remote_consoles_are_not_even_loaded():
    from scrapy.utils.project import get_project_settings

    extensions = get_project_settings().getdict("EXTENSIONS")
    assert extensions["crawler.memory.ReturnFreedMemory"] is not None
    assert extensions["scrapy.extensions.remote_control.RemoteControl"] is None  # it imports aiohttp
    assert extensions["scrapy.extensions.telnet.TelnetConsole"] is None
