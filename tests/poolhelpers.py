"""Worker-side stand-ins for the extraction task: a page that hangs, a page that kills its worker."""

import os
import time

from pipelines.extract import extract_task


def misbehaving_task(body, content_type, url, min_chars, now):
    if b"HANG-HERE" in body:
        time.sleep(60)
    if b"CRASH-HERE" in body:
        os._exit(3)
    return extract_task(body, content_type, url, min_chars, now)


def worker_facts_task(body, content_type, url, min_chars, now):
    """What a freshly forked worker already holds, reported as the detail of a made-up outcome."""
    import gc
    import json
    import sys

    from justext.core import define_stoplist
    from tld.utils import tld_names

    from pipelines.extract import Extraction

    facts = {"pid": os.getpid(), "ppid": os.getppid(), "gc_frozen": gc.get_freeze_count(), "scrapy_imported": "scrapy" in sys.modules,
             "stoplists_cached": define_stoplist.cache_info().currsize, "tld_trie_loaded": bool(tld_names)}
    return Extraction(None, "not_article", json.dumps(facts))
