"""The sites a crawl covers: start URLs and URL rules per site, from ``-a start_urls`` or a sites file.

A sites file (YAML or TOML) lists sites::

    sites:
      - name: Example Times
        start_urls: [https://example.com/, https://example.com/feed.xml]
        allow: ['/news/', '/\\d{4}/\\d{2}/']   # optional regexes; a URL must match one
        deny: ['/video/', '/live/']            # optional regexes; a URL matching one is skipped

TOML: ``[[sites]]`` tables with the same keys.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from pipelines.exceptions import ArchiveConfigError
from pipelines.fingerprints import registered_domain


@dataclass(kw_only=True, slots=True)
class Site:
    name: str
    start_urls: list[str]
    allow: list[re.Pattern] = field(default_factory=list)
    deny: list[re.Pattern] = field(default_factory=list)

    @property
    def hosts(self) -> set[str]:
        return {urlsplit(url).hostname.lower() for url in self.start_urls}

    @property
    def domains(self) -> set[str]:
        return {registered_domain(url) for url in self.start_urls}

    @property
    def shard_key(self) -> str:
        """What decides the site's crawl shard (``crawler/shards.py``): its smallest registered domain."""
        return min(self.domains)

    def allows(self, url: str) -> bool:
        """Whether the URL rules admit ``url`` (start URLs, feeds and sitemaps are not subject to them)."""
        if any(pattern.search(url) for pattern in self.deny):
            return False
        return not self.allow or any(pattern.search(url) for pattern in self.allow)


def check_start_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ArchiveConfigError(f"start URL must be an absolute http(s) URL: {url!r}")
    return url


def sites_from_start_urls(start_urls: str) -> list[Site]:
    """One site per host of the comma-separated ``start_urls``."""
    by_host: dict[str, Site] = {}
    for url in filter(None, (u.strip() for u in start_urls.split(","))):
        url = check_start_url(url)
        host = urlsplit(url).hostname.lower()
        by_host.setdefault(host, Site(name=host, start_urls=[])).start_urls.append(url)
    return list(by_host.values())


def load_sites_file(path: str | Path) -> list[Site]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ArchiveConfigError(f"cannot read sites file {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ArchiveConfigError(f"sites file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    entries = data.get("sites") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ArchiveConfigError(f"sites file {path} must hold a non-empty list under 'sites'")
    sites = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not entry.get("start_urls"):
            raise ArchiveConfigError(f"site #{number} in {path} needs start_urls")
        urls = entry["start_urls"]
        urls = [urls] if isinstance(urls, str) else urls
        try:
            allow = [re.compile(p) for p in entry.get("allow") or []]
            deny = [re.compile(p) for p in entry.get("deny") or []]
        except re.error as exc:
            raise ArchiveConfigError(f"site #{number} in {path}: bad URL pattern: {exc}") from exc
        sites.append(
            Site(
                name=str(entry.get("name") or urlsplit(check_start_url(urls[0])).hostname),
                start_urls=[check_start_url(u) for u in urls],
                allow=allow,
                deny=deny,
            )
        )
    return sites
