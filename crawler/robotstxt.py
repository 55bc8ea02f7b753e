"""robots.txt as RFC 9309 reads it: a site whose robots.txt cannot be had is not crawled in this run.

Scrapy's ``RobotsTxtMiddleware`` allows everything when robots.txt fails. Here:
a 5xx or 429 answer (after Scrapy's retries), a timeout, a refused connection
or any other download error means the site is unreachable: every request to it
is refused with ``RobotsUnavailable`` (RFC 9309 2.3.1.4: assume complete
disallow). A 4xx answer means there are no rules (2.3.1.3: allow all), whatever
its body says. A request the rules disallow fails with ``RobotsDisallowed``.
"""

from __future__ import annotations

import logging

from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached

from pipelines import stats

logger = logging.getLogger(__name__)


class RobotsUnavailable(IgnoreRequest):
    """The site's robots.txt answered 5xx or could not be fetched: the site is not crawled in this run."""

    reject_reason = "robots_unavailable"


class RobotsDisallowed(IgnoreRequest):
    """The site's robots.txt disallows the URL for our user agent."""

    reject_reason = "robots_disallowed"


class UnreachableRobots:
    """Stands for the rules of a site whose robots.txt could not be had: nothing is allowed."""

    def __init__(self, why: str) -> None:
        self.why = why

    def allowed(self, url, user_agent) -> bool:
        return False

    def crawl_delay(self, user_agent) -> None:
        return None


class StrictRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with RFC 9309's answers to errors and a reason on every refusal."""

    def process_request_2(self, rp, request) -> None:
        if isinstance(rp, UnreachableRobots):
            self._stats.inc_value(stats.refused(RobotsUnavailable.reject_reason))
            netloc = urlparse_cached(request).netloc
            raise RobotsUnavailable(f"robots.txt of {netloc} is unavailable ({rp.why})")
        try:
            super().process_request_2(rp, request)
        except IgnoreRequest as exc:
            self._stats.inc_value(stats.refused(RobotsDisallowed.reject_reason))
            raise RobotsDisallowed(str(exc)) from None

    async def _parse_robots(self, response, netloc: str, request) -> None:
        if response.status >= 500 or response.status == 429:
            self._stats.inc_value("robotstxt/response_count")
            self._stats.inc_value(f"robotstxt/response_status_count/{response.status}")
            self._unreachable(netloc, f"HTTP {response.status}")
            return
        if 400 <= response.status < 500:
            response = response.replace(body=b"")  # no rules: everything allowed
        await super()._parse_robots(response, netloc, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if not isinstance(exc, IgnoreRequest):
            self._stats.inc_value(f"robotstxt/exception_count/{type(exc)}")
        self._unreachable(netloc, type(exc).__name__)

    def _unreachable(self, netloc: str, why: str) -> None:
        logger.warning("robots.txt of %s is unavailable (%s): the site is not crawled in this run",
                       netloc, why)
        waiting = self._parsers[netloc]
        self._parsers[netloc] = UnreachableRobots(why)
        waiting.callback(self._parsers[netloc])
