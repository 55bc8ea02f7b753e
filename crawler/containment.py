"""What the crawler may connect to: http and https only, no private address unless allowed, and nothing
outside ``CRAWL_ALLOWED_NETWORKS`` when it is given.

Schemes: ``DOWNLOAD_HANDLERS`` switches off Scrapy's ``file``, ``s3``, ``ftp``
and ``data`` handlers, the spider requests only http(s) links, and
``ContainmentMiddleware`` refuses any other scheme before the download.

Addresses: ``ALLOW_PRIVATE_NETWORKS`` ``False`` (default) refuses every address
that is not global (``ipaddress``'s own tables: 127/8, 10/8, 172.16/12,
192.168/16, 169.254/16 with 169.254.169.254, 100.64/10, 0/8, ::1, fc00::/7,
fe80::/10, multicast, reserved; IPv4 inside IPv6 is judged as the IPv4 it
carries); ``True`` allows them all; a comma-separated list of networks
(``127.0.0.0/8,::1``) allows those only.

``CRAWL_ALLOWED_NETWORKS`` (empty by default: no restriction), a comma-separated
list of networks, allows only addresses inside them, public ones included:
everything else is refused (``network_not_allowed``), so a crawl meant for a
site on loopback or an intranet cannot reach the internet whatever its links
say. An address must pass both rules; the private-network one is checked first.

Two guards, one decision (``AddressPolicy``):

- ``PrivateNetworkResolver`` (``TWISTED_DNS_RESOLVER``) refuses private answers,
  so the check is made on the very address Twisted connects to, for every
  request, redirects and robots.txt included, and a name that re-binds to a
  private address is caught at connection time.
- ``ContainmentMiddleware`` refuses IP literals and ``localhost`` without a
  lookup and resolves other names through that resolver before the download,
  so a refused request fails with ``PrivateNetworkRefused`` or
  ``NetworkNotAllowed`` (its reason, a stat, one log line per host) instead of
  a bare DNS error.
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


class NetworkNotAllowed(IgnoreRequest):
    """A request to an address outside CRAWL_ALLOWED_NETWORKS; no connection was made."""

    reject_reason = "network_not_allowed"


Refusal = type[PrivateNetworkRefused] | type[NetworkNotAllowed]
#: ``AddressPolicy.host_refusal`` of a host name: decided on the address it resolves to
LOOK_UP = "look up"


def _refusal(refusal: Refusal, host: str, address: str | None = None) -> IgnoreRequest:
    """The exception to raise, with the address ``host`` resolved to (if it is a name) as ``.address``."""
    if refusal is PrivateNetworkRefused:
        what = f"resolves to the private address {address}" if address else "is a private address"
        error = PrivateNetworkRefused(f"{host} {what} (ALLOW_PRIVATE_NETWORKS)")
    else:
        what = f"resolves to {address}, outside" if address else "is outside"
        error = NetworkNotAllowed(f"{host} {what} the allowed networks (CRAWL_ALLOWED_NETWORKS)")
    error.address = address
    return error


def parse_networks(value, setting: str, expected: str = "networks like 127.0.0.0/8,::1"):
    """Networks given as a comma-separated string or a list; ArchiveConfigError naming ``setting`` if one is bad."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    try:
        return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip())
    except (TypeError, ValueError) as exc:
        raise ArchiveConfigError(f"{setting} must be {expected}: {exc}") from exc


def _within(address: IPAddress, networks) -> bool:
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        candidates.append(address.ipv4_mapped)
    return any(candidate in network for candidate in candidates for network in networks
               if candidate.version == network.version)


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
    """Which addresses may be connected to: every global one, plus the allowed private networks; and, when
    ``only`` is given, nothing outside it."""

    allow_all: bool = False  #: every private address allowed
    allowed: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  #: private networks allowed
    only: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  #: if any, the only networks allowed

    @classmethod
    def from_setting(cls, value, only=None) -> "AddressPolicy":
        """From ``ALLOW_PRIVATE_NETWORKS`` (a bool, or networks as a comma-separated string or a list) and
        ``CRAWL_ALLOWED_NETWORKS`` (networks; empty: no restriction)."""
        only = parse_networks(only, "CRAWL_ALLOWED_NETWORKS")
        if isinstance(value, bool) or value is None:
            return cls(allow_all=bool(value), only=only)
        if isinstance(value, str):
            if value.strip().lower() in ("", "0", "false", "no", "off"):
                return cls(only=only)
            if value.strip().lower() in ("1", "true", "yes", "on"):
                return cls(allow_all=True, only=only)
        networks = parse_networks(value, "ALLOW_PRIVATE_NETWORKS", "true, false or networks like 127.0.0.0/8,::1")
        return cls(allowed=networks, only=only)

    @classmethod
    def from_settings(cls, settings) -> "AddressPolicy":
        """From a crawl's settings; ArchiveConfigError on a bad value (refused at start-up)."""
        return cls.from_setting(settings.get("ALLOW_PRIVATE_NETWORKS"), only=settings.get("CRAWL_ALLOWED_NETWORKS"))

    @property
    def restricts(self) -> bool:
        """Whether any address can be refused at all."""
        return not self.allow_all or bool(self.only)

    def refusal(self, address: str | IPAddress) -> Refusal | None:
        """Why a connection to ``address`` (an IP address) is refused (the exception to raise), or None."""
        if isinstance(address, str):
            address = ipaddress.ip_address(address.split("%", 1)[0])  # fe80::1%eth0: the zone is no escape
        if not self.allow_all and is_private_address(address) and not _within(address, self.allowed):
            return PrivateNetworkRefused
        if self.only and not _within(address, self.only):
            return NetworkNotAllowed
        return None

    def refuses(self, address: str | IPAddress) -> bool:
        """Whether a connection to ``address`` (an IP address) is refused."""
        return self.refusal(address) is not None

    def host_refusal(self, host: str) -> Refusal | None | str:
        """For a host that says what it is by itself (an IP literal, ``localhost``): its refusal, or None when
        allowed; ``LOOK_UP`` for a name, decided on the address it resolves to."""
        if is_localhost_name(host):
            return self.refusal("127.0.0.1")
        try:
            return self.refusal(host.strip("[]"))
        except ValueError:
            return LOOK_UP

    def refuses_host(self, host: str) -> bool | None:
        """Whether ``host`` is refused, when it says so by itself (an IP literal, ``localhost``); None: look
        it up and decide on the address."""
        refusal = self.host_refusal(host)
        return None if refusal == LOOK_UP else refusal is not None


class PrivateNetworkResolver(CachingThreadedResolver):
    """Scrapy's caching resolver, failing with ``PrivateNetworkRefused`` or ``NetworkNotAllowed`` on an address
    the policy refuses."""

    def __init__(self, reactor, cache_size: int, timeout: float,
                 policy: AddressPolicy = AddressPolicy()) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.policy = policy

    @classmethod
    def from_crawler(cls, crawler, reactor):
        resolver = super().from_crawler(crawler, reactor)
        resolver.policy = AddressPolicy.from_settings(crawler.settings)
        return resolver

    def getHostByName(self, name: str, timeout=()):  # noqa: N802 (Twisted's naming)
        refusal = self.policy.host_refusal(name)
        if refusal not in (None, LOOK_UP):
            return defer.fail(_refusal(refusal, name))
        return super().getHostByName(name, timeout).addCallback(self._check, name)

    def _check(self, address: str, name: str) -> str:
        refusal = self.policy.refusal(address)
        if refusal is not None:
            raise _refusal(refusal, name, address)
        return address


class ContainmentMiddleware:
    """Refuse other schemes than http(s), private addresses and addresses outside CRAWL_ALLOWED_NETWORKS,
    before the download: with a reason, a stat and one log line per refused host."""

    def __init__(self, policy: AddressPolicy, resolve, stats_collector=None) -> None:
        self.policy = policy
        self.resolve = resolve  #: host name -> Deferred of its address (the reactor's resolver)
        self.stats = stats.StatsRecorder(stats_collector)
        self._refused_hosts: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler):
        from twisted.internet import reactor

        return cls(AddressPolicy.from_settings(crawler.settings), reactor.resolve, crawler.stats)

    async def process_request(self, request) -> None:
        url = urlparse_cached(request)
        if url.scheme not in ("http", "https"):
            self.stats.inc(stats.refused(SchemeRefused.reject_reason))
            raise SchemeRefused(f"only http and https are fetched, not {url.scheme}:")
        host = url.hostname
        if not self.policy.restricts or not host:
            return
        refusal = self.policy.host_refusal(host)
        address = None
        if refusal == LOOK_UP:
            try:
                address = await maybe_deferred_to_future(self.resolve(host))
            except (PrivateNetworkRefused, NetworkNotAllowed) as exc:  # the resolver's own refusal
                refusal, address = type(exc), getattr(exc, "address", None)
            else:
                refusal = self.policy.refusal(address)
        if refusal is not None:
            self.stats.inc(stats.refused(refusal.reject_reason))
            if host not in self._refused_hosts:
                self._refused_hosts.add(host)
                logger.warning("Refused requests to %s: %s", host, _refusal(refusal, "it", address))
            raise _refusal(refusal, host, address)
