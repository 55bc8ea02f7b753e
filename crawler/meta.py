"""Request meta keys the spider sets and the components after it read.

The spider says what a request is for (``ROLE``); the known-URL filter
(``crawler/known.py``) decides, from that and from the archive's state,
whether to send it, and with which validators.
"""

ROLE = "archive_role"
START = "start"  #: a start URL: always fetched
DISCOVERY = "discovery"  #: a robots.txt, sitemap, sitemap index or feed found on the way: fetched conditionally
ENTRY = "entry"  #: a link, feed entry or sitemap entry: fetched unless the archive already knows it

SITE = "archive_site"  #: name of the site (crawler/sites.py) a start URL belongs to
SITEMAP_LASTMOD = "sitemap_lastmod"  #: the <lastmod> an index gave for this child sitemap, as written
#: a Google News sitemap entry's news block (``pipelines.records.SitemapNews``): it lands in the page's row
SITEMAP_NEWS = "archive_sitemap_news"
#: set by the filter on a conditional request for a discovery document: what the last run recorded of it
#: (``pipelines.state.discovery_entry``), so that a 304 still leads to the sitemaps it lists
KNOWN_DOCUMENT = "archive_known_document"
