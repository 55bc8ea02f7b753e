"""An extension that warns as a deprecated API would, to show that tests catch Python warnings in crawl logs.

Named in ``-s EXTENSIONS={"noisy.DeprecatedThing": 0}`` with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import warnings

from scrapy.exceptions import ScrapyDeprecationWarning


class DeprecatedThing:
    @classmethod
    def from_crawler(cls, crawler):
        warnings.warn("a deprecated thing", ScrapyDeprecationWarning, stacklevel=2)
        return cls()
