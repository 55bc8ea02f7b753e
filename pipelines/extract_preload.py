"""Imported once by the extraction fork server (``pipelines.extract.WORKER_PRELOAD``).

Loads what each worker would otherwise load for itself on the first page that
needs it, so that the forked workers share one copy instead of holding one each:
trafilatura's union of every jusText stoplist (~27 MB of words, read when its
jusText fallback runs without a known language).
"""

from justext.core import define_stoplist
from trafilatura.external import jt_stoplist_init

import pipelines.extract  # noqa: F401 (everything a worker runs)

define_stoplist(jt_stoplist_init())  # cached by jusText under the tuple trafilatura passes it
