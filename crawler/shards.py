"""Crawl workers sharded by site: worker ``i`` of ``N`` crawls only the sites whose shard is ``i``.

A site's shard is a stable hash of its registered domain (the smallest one, for a site with several): the
first 8 bytes of SHA-256 of the domain, as a big-endian integer, modulo ``N``. The same site always falls in
the same shard, whatever the order of the sites file and whichever machine computes it, so each site is
fetched by exactly one worker and its politeness (robots.txt, delays, concurrency per host) holds with no
shared frontier. Changing ``N`` moves sites between shards; a moved site's next worker goes on from the
archive like any other run.

The shard comes from ``CRAWL_SHARD=i/N`` or, when that is unset, from Kubernetes' ``JOB_COMPLETION_INDEX``
(an Indexed Job) with ``CRAWL_SHARDS=N``. A bad value is refused at start-up (exit 2), before any fetch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pipelines.exceptions import ArchiveConfigError

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  #: 0 <= index < count
    count: int  #: the number of workers, >= 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, domain: str) -> bool:
        return shard_of(domain, self.count) == self.index


def shard_of(domain: str, count: int) -> int:
    """The shard (0 .. count-1) of a registered domain."""
    digest = hashlib.sha256(domain.lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(value: str, setting: str = "CRAWL_SHARD") -> Shard:
    """``"i/N"`` as a Shard; ArchiveConfigError naming ``setting`` when it is not ``0 <= i < N``, ``N >= 1``."""
    match = _SHARD.fullmatch(str(value))
    if not match:
        raise ArchiveConfigError(f"{setting} must be i/N with 0 <= i < N (for example 0/3), not {value!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ArchiveConfigError(f"{setting}={value}: the number of shards must be at least 1")
    if index >= count:
        raise ArchiveConfigError(f"{setting}={value}: the shard index must be below the number of shards "
                                 f"(0 to {count - 1})")
    return Shard(index, count)


def shard_from_settings(settings) -> Shard | None:
    """The crawl's shard: ``CRAWL_SHARD``, else ``JOB_COMPLETION_INDEX`` of ``CRAWL_SHARDS``; None: every site."""
    if settings.get("CRAWL_SHARD"):
        return parse_shard(settings["CRAWL_SHARD"])
    shards, index = settings.get("CRAWL_SHARDS"), settings.get("JOB_COMPLETION_INDEX")
    if not shards:
        return None
    if index in (None, ""):
        raise ArchiveConfigError("CRAWL_SHARDS is set but no shard index is: set CRAWL_SHARD=i/N, or run as "
                                 "an Indexed Job (Kubernetes sets JOB_COMPLETION_INDEX)")
    return parse_shard(f"{index}/{shards}", setting="JOB_COMPLETION_INDEX/CRAWL_SHARDS")
