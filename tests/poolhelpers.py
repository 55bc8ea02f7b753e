"""Worker-side stand-ins for the extraction task: a page that hangs, a page that kills its worker."""

import os
import time

from pipelines.extract import extract_task


def misbehaving_task(html, url, min_chars, now):
    if "HANG-HERE" in html:
        time.sleep(60)
    if "CRASH-HERE" in html:
        os._exit(3)
    return extract_task(html, url, min_chars, now)
