"""Imported once by the extraction fork server (``pipelines.extract.WORKER_PRELOAD``).

Loads what each worker would otherwise load for itself on the first page that
needs it, so that the forked workers share one copy instead of holding one each
and do not pay for it again every ``EXTRACT_MAX_TASKS_PER_WORKER`` pages:

- trafilatura's union of every jusText stoplist (~27 MB of words, read when its
  jusText fallback runs without a known language);
- everything the first extraction initialises lazily (the public-suffix trie of
  ``tld``, compiled expressions, htmldate's and trafilatura's lookups: ~110 ms
  of CPU), by extracting one built-in page;

then freezes the garbage collector's view of all of it (``gc.freeze``): a
worker's collections no longer visit these objects, so their memory pages stay
shared with the fork server instead of being copied into every worker.
"""

import gc
from datetime import datetime, timezone

from justext.core import define_stoplist
from trafilatura.external import jt_stoplist_init

from pipelines.extract import build_options, extract_page

define_stoplist(jt_stoplist_init())  # cached by jusText under the tuple trafilatura passes it

_PARAGRAPHS = "".join(
    f"<p>The harbour board met for the {n} time on Tuesday evening to discuss the new ferry timetable, which "
    f"residents say leaves the island without a late connection on weekdays during the {month} months.</p>"
    for n, month in (("first", "winter"), ("second", "spring"), ("third", "summer"), ("fourth", "autumn"))
)
WARM_UP_PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Ferry timetable changes - Harbour Herald</title>
<meta property="og:title" content="Ferry timetable changes"><meta name="author" content="Ann Example">
<meta property="article:published_time" content="2026-11-24T08:30:00Z">
<link rel="canonical" href="https://www.harbour-herald.invalid/2026/11/24/ferry-timetable/">
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "Ferry timetable changes", "datePublished": "2026-11-24T08:30:00Z",
"author": {{"@type": "Person", "name": "Ann Example"}}}}</script></head>
<body><nav><a href="/">Home</a> <a href="/local/">Local</a></nav>
<article><h1>Ferry timetable changes</h1><p class="byline">By Ann Example, 24 November 2026</p>
{_PARAGRAPHS}<table><tr><td>Departure</td><td>21:40</td></tr></table></article>
<footer>&copy; 2019 Harbour Herald</footer></body></html>"""

extract_page(WARM_UP_PAGE, "https://www.harbour-herald.invalid/2026/11/24/ferry-timetable/", build_options(),
             min_chars=300, now=datetime.now(timezone.utc))
gc.collect()
gc.freeze()
