"""Signals of the archive pipelines."""

#: Records produced outside the item flow (dedup's resolved URL aliases at the end of the crawl),
#: sent with ``records=[...]``; the Parquet step writes them like items.
archive_records = object()
