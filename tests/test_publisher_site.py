"""Fast checks of the two-edition publisher site (tests/publishersite.py) and of LocalSite's nginx semantics.

One LocalSite on 127.0.0.1 serves the module; each test puts the edition it needs in place. Requests go
through urllib with no proxy and no redirect following, to 127.0.0.1 only.
"""

from __future__ import annotations

import itertools
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html
import pytest

from crawler.localsite import LocalSite, LogEntry, Page
from newssite import NEWS_SITEMAP_NS, SITEMAP_NS
from pipelines import fingerprints
from pipelines.extract import build_options, extract_page
from publishersite import (
    ARCHIVE_SITEMAP,
    DISCONTINUED,
    EDITION_TIMES,
    FEED,
    HOME,
    NEWS_SITEMAP,
    NOT_AFTER,
    OFFSITE_HOST,
    PAGES_SITEMAP,
    ROBOTS,
    SECTIONS,
    SITEMAP_INDEX,
    START_PATHS,
    build_publisher_site,
)

pytestmark = [pytest.mark.needs_corpus]

ROUTE_PAGES = {"home": HOME, "news_sitemap": NEWS_SITEMAP, "feed": FEED}
FEED_TYPES = ("application/rss+xml", "application/atom+xml")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Served:
    server: LocalSite
    spec: object  # PublisherSite

    @property
    def base(self) -> str:
        return self.server.base_url

    def edition(self, n: int) -> "Served":
        self.server.pages = self.spec.edition(n)
        return self

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        url = self.base + path
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with OPENER.open(request, timeout=10) as response:
                return Answer(response.status, dict(response.headers.items()), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, dict(error.headers.items()), error.read())

    def local(self, page_url: str, href: str) -> str | None:
        """``href`` on ``page_url`` as a path with query when it is on this site, else None."""
        parts = urlsplit(urljoin(page_url, href.strip()))
        if f"{parts.scheme}://{parts.netloc}" != self.base:
            return None
        return (parts.path or "/") + ("?" + parts.query if parts.query else "")


@pytest.fixture(scope="module")
def served():
    server = LocalSite()
    base = server.start()
    spec = build_publisher_site(base)
    yield Served(server, spec)
    server.stop()


def _links(served: Served, path: str, answer: Answer) -> list[str]:
    """Same-site links of a page: <a>/<area> hrefs and feed <link rel=alternate> of HTML;
    <loc> of sitemaps; <link> and permalink <guid> of RSS; Sitemap: lines of robots.txt."""
    page_url = served.base + path
    content_type = answer.headers.get("Content-Type", "")
    hrefs: list[str] = []
    if content_type.startswith("text/html"):
        doc = lxml.html.fromstring(answer.body)
        hrefs += [el.get("href") for el in doc.iter("a", "area") if el.get("href")]
        for el in doc.iter("link"):
            rel = (el.get("rel") or "").lower().split()
            if el.get("href") and "alternate" in rel and el.get("type") in FEED_TYPES:
                hrefs.append(el.get("href"))
    elif content_type.startswith("text/plain"):
        hrefs += [line.split(":", 1)[1].strip() for line in answer.body.decode().splitlines()
                  if line.lower().startswith("sitemap:")]
    else:
        root = lxml.etree.fromstring(answer.body)
        hrefs += [el.text for el in root.iter(f"{{{SITEMAP_NS}}}loc")]
        hrefs += [el.text for el in root.iter("link") if el.text]
        hrefs += [el.text for el in root.iter("guid") if el.get("isPermaLink", "true") == "true"]
    return [p for p in (served.local(page_url, h) for h in hrefs) if p is not None]


def _crawl(served: Served, edition: int) -> tuple[dict[str, Answer], dict[str, list[str]]]:
    """Every page reachable from the start paths (redirects followed), with the links of each."""
    served.edition(edition)
    answers: dict[str, Answer] = {}
    links: dict[str, list[str]] = {}
    queue = list(START_PATHS)
    while queue:
        path = queue.pop(0)
        if path in answers:
            continue
        answer = answers[path] = served.get(path)
        if answer.status in (301, 302):
            queue.append(served.local(served.base + path, answer.headers["Location"]))
        elif answer.status == 200:
            links[path] = _links(served, path, answer)
            queue += links[path]
    return answers, links


@pytest.fixture(scope="module")
def crawls(served):
    return {n: _crawl(served, n) for n in (1, 2)}


# --------------------------------------------------------------------------- LocalSite: nginx semantics


def test_conditional_requests_are_answered_as_nginx_does(served):
    served.edition(1)
    story = served.spec.stories[0]
    page = served.spec.edition(1)[story.path]
    plain = served.get(story.path)
    assert plain.status == 200 and plain.body == page.body
    last_modified, etag = plain.headers["Last-Modified"], plain.headers["ETag"]
    assert last_modified == "Sun, 29 Nov 2026 06:00:00 GMT"
    assert etag == f'"{int(EDITION_TIMES[1].timestamp()):x}-{len(page.body):x}"'
    other_etag = f'"{int(EDITION_TIMES[1].timestamp()):x}-{len(page.body) + 1:x}"'
    later = format_datetime(EDITION_TIMES[1] + timedelta(seconds=1), usegmt=True)
    earlier = format_datetime(EDITION_TIMES[1] - timedelta(days=1), usegmt=True)

    cases = [
        ({"If-Modified-Since": last_modified}, 304),
        ({"If-Modified-Since": later}, 200),  # exact: a later date is not "not modified" either
        ({"If-Modified-Since": earlier}, 200),
        ({"If-Modified-Since": "yesterday"}, 200),
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"abc", {etag}'}, 304),
        ({"If-None-Match": "W/" + etag}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": other_etag}, 200),
        ({"If-None-Match": etag, "If-Modified-Since": last_modified}, 304),
        ({"If-None-Match": other_etag, "If-Modified-Since": last_modified}, 200),
        ({"If-None-Match": etag, "If-Modified-Since": earlier}, 200),
        ({}, 200),
    ]
    for headers, status in cases:
        answer = served.get(story.path, headers)
        assert answer.status == status, headers
        if status == 304:
            assert answer.body == b""
            assert answer.headers["ETag"] == etag and answer.headers["Last-Modified"] == last_modified
        else:
            assert answer.body == page.body

    # redirects and dead pages are never 304, whatever the validators
    everything = {"If-None-Match": "*", "If-Modified-Since": last_modified}
    for path in (story.short_path, story.slashless_path, served.spec.tracking_link, *served.spec.dead_paths):
        answer = served.get(path, everything)
        expected = served.spec.redirect_paths.get(path, (served.spec.dead_paths.get(path),))[0]
        assert answer.status == expected, path
        assert "Last-Modified" not in answer.headers and "ETag" not in answer.headers


def test_pages_without_last_modified_keep_the_content_hash_etag(served):
    legacy = Page(body=b"<html><body>legacy</body></html>")
    served.server.pages = {"/legacy": legacy}
    answer = served.get("/legacy")
    assert answer.status == 200 and "Last-Modified" not in answer.headers
    etag = answer.headers["ETag"]
    assert len(etag) == 18 and "-" not in etag
    assert served.get("/legacy", {"If-None-Match": etag}).status == 304
    assert served.get("/legacy", {"If-None-Match": "*"}).status == 200
    assert served.get("/legacy", {"If-Modified-Since": "Sun, 29 Nov 2026 06:00:00 GMT"}).status == 200
    assert served.get("/legacy", {"If-None-Match": f'"x", {etag}'}).status == 200


def test_the_log_records_each_request_with_its_status_and_validators(served):
    served.edition(1)
    start = len(served.server.log)
    lm = served.get(ROBOTS).headers["Last-Modified"]
    served.get(ROBOTS, {"If-Modified-Since": lm, "If-None-Match": '"nope"'})
    served.get(ROBOTS, {"If-Modified-Since": lm})
    served.get(DISCONTINUED, {"If-None-Match": "*"})
    served.get("/never-was/?x=1")
    assert served.server.log[start:] == [
        LogEntry(ROBOTS, 200, None, None),
        LogEntry(ROBOTS, 200, '"nope"', lm),
        LogEntry(ROBOTS, 304, None, lm),
        LogEntry(DISCONTINUED, 410, "*", None),
        LogEntry("/never-was/?x=1", 404, None, None),
    ]
    assert served.server.statuses[(ROBOTS, 304)] >= 1 and served.server.fetched(DISCONTINUED) >= 1


# --------------------------------------------------------------------------- the two editions


def test_the_builder_is_deterministic_and_has_the_planned_shape(served):
    spec = served.spec
    again = build_publisher_site(served.base)  # as an end-to-end test builds it
    for n in (1, 2):
        one, two = spec.edition(n), again.edition(n)
        assert one.keys() == two.keys()
        assert all((one[p].body, one[p].status, one[p].headers, one[p].last_modified)
                   == (two[p].body, two[p].status, two[p].headers, two[p].last_modified) for p in one)
    assert again.offsite_canonical_variant not in again.edition(1), "the partner's copy appears in edition 2"
    assert again.edition(2)[again.offsite_canonical_variant].status == 200
    assert len(spec.stories_in(1)) == 20 and len(spec.stories_in(2)) == 32
    assert len(spec.new_in(2)) == 12 and len(spec.story_paths(2)) == len(set(spec.story_paths(2))) == 32
    assert sorted(s.new_route for s in spec.new_in(2)) == ["feed"] * 4 + ["home"] * 4 + ["news_sitemap"] * 4
    assert len({s.source_id for s in spec.stories}) == 32
    amp_kinds = {s.amp_path.removeprefix(s.path) for s in spec.stories}
    assert amp_kinds == {"amp/", "?amp=1"}
    for s in spec.stories:
        assert s.path.startswith("/news/") and s.path.endswith("/") and s.short_path.startswith("/p/")
        assert s.published <= NOT_AFTER and 2 <= len(s.tags) <= 3
        assert all(t in spec.dead_paths for t in s.tags)
    for path in spec.edition(2):
        assert spec.edition(2)[path].last_modified is not None, path
    assert all(page.last_modified == EDITION_TIMES[1] for page in spec.edition(1).values())
    for path in spec.changed_paths():
        assert spec.edition(2)[path].last_modified == EDITION_TIMES[2], path
    unchanged = spec.unchanged_paths()
    assert {ROBOTS, SITEMAP_INDEX, ARCHIVE_SITEMAP, PAGES_SITEMAP, *SECTIONS} <= unchanged
    assert {HOME, NEWS_SITEMAP, FEED} <= spec.changed_paths()
    assert spec.edition(1).keys() <= spec.edition(2).keys()  # what was online stays online
    for s in spec.stories_in(1):
        assert spec.variant_paths(s) <= unchanged


def test_robots_and_sitemap_index_answer_304_to_the_first_editions_validators(served):
    paths = (ROBOTS, SITEMAP_INDEX, ARCHIVE_SITEMAP, PAGES_SITEMAP, NEWS_SITEMAP, FEED, HOME)
    first = {path: served.edition(1).get(path) for path in paths}
    served.edition(2)
    robots = first[ROBOTS].body.decode()
    assert robots == f"User-agent: *\nDisallow: /wp-admin/\n\nSitemap: {served.base}{SITEMAP_INDEX}\n"
    for path in (ROBOTS, SITEMAP_INDEX, ARCHIVE_SITEMAP, PAGES_SITEMAP):
        before = first[path]
        now = served.get(path)
        assert now.status == 200 and now.body == before.body, path
        assert (now.headers["ETag"], now.headers["Last-Modified"]) == (before.headers["ETag"],
                                                                        before.headers["Last-Modified"])
        for validators in ({"If-None-Match": before.headers["ETag"]},
                           {"If-Modified-Since": before.headers["Last-Modified"]},
                           {"If-None-Match": before.headers["ETag"],
                            "If-Modified-Since": before.headers["Last-Modified"]}):
            answer = served.get(path, validators)
            assert answer.status == 304 and answer.body == b"", (path, validators)
    for path in (NEWS_SITEMAP, FEED, HOME):
        before = first[path]
        answer = served.get(path, {"If-None-Match": before.headers["ETag"],
                                   "If-Modified-Since": before.headers["Last-Modified"]})
        assert answer.status == 200 and answer.body != before.body, path
        assert answer.headers["Last-Modified"] == "Mon, 30 Nov 2026 06:00:00 GMT"


def test_sitemaps_and_feed_are_well_formed(served):
    for n in (1, 2):
        served.edition(n)
        index = lxml.etree.fromstring(served.get(SITEMAP_INDEX).body)
        entries = {
            el.findtext(f"{{{SITEMAP_NS}}}loc"): el.findtext(f"{{{SITEMAP_NS}}}lastmod")
            for el in index.iter(f"{{{SITEMAP_NS}}}sitemap")
        }
        assert entries[served.base + NEWS_SITEMAP] is None
        assert entries[served.base + ARCHIVE_SITEMAP] == "2026-01-05T00:00:00+00:00"
        assert datetime.fromisoformat(entries[served.base + PAGES_SITEMAP]) < EDITION_TIMES[1]
        news = lxml.etree.fromstring(served.get(NEWS_SITEMAP).body)
        urls = list(news.iter(f"{{{SITEMAP_NS}}}url"))
        assert len(urls) == 10
        for url in urls:
            pub = url.find(f"{{{NEWS_SITEMAP_NS}}}news")
            assert pub.findtext(f"{{{NEWS_SITEMAP_NS}}}publication/{{{NEWS_SITEMAP_NS}}}name")
            assert pub.findtext(f"{{{NEWS_SITEMAP_NS}}}publication/{{{NEWS_SITEMAP_NS}}}language")
            assert pub.findtext(f"{{{NEWS_SITEMAP_NS}}}title")
            assert datetime.fromisoformat(pub.findtext(f"{{{NEWS_SITEMAP_NS}}}publication_date")) <= NOT_AFTER
        rss = lxml.etree.fromstring(served.get(FEED).body)
        assert rss.tag == "rss" and rss.get("version") == "2.0"
        items = rss.findall("channel/item")
        assert len(items) == 10
        assert all(parsedate_to_datetime(item.findtext("pubDate")) <= NOT_AFTER for item in items)
        archive = lxml.etree.fromstring(served.get(ARCHIVE_SITEMAP).body)
        archived = [el.text for el in archive.iter(f"{{{SITEMAP_NS}}}loc")]
        assert 3 <= len(archived) <= 4
        assert {urlsplit(u).path for u in archived} <= set(served.spec.story_paths(1))
        pages = lxml.etree.fromstring(served.get(PAGES_SITEMAP).body)
        listed = [urlsplit(el.text).path for el in pages.iter(f"{{{SITEMAP_NS}}}loc")]
        assert listed == ["/about/", "/contact/"]
        assert all(served.get(p).status == 200 for p in listed)


def test_redirects_end_on_the_canonical_page(served):
    spec = served.edition(2).spec
    for story in spec.stories:
        for start in (story.short_path, story.slashless_path):
            first = served.get(start)
            assert first.status == 301 and first.headers["Location"] == served.base + story.path, start
            final = served.get(served.local(served.base + start, first.headers["Location"]))
            assert final.status == 200 and final.headers["Content-Type"] == "text/html; charset=utf-8"
            assert final.body == spec.edition(2)[story.path].body
    tracked = served.get(spec.tracking_link)
    target = spec.redirect_paths[spec.tracking_link][1]
    assert tracked.status == 302 and tracked.headers["Location"] == served.base + target
    assert spec.story_for(spec.tracking_link).path == target
    deleted = served.get(spec.deleted_short_path)
    assert deleted.status == 301 and deleted.headers["Location"] == served.base + spec.deleted_story_path
    assert served.get(spec.deleted_story_path).status == 404
    for path, (status, target) in spec.redirect_paths.items():
        assert path not in spec.dead_paths and (target in spec.dead_paths or spec.story_for(path) is not None)


def _canonicals(body: bytes) -> tuple[list[str], list[str]]:
    doc = lxml.html.fromstring(body)
    links = [el.get("href") for el in doc.iter("link")
             if "canonical" in (el.get("rel") or "").lower().split()]
    og = [el.get("content") for el in doc.iter("meta") if (el.get("property") or el.get("name")) == "og:url"]
    return links, og


def test_story_and_amp_pages_declare_the_canonical_url(served):
    spec = served.edition(2).spec
    for story in spec.stories:
        page, amp = served.get(story.path), served.get(story.amp_path)
        assert page.status == amp.status == 200 and page.body == amp.body
        assert page.headers["Content-Type"] == "text/html; charset=utf-8"
        page.body.decode("utf-8")
        links, og = _canonicals(amp.body)
        assert links and og and set(links) == set(og) == {served.base + story.path}, story.amp_path
        doc = lxml.html.fromstring(page.body)
        tags = doc.xpath('//div[@id="site-tags"]//a/@href')
        assert tags == story.tags
        assert doc.xpath("//body//div[@id='site-tags'][@class='tags']"), "the tag links are in <body>"
    offsite = served.get(spec.offsite_canonical_variant)
    assert offsite.status == 200
    links, og = _canonicals(offsite.body)
    assert set(links) == set(og) == {spec.offsite_canonical_url}
    assert spec.offsite_canonical_url.startswith(OFFSITE_HOST + "/")
    assert not spec.offsite_canonical_url.startswith(served.base)
    assert spec.story_for(spec.offsite_canonical_variant) is None


def test_dead_paths_answer_404_or_410_in_both_editions(served):
    for n in (1, 2):
        served.edition(n)
        for path, status in served.spec.dead_paths.items():
            assert status in (404, 410)
            assert served.get(path).status == status, path
    assert served.spec.dead_paths[DISCONTINUED] == 410


@pytest.mark.parametrize("edition", [1, 2])
def test_every_link_is_served_dead_or_a_redirect(served, crawls, edition):
    spec = served.edition(edition).spec
    pages = spec.edition(edition)
    answers, links = crawls[edition]
    # every page the edition serves, reachable or not, links only what is served or declared
    for path, page in pages.items():
        if page.status != 200:
            continue
        answer = answers.get(path) or served.get(path)
        for target in links.get(path) or _links(served, path, answer):
            assert target in pages, f"{path} links {target}, which the edition does not serve"
            status = pages[target].status
            if status in (404, 410):
                assert spec.dead_paths.get(target) == status, (path, target)
            elif status in (301, 302):
                assert spec.redirect_paths[target][0] == status, (path, target)
                assert pages[spec.redirect_paths[target][1]].status in (200, 404)
            else:
                assert status == 200, (path, target)
    # what a crawler finds from the start paths: every story of the edition, by the answers declared
    for path, answer in answers.items():
        if path in spec.dead_paths:
            assert answer.status == spec.dead_paths[path]
        elif path in spec.redirect_paths:
            status, target = spec.redirect_paths[path]
            assert answer.status == status and answer.headers["Location"] == served.base + target
        else:
            assert answer.status == 200, path
    for story in spec.stories_in(edition):  # reached, through the canonical URL or an alias
        assert any(answers[p].status == 200 for p in spec.variant_paths(story) if p in answers), story.path
    if edition == 1:
        assert not {s.path for s in spec.new_in(2)} & set(answers)
    reached_dead = {p for p in answers if p in spec.dead_paths}
    assert reached_dead == set(spec.dead_paths)


@pytest.mark.parametrize("edition", [1, 2])
def test_exactly_the_declared_routes_link_each_story(served, crawls, edition):
    spec = served.spec
    answers, links = crawls[edition]
    found: dict[int, dict[str, list[str]]] = {}
    for page, targets in links.items():
        for target in targets:
            story = spec.story_for(target)
            if story is not None and spec.story_for(page) is not story:  # not a story page's own "#" links
                found.setdefault(story.number, {}).setdefault(page, set()).add(target)
    for story in spec.stories:
        declared = {page: set(hrefs) for page, hrefs in story.links.get(edition, {}).items()}
        assert found.get(story.number, {}) == declared, (edition, story.path)
        assert story.routes(edition) == set(found.get(story.number, {}))
    if edition == 2:
        for story in spec.new_in(2):
            assert story.routes(1) == set()
            assert story.routes(2) == {ROUTE_PAGES[story.new_route]}, story.path
            assert served.edition(1).get(story.path).status == 404  # not online yet
        home = [s for s in spec.new_in(2) if s.new_route == "home"]
        assert {s.links[2][HOME][0] == s.short_path for s in home} == {True, False}  # short links and AMP
    # the home page: the newest 16 through short links and AMP variants, half each
    top = [h for s in spec.stories for h in s.links.get(edition, {}).get(HOME, [])
           if h.startswith("/p/") or h == s.amp_path]
    assert len(top) == 16
    assert len([h for h in top if h.startswith("/p/")]) == 8
    assert any(h.endswith("/amp/") for h in top) and any(h.endswith("?amp=1") for h in top)
    home_links = links[HOME]
    assert {spec.slashless_link, spec.tracking_link, spec.deleted_short_path, DISCONTINUED} <= set(home_links)
    linking = {page for page, targets in links.items() if spec.offsite_canonical_variant in targets}
    assert linking == ({HOME} if edition == 2 else set()), "the partner's copy: on the home page of edition 2"
    assert sum(1 for h in home_links if h.startswith("/tag/")) >= 3
    assert sum(1 for h in home_links if h.startswith("/section/") and h != DISCONTINUED) >= 2


def test_edition_2_puts_new_stories_first_and_drops_the_oldest(served, crawls):
    spec = served.spec
    _, links1 = crawls[1]
    _, links2 = crawls[2]
    def top(links: list[str]) -> list:
        return [s for h in links if (s := spec.story_for(h)) and h in (s.short_path, s.amp_path)]

    home1, home2 = top(links1[HOME]), top(links2[HOME])
    assert len(home1) == len(home2) == 16
    new_home = [s for s in spec.new_in(2) if s.new_route == "home"]
    assert set(home2[: len(new_home)]) == set(new_home)
    dropped = set(home1) - set(home2)
    assert len(dropped) == len(new_home)
    assert max(s.published for s in dropped) <= min(s.published for s in home2)
    for page, route in ((NEWS_SITEMAP, "news_sitemap"), (FEED, "feed")):
        listed = {spec.story_for(h) for h in links2[page]} - {None}
        new = {s for s in listed if s.edition == 2}
        assert new == {s for s in spec.new_in(2) if s.new_route == route}
        assert len(listed - new) >= 3  # and some old ones


def test_stories_are_distinct_articles_with_the_canonical_url(served):
    spec = served.edition(2).spec
    options = build_options()
    now = datetime.now(timezone.utc)
    hashes = {}

    def extract(path: str):
        answer = served.get(path)
        assert answer.status == 200
        return extract_page(answer.body.decode("utf-8"), served.base + path, options, min_chars=300, now=now)

    for story in spec.stories:
        canonical = fingerprints.canonicalize_url(served.base + story.path)
        for path in (story.path, story.amp_path):
            result = extract(path)
            assert result.reason == "article" and result.article is not None, (path, result.detail)
            assert result.article.canonical_url == canonical, path
        body = result.article.body
        hashes[story.path] = result.article.simhash
        assert "Tags:" not in body and "our partner's site" not in body, story.path
        truth = [fingerprints.normalize_body(p) for p in story.body.split("\n\n") if p.strip()]
        text = fingerprints.normalize_body(body)
        share = sum(len(p) for p in truth if p in text) / sum(len(p) for p in truth)
        assert share >= 0.8, (story.path, share)
        assert result.article.published_at is None or result.article.published_at <= NOT_AFTER
    for (a, ha), (b, hb) in itertools.combinations(hashes.items(), 2):
        assert fingerprints.hamming(ha, hb) > 10, (a, b)
    offsite = extract(spec.offsite_canonical_variant)
    assert offsite.reason == "article"
    own_url = fingerprints.canonicalize_url(served.base + spec.offsite_canonical_variant)
    assert offsite.article.canonical_url == own_url  # the off-site canonical is ignored
