"""glibc's allocator told to give freed memory back to the operating system: for the crawler (``crawler/memory.py``)
and the extraction workers (``pipelines/extract.py``) alike. Elsewhere than glibc these do nothing."""

from __future__ import annotations

import ctypes
import functools
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def glibc():
    """The C library when it is glibc (it has ``mallopt`` and ``malloc_trim``); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (glibc has both; musl has no malloc_trim)
    except (OSError, AttributeError):
        return None
    return libc


def return_freed_memory(threshold: int) -> bool:
    """Fix glibc's mmap and trim thresholds at ``threshold`` bytes; False where that is not possible."""
    libc = glibc()
    if libc is None or threshold <= 0:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))


def trim_freed_memory() -> bool:
    """Release the free pages of every glibc arena; True when some memory was released."""
    libc = glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
