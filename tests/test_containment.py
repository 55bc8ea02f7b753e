"""Containment: what the crawler may connect to, robots.txt errors, hostile XML, secrets, remote consoles.

No test here sends a packet beyond loopback: addresses are decided by pure
functions, crawls target IP literals only or names answered by a static test
resolver (no DNS), every test crawl allows only loopback
(``CRAWL_ALLOWED_NETWORKS``), and crawls that name other targets run behind a
catch-all proxy on 127.0.0.1, so even a broken guard would only reach that
proxy (which the test then sees).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import ipaddress
import json
import logging
import os
import socket
import threading
import tracemalloc
from types import SimpleNamespace

import pytest
from scrapy import Request
from scrapy.http import Response
from scrapy.resolver import dnscache
from scrapy.utils.project import get_project_settings
from twisted.internet import defer
from twisted.internet._resolver import SimpleResolverComplexifier

from conftest import LOOPBACK, REPO, TEST_SETTINGS, crawl_command, crawl_env, run_crawl
from crawler import demo, documents
from crawler import settings as project_settings
from crawler.containment import (
    AddressPolicy,
    ContainmentMiddleware,
    NetworkNotAllowed,
    PrivateNetworkRefused,
    PrivateNetworkResolver,
    SchemeRefused,
    is_private_address,
)
from crawler.localsite import LocalSite, Page
from pipelines import stats
from pipelines.exceptions import ArchiveConfigError

REFUSED = [
    "127.0.0.1", "127.0.0.2", "127.255.255.254",  # loopback
    "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",  # private
    "169.254.169.254", "169.254.0.1",  # link-local, cloud metadata
    "100.64.0.1", "100.127.255.254",  # CGNAT
    "0.0.0.0", "0.1.2.3", "255.255.255.255", "192.0.2.1", "198.18.0.1", "240.0.0.1",  # this host, reserved
    "224.0.0.1",  # multicast
    "::1", "::", "fc00::1", "fd00:ec2::254", "fe80::1", "fe80::1%eth0", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "2002:7f00:1::", "2002:a9fe:a9fe::",  # 6to4 of 127.0.0.1 and of the metadata address
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
]
SITEMAP_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
GLOBAL = ["8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "11.0.0.1", "2606:4700::1", "2a00:1450::1"]


# --- the address decision (pure functions, no sockets) -------------------------------------------------------


@pytest.mark.parametrize("address", REFUSED)
def test_private_addresses_are_refused_by_default(address):
    assert AddressPolicy().refuses(address)


@pytest.mark.parametrize("address", GLOBAL)
def test_global_addresses_are_allowed(address):
    assert not is_private_address(ipaddress.ip_address(address))
    assert not AddressPolicy().refuses(address)


def test_allow_private_networks_setting():
    assert AddressPolicy.from_setting(False) == AddressPolicy.from_setting("False") == AddressPolicy()
    assert AddressPolicy.from_setting("") == AddressPolicy.from_setting(None) == AddressPolicy()
    everything = AddressPolicy.from_setting("true")
    assert everything == AddressPolicy.from_setting(True) and not any(map(everything.refuses, REFUSED))
    one = AddressPolicy.from_setting("127.0.0.1/32")
    assert not one.refuses("127.0.0.1") and not one.refuses("::ffff:127.0.0.1")
    assert all(one.refuses(address) for address in REFUSED if address not in ("127.0.0.1", "::ffff:127.0.0.1"))
    loopback = AddressPolicy.from_setting("127.0.0.0/8, ::1")
    assert not loopback.refuses("127.0.0.2") and not loopback.refuses("::1")
    assert loopback.refuses("10.0.0.1") and loopback.refuses("169.254.169.254") and loopback.refuses("fe80::1")
    assert not AddressPolicy.from_setting(["10.0.0.0/8"]).refuses("10.1.2.3")
    with pytest.raises(ArchiveConfigError):
        AddressPolicy.from_setting("127.0.0.1/33")


def test_crawl_allowed_networks_setting():
    only = AddressPolicy.from_setting("127.0.0.0/8,::1", only="127.0.0.0/8, ::1")
    for address in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert only.refusal(address) is None, address
    for address in GLOBAL + ["2002:5db8:d822::"]:  # and the 6to4 address of 93.184.216.34
        assert only.refusal(address) is NetworkNotAllowed, address
    assert only.refusal("10.0.0.1") is PrivateNetworkRefused, "the private-network rule is checked first"
    everything_private = AddressPolicy.from_setting(True, only=["10.0.0.0/8"])
    assert everything_private.refusal("10.1.2.3") is None
    assert everything_private.refusal("192.168.1.1") is everything_private.refusal("8.8.8.8") is NetworkNotAllowed
    assert everything_private.restricts and not AddressPolicy.from_setting(True).restricts
    for unset in ("", None, [], " , "):
        assert AddressPolicy.from_setting(False, only=unset) == AddressPolicy()
        assert AddressPolicy.from_setting(False, only=unset).refusal("93.184.216.34") is None
    for bad in ("127.0.0.1/33", "loopback", "true", ["::1", "10.0.0.0/40"]):
        with pytest.raises(ArchiveConfigError, match="^CRAWL_ALLOWED_NETWORKS must be networks like"):
            AddressPolicy.from_setting(False, only=bad)
    assert only.refuses_host("93.184.216.34") is True and only.refuses_host("public.invalid") is None
    assert only.refuses_host("localhost") is False


def test_hosts_refused_without_a_lookup():
    policy = AddressPolicy()
    for host in ("localhost", "LOCALHOST.", "api.localhost", "127.0.0.1", "[::1]", "169.254.169.254",
                 "::ffff:a00:1"):
        assert policy.refuses_host(host) is True, host
    assert policy.refuses_host("example.com") is None, "a name is decided on its resolved address"
    assert policy.refuses_host("93.184.216.34") is False
    assert AddressPolicy.from_setting("127.0.0.0/8").refuses_host("localhost") is False


def test_resolver_refuses_private_answers_so_nothing_is_connected_to():
    """The address Twisted would connect to is checked: a name that resolves (or re-binds) to a private
    address gives the connection no address at all. The answers come from Scrapy's DNS cache: no lookup."""
    resolver = PrivateNetworkResolver(reactor=None, cache_size=100, timeout=1, policy=AddressPolicy())
    dnscache["rebound.invalid"], dnscache["public.invalid"] = "169.254.169.254", "93.184.216.34"
    try:
        failures = []
        resolver.getHostByName("rebound.invalid").addErrback(failures.append)
        resolver.getHostByName("127.0.0.2").addErrback(failures.append)
        assert [f.check(PrivateNetworkRefused) for f in failures] == [PrivateNetworkRefused] * 2
        answers = []
        resolver.getHostByName("public.invalid").addCallback(answers.append)
        assert answers == ["93.184.216.34"]

        class Receiver:
            addresses: list = []

            def resolutionBegan(self, resolution): ...  # noqa: N802
            def addressResolved(self, address): self.addresses.append(address)  # noqa: N802,E704
            def resolutionComplete(self): ...  # noqa: N802,E704

        receiver = Receiver()
        # the path of HostnameEndpoint, which Scrapy's HTTP handler connects through
        SimpleResolverComplexifier(resolver).resolveHostName(receiver, "rebound.invalid", 80)
        assert receiver.addresses == []
    finally:
        del dnscache["rebound.invalid"], dnscache["public.invalid"]


def test_middleware_refuses_schemes_and_private_hosts_before_the_download(caplog):
    lookups = []
    answers = {"intranet.invalid": "10.1.2.3", "public.invalid": "93.184.216.34"}

    def resolve(host):
        lookups.append(host)
        return defer.succeed(answers[host])

    collector = FakeStats()
    middleware = ContainmentMiddleware(AddressPolicy.from_setting("127.0.0.1/32"), resolve, collector)

    def outcome(url):
        try:
            asyncio.run(middleware.process_request(Request(url)))
        except (PrivateNetworkRefused, SchemeRefused) as exc:
            return exc.reject_reason
        return "allowed"

    with caplog.at_level(logging.WARNING, logger="crawler.containment"):
        assert outcome("http://127.0.0.1:8080/") == "allowed"
        for url in ("http://127.0.0.2/", "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/",
                    "http://[::1]:8080/", "http://[::ffff:169.254.169.254]/"):
            assert outcome(url) == "private_network", url
        assert lookups == [], "literals and localhost are refused without a lookup"
        assert outcome("http://intranet.invalid/a") == outcome("http://intranet.invalid/b") == "private_network"
        assert outcome("https://public.invalid/") == "allowed"
        for url in ("file:///etc/passwd", "s3://bucket/key", "ftp://127.0.0.1/x", "data:text/html,<p>x</p>"):
            assert outcome(url) == "unsupported_scheme", url
    assert collector.values[stats.refused("private_network")] == 7
    assert collector.values[stats.refused("unsupported_scheme")] == 4
    refused_lines = [r.getMessage() for r in caplog.records if "intranet.invalid" in r.getMessage()]
    assert len(refused_lines) == 1 and "10.1.2.3" in refused_lines[0], "one line per refused host"


def test_resolver_and_middleware_refuse_public_addresses_outside_the_allowed_networks(caplog):
    policy = AddressPolicy.from_setting(LOOPBACK, only=LOOPBACK)
    resolver = PrivateNetworkResolver(reactor=None, cache_size=100, timeout=1, policy=policy)
    dnscache["public.invalid"], dnscache["here.invalid"] = "93.184.216.34", "127.0.0.1"
    try:
        failures, answers = [], []
        for name in ("public.invalid", "93.184.216.34", "[2606:4700::1]"):
            resolver.getHostByName(name).addErrback(failures.append)
        resolver.getHostByName("here.invalid").addCallback(answers.append)
        assert [f.check(NetworkNotAllowed) for f in failures] == [NetworkNotAllowed] * 3 and answers == ["127.0.0.1"]
        assert "resolves to 93.184.216.34, outside the allowed networks" in str(failures[0].value)

        class Receiver:
            addresses: list = []

            def resolutionBegan(self, resolution): ...  # noqa: N802
            def addressResolved(self, address): self.addresses.append(address)  # noqa: N802,E704
            def resolutionComplete(self): ...  # noqa: N802,E704

        receiver = Receiver()
        SimpleResolverComplexifier(resolver).resolveHostName(receiver, "public.invalid", 80)
        assert receiver.addresses == [], "Twisted gets no address to connect to"
    finally:
        del dnscache["public.invalid"], dnscache["here.invalid"]

    lookups = []

    def resolve(host):
        lookups.append(host)
        return resolver.getHostByName(host) if host == "rebound.invalid" else defer.succeed("93.184.216.34")

    collector = FakeStats()
    middleware = ContainmentMiddleware(policy, resolve, collector)

    def outcome(url):
        try:
            asyncio.run(middleware.process_request(Request(url)))
        except (PrivateNetworkRefused, NetworkNotAllowed) as exc:
            return exc.reject_reason
        return "allowed"

    dnscache["rebound.invalid"] = "8.8.8.8"
    try:
        with caplog.at_level(logging.WARNING, logger="crawler.containment"):
            assert outcome("http://127.0.0.1:8080/") == outcome("http://[::1]:8080/") == "allowed"
            for url in ("http://93.184.216.34/", "https://[2606:4700::1]/x", "http://8.8.8.8:53/"):
                assert outcome(url) == "network_not_allowed", url
            assert lookups == [], "literals are decided without a lookup"
            assert outcome("http://public.invalid/a") == outcome("http://public.invalid/b") == "network_not_allowed"
            assert outcome("http://rebound.invalid/") == "network_not_allowed", "the resolver's own refusal"
            assert outcome("http://10.0.0.1/") == "private_network"
    finally:
        del dnscache["rebound.invalid"]
    assert collector.values == {stats.refused("network_not_allowed"): 6, stats.refused("private_network"): 1}
    lines = [r.getMessage() for r in caplog.records if "public.invalid" in r.getMessage()]
    assert lines == ["Refused requests to public.invalid: it resolves to 93.184.216.34, outside the allowed networks "
                     "(CRAWL_ALLOWED_NETWORKS)"], "one line per refused host"


class FakeStats:
    def __init__(self):
        self.values = {}

    def inc_value(self, name, count=1):
        self.values[name] = self.values.get(name, 0) + count


# --- private networks in a crawl -----------------------------------------------------------------------------


def refused(result, reason: str) -> int:
    return result.manifests()[0]["counts"].get("refused", {}).get(reason, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def catch_all_proxy():
    """The environment's HTTP proxy for every host but the test sites: a request a broken guard lets
    through ends here, on loopback, instead of on the network."""
    with LocalSite() as proxy:
        yield proxy, {"http_proxy": proxy.base_url, "https_proxy": proxy.base_url,
                      "no_proxy": "127.0.0.1,127.0.0.2"}


@pytest.mark.slow
def test_by_default_the_loopback_site_is_not_fetched(monkeypatch, tmp_path):
    monkeypatch.delitem(TEST_SETTINGS, "ALLOW_PRIVATE_NETWORKS")
    with LocalSite({"/": Page(body=b"<html><body><a href='/a'>a</a></body></html>")}) as site:
        result = run_crawl(tmp_path / "archive", [site.base_url + "/", site.base_url + "/robots.txt"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert sum(site.requests.values()) == 0
    assert refused(result, "private_network") == 2
    assert result.stderr.count("Refused requests to 127.0.0.1") == 1, "one line per refused host"
    assert "Telnet console listening" not in result.stderr and "Remote control" not in result.stderr


@pytest.mark.slow
def test_private_targets_of_links_and_redirects_are_never_connected_to(tmp_path, catch_all_proxy):
    proxy, proxy_env = catch_all_proxy
    with LocalSite() as site, LocalSite(host="127.0.0.2") as other:
        port = other.base_url.rsplit(":", 1)[1]
        hosts = [other.base_url, f"http://[::1]:{port}", "http://10.0.0.1", "http://169.254.169.254",
                 "http://0.0.0.0:80"]
        links = "".join(f'<a href="{host}/linked">link</a>' for host in hosts)
        redirects = "".join(f'<a href="/redirect-{n}">redirect</a>' for n in range(len(hosts)))
        site.pages["/"] = Page(body=f"<html><body>{links}{redirects}</body></html>".encode())
        for n, host in enumerate(hosts):
            location = {"Location": host + "/latest/meta-data/"}
            site.pages[f"/redirect-{n}"] = Page(body=b"", status=302, headers=location)
        # every host is also a start URL, so that it is on-site and only the guard stands in the way
        result = run_crawl(tmp_path / "archive", [site.base_url + "/"] + [host + "/" for host in hosts],
                           settings={"ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32"}, env=proxy_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sum(other.requests.values()) == 0, other.requests
    assert sum(proxy.requests.values()) == 0, proxy.requests
    assert all(site.fetched(f"/redirect-{n}") == 1 for n in range(len(hosts))), "the redirects were followed..."
    assert refused(result, "private_network") == 3 * len(hosts), "...to a refusal, as were the links and start URLs"
    for dataset in ("articles", "duplicates"):
        assert not [row for row in result.rows(dataset) if not row["url"].startswith(site.base_url)]


@pytest.mark.slow
def test_public_targets_outside_the_allowed_networks_are_never_connected_to(tmp_path, catch_all_proxy):
    """Every test crawl allows loopback only (TEST_SETTINGS): links, redirects and start URLs to public
    addresses, as IP literals and as a name resolving to one (a static test resolver: no DNS), are refused
    before any connection; a broken guard would send them to the catch-all proxy, which sees nothing."""
    proxy, proxy_env = catch_all_proxy
    with LocalSite() as site:
        hosts = ["http://93.184.216.34", "http://[2606:4700::1]:8080", "https://8.8.8.8", "http://public.invalid"]
        links = "".join(f'<a href="{host}/linked">link</a>' for host in hosts)
        redirects = "".join(f'<a href="/redirect-{n}">redirect</a>' for n in range(len(hosts)))
        site.pages["/"] = Page(body=f"<html><body>{links}{redirects}</body></html>".encode())
        for n, host in enumerate(hosts):
            site.pages[f"/redirect-{n}"] = Page(body=b"", status=302, headers={"Location": host + "/moved"})
        result = run_crawl(tmp_path / "archive", [site.base_url + "/"] + [host + "/" for host in hosts], settings={
            "TWISTED_DNS_RESOLVER": "faults.StaticDNSResolver", "FAULT_DNS_ANSWERS": '{"public.invalid": "93.184.216.34"}',
        }, env={**proxy_env, "PYTHONPATH": str(REPO / "tests")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert sum(proxy.requests.values()) == 0, proxy.requests
    assert all(site.fetched(f"/redirect-{n}") == 1 for n in range(len(hosts))), "the redirects were followed..."
    assert refused(result, "network_not_allowed") == 3 * len(hosts), "...to a refusal, as were the links and start URLs"
    assert refused(result, "private_network") == 0
    rejects = [row for row in result.rows("rejects") if not row["url"].startswith("http://127.0.0.1:")]
    assert sorted({row["reason"] for row in rejects}) == ["network_not_allowed"] and len(rejects) == 3 * len(hosts)
    assert result.stderr.count("Refused requests to public.invalid: it resolves to 93.184.216.34") == 1


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "value"), [("CRAWL_ALLOWED_NETWORKS", "127.0.0.0/33"),
                                                ("CRAWL_ALLOWED_NETWORKS", "loopback"),
                                                ("ALLOW_PRIVATE_NETWORKS", "10.0.0.0/8,maybe")])
def test_bad_network_settings_are_refused_at_start_up(tmp_path, setting, value):
    with LocalSite({"/": Page(body=ARTICLE)}) as site:
        result = run_crawl(tmp_path / "archive", [site.base_url + "/"], settings={setting: value})
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"news-archive: {setting} must be ") and "Traceback" not in result.stderr, last
    assert sum(site.requests.values()) == 0 and not (tmp_path / "archive").exists()


def test_every_test_demo_and_benchmark_crawl_reaches_loopback_only():
    command = crawl_command(REPO / "archive", ["http://127.0.0.1:1/"])
    assert f"CRAWL_ALLOWED_NETWORKS={LOOPBACK}" in command
    assert "CRAWL_ALLOWED_NETWORKS=127.0.0.0/8" in demo.crawl_command("http://127.0.0.1:1", REPO / "archive")
    assert '"CRAWL_ALLOWED_NETWORKS": "127.0.0.0/8"' in (REPO / "benchmarks" / "throughput.py").read_text()


def test_no_proxy_or_aws_variable_from_outside_reaches_a_test_or_a_crawl(monkeypatch):
    # the session started without them (conftest.no_way_off_loopback), whatever the machine's environment
    assert [name for name in os.environ if name.lower().endswith("_proxy")] == []
    assert sorted(name for name in os.environ if name.startswith("AWS_")) == [
        "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_SHARED_CREDENTIALS_FILE"]
    outside = {"http_proxy": "http://proxy.example:3128", "HTTPS_PROXY": "http://proxy.example:3128",
               "ALL_PROXY": "socks5://proxy.example:1080", "No_Proxy": "*", "ftp_proxy": "http://proxy.example:21",
               "AWS_PROFILE": "production", "AWS_ENDPOINT_URL": "https://s3.amazonaws.com", "AWS_REGION": "eu-west-1",
               "ARCHIVE_URI": "s3://production-bucket/news"}
    for name, value in outside.items():
        monkeypatch.setenv(name, value)
    env = crawl_env({"https_proxy": "http://127.0.0.1:9", "AWS_REGION": "us-east-1"})  # what a test sets is kept
    assert {name: env.get(name) for name in outside} == {name: None for name in outside} | {"AWS_REGION": "us-east-1"}
    assert env["https_proxy"] == "http://127.0.0.1:9"
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull


@pytest.mark.slow
def test_a_proxy_in_the_test_environment_does_not_reach_a_crawl(tmp_path, monkeypatch, catch_all_proxy):
    proxy, _ = catch_all_proxy
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.base_url)  # as if the machine had a proxy, loopback not exempted
    monkeypatch.delenv("no_proxy", raising=False)
    with LocalSite({"/": Page(body=ARTICLE)}) as site:
        result = run_crawl(tmp_path / "archive", [site.base_url + "/"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert site.fetched("/") == 1 and sum(proxy.requests.values()) == 0, proxy.requests


@pytest.mark.slow
def test_resolver_alone_refuses_what_the_middleware_would(tmp_path):
    """With the middleware switched off, the resolver still gives Twisted no private address to connect to."""
    with LocalSite() as site, LocalSite(host="127.0.0.2") as other:
        site.pages["/"] = Page(body=b"", status=302, headers={"Location": other.base_url + "/"})
        middlewares = {**project_settings.DOWNLOADER_MIDDLEWARES, "crawler.containment.ContainmentMiddleware": None}
        result = run_crawl(tmp_path / "archive", [site.base_url + "/", other.base_url + "/"],
                           settings={"ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32", "RETRY_TIMES": "0",
                                     "DOWNLOADER_MIDDLEWARES": json.dumps(middlewares)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert site.fetched("/") == 1
    assert sum(other.requests.values()) == 0, other.requests


# --- only http and https -------------------------------------------------------------------------------------

OTHER_SCHEMES = ["file:///etc/passwd", "s3://bucket/key", "ftp://127.0.0.1/x", "data:text/html,<h1>root:x:0:0</h1>"]


def test_other_schemes_are_switched_off_in_the_settings():
    settings = get_project_settings()
    handlers = settings.getdict("DOWNLOAD_HANDLERS")
    assert all(handlers.get(scheme, "on") is None for scheme in ("file", "s3", "ftp", "data"))
    assert settings.getdict("DOWNLOADER_MIDDLEWARES").get("crawler.containment.ContainmentMiddleware")


def test_the_spider_requests_no_other_scheme():
    from crawler.spiders.news import NewsSpider

    spider = NewsSpider(start_urls="http://127.0.0.1:1/")
    spider.crawler = SimpleNamespace()  # no stats, no state of earlier runs
    assert all(spider._request(url, role="entry", via="link", source=None, depth=1) is None for url in OTHER_SCHEMES)
    assert spider._request("http://127.0.0.1:1/a", role="entry", via="link", source=None, depth=1) is not None


def test_a_redirect_to_another_scheme_is_not_followed():
    from scrapy.downloadermiddlewares.redirect import RedirectMiddleware

    middleware = RedirectMiddleware(get_project_settings())
    middleware.crawler = SimpleNamespace(spider=None, stats=FakeStats())
    request = Request("http://127.0.0.1:1/r")
    for url in OTHER_SCHEMES:
        response = Response(request.url, status=302, headers={"Location": url}, request=request)
        assert middleware.process_response(request, response) is response, url


@pytest.mark.slow
def test_links_and_redirects_to_other_schemes_fetch_nothing(tmp_path):
    with LocalSite() as site:
        links = "".join(f'<a href="{url}">x</a>' for url in OTHER_SCHEMES)
        redirects = "".join(f'<a href="/redirect-{n}">x</a>' for n in range(len(OTHER_SCHEMES)))
        site.pages["/"] = Page(body=f"<html><body>{links}{redirects}</body></html>".encode())
        for n, url in enumerate(OTHER_SCHEMES):
            site.pages[f"/redirect-{n}"] = Page(body=b"", status=302, headers={"Location": url})
        locs = "".join(f"<url><loc>{url}</loc></url>" for url in OTHER_SCHEMES)
        site.pages["/sitemap.xml"] = Page(
            body=f'<?xml version="1.0"?><urlset {SITEMAP_NS}>{locs}</urlset>'.encode(),
            content_type="application/xml")
        result = run_crawl(tmp_path / "archive", [site.base_url + "/", site.base_url + "/sitemap.xml"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(site.fetched(f"/redirect-{n}") == 1 for n in range(len(OTHER_SCHEMES)))
    rows = [row for dataset in ("articles", "duplicates", "rejects") for row in result.rows(dataset)]
    assert not [row for row in rows if not str(row["url"]).startswith("http")]
    assert "root:x:0:0" not in json.dumps(rows, default=str)
    assert result.manifests()[0]["counts"]["requests"] == sum(site.requests.values())
    assert refused(result, "unsupported_scheme") == 0, "the spider made no request for the middleware to refuse"


# --- robots.txt that cannot be had ---------------------------------------------------------------------------

ARTICLE = (b"<html><body><article><h1>An article</h1><p>" + b"Text of the article. " * 40
           + b"</p></article></body></html>")
HOME = b"<html><body><a href='/news/one'>one</a> <a href='/private/two'>two</a></body></html>"


def robots_site(robots: Page | None) -> LocalSite:
    site = LocalSite({"/": Page(body=HOME), "/news/one": Page(body=ARTICLE), "/private/two": Page(body=ARTICLE)})
    if robots is not None:
        site.pages["/robots.txt"] = robots
    return site


@pytest.mark.slow
def test_robots_txt_errors_disallow_the_site_and_4xx_allows_it(tmp_path):
    rules = "User-agent: *\nDisallow: /private/\n"
    never = threading.Event()  # the timeout site's robots.txt is answered only after the crawl
    sites = {
        "500": robots_site(Page(body=b"oops", status=500, content_type="text/plain")),
        "503": robots_site(Page(body=b"busy", status=503, content_type="text/plain", headers={"Retry-After": "1"})),
        "timeout": robots_site(Page(body=rules.encode(), content_type="text/plain", hold=never)),
        "404": robots_site(Page(body=b"User-agent: *\nDisallow: /\n", status=404, content_type="text/plain")),
        "rules": robots_site(Page(body=rules.encode(), content_type="text/plain")),
    }
    for site in sites.values():
        site.start()
    closed = f"http://127.0.0.1:{free_port()}/"  # nothing listens: connection refused
    try:
        result = run_crawl(tmp_path / "archive", [site.base_url + "/" for site in sites.values()] + [closed],
                           # the timeout site never answers in time; the others answer at once, even on a busy
                           # machine, and are never asked twice (no retries): each count below is exact
                           settings={"DOWNLOAD_TIMEOUT": "5", "RETRY_TIMES": "0"})
    finally:
        never.set()
        for site in sites.values():
            site.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("500", "503", "timeout"):
        assert set(sites[name].requests) == {"/robots.txt"}, (name, sites[name].requests)
    assert [sites["404"].fetched(path) for path in ("/", "/news/one", "/private/two")] == [1, 1, 1]
    assert sites["rules"].fetched("/news/one") == 1 and sites["rules"].fetched("/private/two") == 0
    assert refused(result, "robots_unavailable") == 4, "the home pages of 500, 503, timeout and the closed port"
    assert refused(result, "robots_disallowed") == 1


# --- hostile sitemaps and feeds ------------------------------------------------------------------------------

def gzip_bomb(prefix: bytes, chunk: bytes, size: int) -> bytes:
    """``size`` bytes of ``prefix`` + repeated ``chunk``, gzip level 9: about a thousandth of that on the wire."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as f:
        f.write(prefix)
        block = chunk * (2**20 // len(chunk))
        for _ in range(size // len(block)):
            f.write(block)
    return out.getvalue()


def sitemap_bomb(base: str) -> bytes:
    return gzip_bomb(f'<?xml version="1.0"?><urlset {SITEMAP_NS}>'.encode(),
                     f"<url><loc>{base}/news/bomb</loc></url>".encode(), 100 * 2**20)


def test_gzip_sitemap_bomb_is_refused_within_the_size_limit():
    bomb = sitemap_bomb("http://127.0.0.1:1")
    assert len(bomb) < 2**20
    response = Response("http://127.0.0.1:1/sitemap.xml.gz", body=bomb,
                        headers={"Content-Type": "application/gzip"})
    tracemalloc.start()
    try:
        with pytest.raises(documents.DocumentTooLarge):
            documents.xml_body(response, 10 * 2**20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2**20, f"memory stays near the 10 MiB limit, not the 100 MB body: {peak} bytes"


@pytest.mark.slow
def test_hostile_sitemaps_and_feeds_in_a_crawl(tmp_path):
    with LocalSite() as site:
        base = site.base_url
        laughs = ('<!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                  '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
                  '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>')
        site.pages["/sitemap-laughs.xml"] = Page(content_type="application/xml", body=(
            f'<?xml version="1.0"?>{laughs}<urlset {SITEMAP_NS}><url><loc>{base}/news/from-laughs</loc></url>'
            f"<url><loc>{base}/news/&f;</loc></url></urlset>").encode())  # libxml2 stops at the bomb, unexpanded
        leak = tmp_path / "leak.txt"  # a local file an external entity could read: it holds a URL of the site
        leak.write_text(f"{base}/news/leaked-by-xxe")
        xxe = (f'<!DOCTYPE rss SYSTEM "{base}/xxe-dtd" [<!ENTITY probe SYSTEM "{base}/xxe-probe">'
               f'<!ENTITY passwd SYSTEM "file:///etc/passwd"><!ENTITY leak SYSTEM "{leak.as_uri()}">]>')
        site.pages["/feed.xml"] = Page(content_type="application/rss+xml", body=(
            f'<?xml version="1.0"?>{xxe}<rss version="2.0"><channel><title>&passwd;</title>'
            f"<item><title>&passwd;</title><link>&probe;</link></item><item><link>&leak;</link></item>"
            f"<item><title>ok</title><link>{base}/news/from-feed</link><description>&passwd;</description></item>"
            "</channel></rss>").encode())
        site.pages["/sitemap-bomb.xml.gz"] = Page(body=sitemap_bomb(base), content_type="application/x-gzip")
        site.pages["/sitemap.xml"] = Page(content_type="application/xml", body=(
            f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY leak SYSTEM "{leak.as_uri()}">]><urlset {SITEMAP_NS}>'
            f"<url><loc>&leak;</loc></url><url><loc>{base}/news/ok</loc></url></urlset>").encode())
        for path in ("/news/from-laughs", "/news/from-feed", "/news/ok"):
            site.pages[path] = Page(body=ARTICLE)
        starts = ("/sitemap-laughs.xml", "/feed.xml", "/sitemap-bomb.xml.gz", "/sitemap.xml")
        result = run_crawl(tmp_path / "archive", [base + path for path in starts])
    assert result.returncode == 0, result.stderr[-2000:]
    assert site.fetched("/xxe-probe") == site.fetched("/xxe-dtd") == 0, "no external entity or DTD is loaded"
    assert site.fetched("/news/leaked-by-xxe") == 0, "no local file is read through an entity"
    assert site.fetched("/news/bomb") == 0
    articles = ("/news/from-laughs", "/news/from-feed", "/news/ok")
    assert all(site.fetched(path) == 1 for path in articles), ("the crawl goes on", site.requests)
    assert not [path for path in site.requests if len(path) > 200], "no entity was expanded into a URL"
    counts = result.manifests()[0]["counts"]
    assert counts["dropped"].get("too_large") == 1 and counts["spider_exceptions"] == 0
    assert [row["reason"] for row in result.rows("rejects") if row["url"].endswith(".xml.gz")] == ["too_large"]
    assert "root:x:0:0" not in json.dumps(result.rows("articles") + result.rows("rejects"), default=str)


# --- secrets and remote consoles -----------------------------------------------------------------------------


def test_remote_consoles_are_off_by_default():
    settings = get_project_settings()
    assert settings.getbool("TELNETCONSOLE_ENABLED") is False
    assert settings.getbool("REMOTE_CONTROL_ENABLED") is False


@pytest.mark.slow
def test_no_secret_from_environment_or_settings_in_any_output(tmp_path):
    secrets = {name: f"{name.lower()}-Zq8Xw3Kd9Lm2" for name in
               ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ARCHIVE_S3_SSE_KMS_KEY_ID", "ENDPOINT_PASSWORD",
                "ENV_SECRET", "ENV_TOKEN")}
    with LocalSite({"/": Page(body=ARTICLE)}) as site:
        result = run_crawl(tmp_path / "archive", [site.base_url + "/"], settings={
            "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
            "AWS_SESSION_TOKEN": secrets["AWS_SESSION_TOKEN"],
            "ARCHIVE_S3_SSE_KMS_KEY_ID": secrets["ARCHIVE_S3_SSE_KMS_KEY_ID"],
            "ARCHIVE_S3_ENDPOINT_URL": f"http://user:{secrets['ENDPOINT_PASSWORD']}@127.0.0.1:9",
        }, env={"AWS_SECRET_ACCESS_KEY": secrets["ENV_SECRET"], "AWS_SESSION_TOKEN": secrets["ENV_TOKEN"]})
    assert result.returncode == 0, result.stderr[-2000:]
    outputs = result.stdout + result.stderr + "".join(
        path.read_bytes().decode("latin-1") for path in (tmp_path / "archive").rglob("*") if path.is_file())
    assert "Dumping Scrapy stats" in result.stderr
    assert [name for name, value in secrets.items() if value in outputs] == []


@pytest.mark.slow
def test_no_secret_in_an_s3_error(tmp_path):
    """An unreachable S3 endpoint with credentials in its URL and in the environment: refused, masked."""
    password, secret, token = "Pw-3kd9Lm2Zq8", "Sk-Zq8Xw3Kd9Lm2Pq", "Tk-Kd9Lm2Zq8Xw3"
    result = run_crawl(tmp_path / "unused", ["http://127.0.0.1:1/"], settings={
        "ARCHIVE_URI": "s3://bucket/prefix",
        "ARCHIVE_S3_ENDPOINT_URL": f"http://user:{password}@127.0.0.1:{free_port()}",
        "ARCHIVE_S3_MAX_ATTEMPTS": "1", "ARCHIVE_S3_CONNECT_TIMEOUT": "2",
    }, env={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID", "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token,
            "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("news-archive: ")
    output = result.stdout + result.stderr
    assert password not in output and secret not in output and token not in output
