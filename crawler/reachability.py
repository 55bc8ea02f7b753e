"""Which sites answered: a start URL counts as reached when any answer below 500 (and not 429) comes back for
it, a redirect included; the spider's errback counts the ones that could not be fetched at all. A site with
no start URL reached is named in the manifest, and when that is every site the run says so (exit code 4)."""

from __future__ import annotations

from crawler import meta as request_meta
from pipelines import stats


class StartUrlReachability:
    """Downloader middleware next to the downloader: it sees every answer, redirects and 5xx included."""

    def __init__(self, stats_collector=None) -> None:
        self.stats = stats.StatsRecorder(stats_collector)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.stats)

    def process_response(self, request, response, spider=None):
        site = request.meta.get(request_meta.SITE)
        if (site is not None and request.meta.get(request_meta.ROLE) == request_meta.START
                and response.status < 500 and response.status != 429):
            self.stats.inc(stats.start_url(site, reached=True))
        return response
