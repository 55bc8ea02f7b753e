"""What the crawler may connect to: http and https only, and no private address unless allowed.

Schemes: ``DOWNLOAD_HANDLERS`` switches off Scrapy's ``file``, ``s3``, ``ftp``
and ``data`` handlers, the spider requests only http(s) links, and
``ContainmentMiddleware`` refuses any other scheme before the download.

Addresses: ``ALLOW_PRIVATE_NETWORKS`` ``False`` (default) refuses every address
that is not global (``ipaddress``'s own tables: 127/8, 10/8, 172.16/12,
192.168/16, 169.254/16 with 169.254.169.254, 100.64/10, 0/8, ::1, fc00::/7,
fe80::/10, multicast, reserved; IPv4 inside IPv6 is judged as the IPv4 it
carries); ``True`` allows them all; a comma-separated list of networks
(``127.0.0.0/8,::1``) allows those only. Two guards, one decision
(``AddressPolicy``):

- ``PrivateNetworkResolver`` (``TWISTED_DNS_RESOLVER``) refuses private answers,
  so the check is made on the very address Twisted connects to, for every
  request, redirects and robots.txt included, and a name that re-binds to a
  private address is caught at connection time.
- ``ContainmentMiddleware`` refuses IP literals and ``localhost`` without a
  lookup and resolves other names through that resolver before the download,
  so a refused request fails with ``PrivateNetworkRefused`` (its reason, a
  stat, one log line per host) instead of a bare DNS error.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from scrapy.exceptions import IgnoreRequest
from scrapy.resolver import CachingThreadedResolver
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import defer

from pipelines import stats
from pipelines.exceptions import ArchiveConfigError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class PrivateNetworkRefused(IgnoreRequest):
    """A request to an address ALLOW_PRIVATE_NETWORKS does not allow; no connection was made."""

    reject_reason = "private_network"


class SchemeRefused(IgnoreRequest):
    """A request for a URL that is not http or https (file:, s3:, ftp:, data:...)."""

    reject_reason = "unsupported_scheme"


def is_private_address(address: IPAddress) -> bool:
    """Whether ``address`` is anything but a global unicast address (IPv4 inside IPv6 judged as itself)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_private_address(embedded):
            return True
    return (not address.is_global or address.is_private or address.is_loopback or address.is_link_local
            or address.is_reserved or address.is_multicast or address.is_unspecified)


def is_localhost_name(host: str) -> bool:
    """``localhost`` and ``*.localhost`` always mean loopback (RFC 6761), whatever DNS says."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses may be connected to: every global one, plus the allowed private networks."""

    allow_all: bool = False
    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_setting(cls, value) -> "AddressPolicy":
        """From ``ALLOW_PRIVATE_NETWORKS``: a bool, or networks as a comma-separated string or a list."""
        if isinstance(value, bool) or value is None:
            return cls(allow_all=bool(value))
        if isinstance(value, str):
            if value.strip().lower() in ("", "0", "false", "no", "off"):
                return cls()
            if value.strip().lower() in ("1", "true", "yes", "on"):
                return cls(allow_all=True)
            value = value.split(",")
        try:
            items = [str(item).strip() for item in value]
            networks = tuple(ipaddress.ip_network(item, strict=False) for item in items if item)
        except (TypeError, ValueError) as exc:
            raise ArchiveConfigError(f"ALLOW_PRIVATE_NETWORKS must be true, false or networks like "
                                     f"127.0.0.0/8,::1: {exc}") from exc
        return cls(allowed=networks)

    def refuses(self, address: str | IPAddress) -> bool:
        """Whether a connection to ``address`` (an IP address) is refused."""
        if self.allow_all:
            return False
        if isinstance(address, str):
            address = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0: the zone is no escape
        if not is_private_address(address):
            return False
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        return not any(candidate in network for candidate in candidates for network in self.allowed
                       if candidate.version == network.version)

    def refuses_host(self, host: str) -> bool | None:
        """Whether ``host`` is refused, when it says so by itself (an IP literal, ``localhost``); None: look
        it up and decide on the address."""
        if is_localhost_name(host):
            return self.refuses("127.0.0.1")
        try:
            return self.refuses(host.strip("[]"))
        except ValueError:
            return None


class PrivateNetworkResolver(CachingThreadedResolver):
    """Scrapy's caching resolver, failing with ``PrivateNetworkRefused`` on an address the policy refuses."""

    def __init__(self, reactor, cache_size: int, timeout: float,
                 policy: AddressPolicy = AddressPolicy()) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.policy = policy

    @classmethod
    def from_crawler(cls, crawler, reactor):
        resolver = super().from_crawler(crawler, reactor)
        resolver.policy = AddressPolicy.from_setting(crawler.settings.get("ALLOW_PRIVATE_NETWORKS"))
        return resolver

    def getHostByName(self, name: str, timeout=()):  # noqa: N802 (Twisted's naming)
        if self.policy.refuses_host(name):
            return defer.fail(PrivateNetworkRefused(f"{name} is a private address (ALLOW_PRIVATE_NETWORKS)"))
        return super().getHostByName(name, timeout).addCallback(self._check, name)

    def _check(self, address: str, name: str) -> str:
        if self.policy.refuses(address):
            raise PrivateNetworkRefused(f"{name} resolves to the private address {address} "
                                        "(ALLOW_PRIVATE_NETWORKS)")
        return address


class ContainmentMiddleware:
    """Refuse other schemes than http(s), and private addresses, before the download: with a reason, a stat
    and one log line per refused host."""

    def __init__(self, policy: AddressPolicy, resolve, stats_collector=None) -> None:
        self.policy = policy
        self.resolve = resolve  #: host name -> Deferred of its address (the reactor's resolver)
        self.stats = stats.StatsRecorder(stats_collector)
        self._refused_hosts: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler):
        from twisted.internet import reactor

        policy = AddressPolicy.from_setting(crawler.settings.get("ALLOW_PRIVATE_NETWORKS"))
        return cls(policy, reactor.resolve, crawler.stats)

    async def process_request(self, request) -> None:
        url = urlparse_cached(request)
        if url.scheme not in ("http", "https"):
            self.stats.inc(stats.refused(SchemeRefused.reject_reason))
            raise SchemeRefused(f"only http and https are fetched, not {url.scheme}:")
        host = url.hostname
        if self.policy.allow_all or not host:
            return
        refused = self.policy.refuses_host(host)
        address = None
        if refused is None:
            try:
                address = await maybe_deferred_to_future(self.resolve(host))
            except PrivateNetworkRefused:
                refused = True
            else:
                refused = self.policy.refuses(address)
        if refused:
            self.stats.inc(stats.refused(PrivateNetworkRefused.reject_reason))
            if host not in self._refused_hosts:
                self._refused_hosts.add(host)
                why = f"it resolves to the private address {address}" if address else "a private address"
                logger.warning("Refused requests to %s: %s (ALLOW_PRIVATE_NETWORKS)", host, why)
            raise PrivateNetworkRefused(f"{host} is a private address (ALLOW_PRIVATE_NETWORKS)")
