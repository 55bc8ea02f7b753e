"""The offline demo: ``python -m crawler.demo [--archive PATH]``.

Serves a small bundled news site ("The Harbor Gazette", a fictional local
paper; its files are in ``crawler/demo_site/``) on 127.0.0.1, crawls it with
``scrapy crawl news`` exactly as a scheduled run would, then queries the
archive it wrote with DuckDB: articles per domain, the articles, the
duplicates found, and the run's counts.

The site has six articles, a home page, a section page and an about page (not
articles: they are rejected), robots.txt with a sitemap and a disallowed
area, an RSS feed, links with tracking parameters (URL duplicates), an exact
copy of one article at a second URL and a syndicated near-copy of another.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from importlib.resources import files
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import crawler
from crawler.localsite import LocalSite, Page

SITE_FILES = files("crawler").joinpath("demo_site")
HTML_TYPE = "text/html; charset=utf-8"
COPY_DELAY_SECONDS = 1.0  # the copies are served this much later, so the originals are archived first


# --------------------------------------------------------------------------- the site's sources


@dataclass(kw_only=True, slots=True)
class DemoArticle:
    """One article of the sample site, read from ``demo_site/article-*.md``."""

    slug: str
    title: str
    authors: list[str]
    published: str  #: ISO 8601 with offset, as the page states it
    tags: list[str]
    description: str
    paragraphs: list[str]  #: plain text, one element per paragraph

    @property
    def published_at(self) -> datetime:
        return datetime.fromisoformat(self.published)

    @property
    def path(self) -> str:
        return f"/{self.published_at:%Y/%m/%d}/{self.slug}/"


def _read(name: str) -> str:
    return SITE_FILES.joinpath(name).read_text(encoding="utf-8")


def parse_source(text: str) -> tuple[dict[str, str], list[str]]:
    """A ``key: value`` header, a ``---`` line, then paragraphs separated by blank lines."""
    head, sep, body = text.partition("\n---\n")
    if not sep:
        raise ValueError("a demo page source needs a header, a '---' line and a body")
    fields = {}
    for line in head.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    paragraphs = [" ".join(block.split()) for block in body.split("\n\n") if block.strip()]
    return fields, paragraphs


def load_articles() -> list[DemoArticle]:
    """The site's distinct articles, oldest first."""
    articles = []
    for entry in SITE_FILES.iterdir():
        if entry.name.startswith("article-") and entry.name.endswith(".md"):
            fields, paragraphs = parse_source(entry.read_text(encoding="utf-8"))
            articles.append(DemoArticle(
                slug=fields["slug"],
                title=fields["title"],
                authors=[name.strip() for name in fields["authors"].split(",")],
                published=fields["published"],
                tags=[tag.strip() for tag in fields.get("tags", "").split(",") if tag.strip()],
                description=fields["description"],
                paragraphs=paragraphs,
            ))
    return sorted(articles, key=lambda article: article.published_at)


def load_site_config() -> dict:
    return json.loads(_read("site.json"))


# --------------------------------------------------------------------------- rendering


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _json_ld(data: dict) -> str:
    text = json.dumps(data, ensure_ascii=False, indent=1).replace("</", "<\\/")
    return f'<script type="application/ld+json">\n{text}\n</script>'


def _human_date(when: datetime) -> str:
    return f"{when:%B} {when.day}, {when.year}"


def _byline_names(authors: list[str]) -> str:
    names = [f'<span class="author vcard"><span class="fn">{_esc(name)}</span></span>' for name in authors]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class SiteRenderer:
    """Pages of the sample site for one base URL (sitemaps, feeds and canonical links are absolute)."""

    def __init__(self, base: str, config: dict, articles: list[DemoArticle]) -> None:
        self.base = base.rstrip("/")
        self.config = config
        self.articles = articles
        self.by_slug = {article.slug: article for article in articles}
        self.section = config["section"]

    def layout(self, *, page_title: str, og_title: str, description: str, og_type: str, head_extra: str,
               body_class: str, main: str) -> Page:
        nav = "\n".join(f'<li class="menu-item"><a href="{href}">{_esc(label)}</a></li>'
                        for href, label in self.config["nav"])
        recent = "\n".join(f'<li><a href="{a.path}">{_esc(a.title)}</a></li>'
                           for a in reversed(self.articles))
        text = _read("layout.html").format_map({
            "base": self.base, "page_title": _esc(page_title), "og_title": _esc(og_title),
            "description": _esc(description), "og_type": og_type, "head_extra": head_extra,
            "body_class": body_class, "main": main, "nav": nav, "recent": recent,
            "site_name": _esc(self.config["name"]), "tagline": _esc(self.config["tagline"]),
            "section_path": self.section["path"], "section_name": _esc(self.section["name"]),
        })
        return Page(body=text.encode("utf-8"), content_type=HTML_TYPE)

    def article_page(self, article: DemoArticle, *, path: str, canonical: bool = True, notice: str = "",
                     publisher: str | None = None, post_id: int) -> Page:
        """The article at ``path``; without ``canonical`` the page declares no canonical URL or og:url."""
        url = self.base + path
        head = []
        if canonical:
            head += [f'<link rel="canonical" href="{_esc(url)}">',
                     f'<meta property="og:url" content="{_esc(url)}">']
        head += [
            f'<meta name="author" content="{_esc(", ".join(article.authors))}">',
            f'<meta property="article:published_time" content="{article.published}">',
            f'<meta property="article:section" content="{_esc(self.section["name"])}">',
            *(f'<meta property="article:tag" content="{_esc(tag)}">' for tag in article.tags),
            _json_ld({
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "headline": article.title,
                "description": article.description,
                "author": [{"@type": "Person", "name": name} for name in article.authors],
                "datePublished": article.published,
                "dateModified": article.published,
                "articleSection": self.section["name"],
                "keywords": article.tags,
                "publisher": {"@type": "NewsMediaOrganization", "name": publisher or self.config["name"]},
                "mainEntityOfPage": {"@type": "WebPage", "@id": url},
            }),
        ]
        related = [other for other in self.articles if other is not article][-3:]
        main = _read("article.html").format_map({
            "post_id": post_id,
            "section_path": self.section["path"],
            "section_name": _esc(self.section["name"]),
            "title": _esc(article.title),
            "byline": _byline_names(article.authors),
            "published": article.published,
            "published_human": _human_date(article.published_at),
            "notice": notice,
            "paragraphs": "\n".join(f"<p>{_esc(p)}</p>" for p in article.paragraphs),
            "tags": ", ".join(f'<span class="tag">{_esc(tag)}</span>' for tag in article.tags),
            "related": "\n".join(
                f'<li class="jp-relatedposts-post"><a href="{other.path}">{_esc(other.title)}</a></li>'
                for other in related
            ),
        })
        return self.layout(
            page_title=f"{article.title} – {self.config['name']}", og_title=article.title,
            description=article.description, og_type="article", head_extra="\n".join(head),
            body_class=f"post-template-default single single-post postid-{post_id}", main=main,
        )

    def near_copy(self) -> tuple[str, DemoArticle, str]:
        """(path, article, agency) of the syndicated copy: a dateline with the agency, a few words
        changed, a credit sentence appended."""
        spec = self.config["near_copy"]
        original = self.by_slug[spec["of"]]
        text = "\n\n".join(original.paragraphs)
        for old, new in [spec["dateline"], *spec["changes"]]:
            if old not in text:
                raise ValueError(f"near_copy in site.json: {old!r} is not in the article {original.slug!r}")
            text = text.replace(old, new, 1)
        copy = DemoArticle(
            slug=original.slug, title=original.title, authors=original.authors, published=spec["published"],
            tags=original.tags, description=original.description,
            paragraphs=text.split("\n\n") + [spec["credit"]],
        )
        return spec["path"], copy, spec["agency"]

    def listing_item(self, article: DemoArticle, href: str | None = None) -> str:
        authors = " and ".join(article.authors)
        return (
            f'<article class="post-summary">\n<h2 class="entry-title"><a href="{_esc(href or article.path)}">'
            f"{_esc(article.title)}</a></h2>\n"
            f'<div class="entry-meta"><time datetime="{article.published}">'
            f"{_human_date(article.published_at)}</time> by {_esc(authors)}</div>\n"
            f'<p class="entry-summary">{_esc(article.description)}</p>\n</article>'
        )

    def listing_page(self, path: str, *, page_title: str, heading: str, intro: str, items: list[str],
                     extra: str = "", schema_type: str) -> Page:
        url = self.base + path
        head = "\n".join([
            f'<link rel="canonical" href="{_esc(url)}">',
            f'<meta property="og:url" content="{_esc(url)}">',
            _json_ld({"@context": "https://schema.org", "@type": schema_type, "name": page_title,
                      "url": url}),
        ])
        main = _read("listing.html").format_map(
            {"heading": _esc(heading), "intro": _esc(intro), "items": "\n".join(items), "extra": extra}
        )
        return self.layout(page_title=page_title, og_title=page_title, description=intro, og_type="website",
                           head_extra=head, body_class="home blog" if path == "/" else "archive category",
                           main=main)

    def about_page(self) -> Page:
        fields, paragraphs = parse_source(_read("about.md"))
        url = self.base + "/about/"
        head = "\n".join([
            f'<link rel="canonical" href="{_esc(url)}">',
            _json_ld({"@context": "https://schema.org", "@type": "AboutPage", "name": fields["title"],
                      "url": url}),
        ])
        main = _read("page.html").format_map(
            {"title": _esc(fields["title"]), "paragraphs": "\n".join(f"<p>{_esc(p)}</p>" for p in paragraphs)}
        )
        return self.layout(
            page_title=f"{fields['title']} – {self.config['name']}", og_title=fields["title"],
            description=fields["description"], og_type="website", head_extra=head,
            body_class="page-template-default page", main=main,
        )

    def rss(self, items: list[tuple[str, DemoArticle]]) -> Page:
        entries = []
        for number, (href, article) in enumerate(items):
            entries.append(
                f"<item>\n<title>{xml_escape(article.title)}</title>\n"
                f"<link>{xml_escape(self.base + href)}</link>\n"
                f"<dc:creator><![CDATA[{', '.join(article.authors)}]]></dc:creator>\n"
                f"<pubDate>{format_datetime(article.published_at)}</pubDate>\n"
                f"<category><![CDATA[{self.section['name']}]]></category>\n"
                f'<guid isPermaLink="false">{xml_escape(self.base)}/?p={101 + number}</guid>\n'
                f"<description>{xml_escape(article.description)}</description>\n</item>"
            )
        built = max(article.published_at for _, article in items)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
            f"<title>{xml_escape(self.config['name'])}</title>\n"
            f'<atom:link href="{xml_escape(self.base)}/feed/" rel="self" type="application/rss+xml"/>\n'
            f"<link>{xml_escape(self.base)}/</link>\n"
            f"<description>{xml_escape(self.config['tagline'])}</description>\n"
            f"<lastBuildDate>{format_datetime(built)}</lastBuildDate>\n<language>en-US</language>\n"
            + "\n".join(entries) + "\n</channel>\n</rss>\n"
        )
        return Page(body=body.encode("utf-8"), content_type="application/rss+xml; charset=utf-8")

    def sitemap(self, entries: list[tuple[str, str | None]]) -> Page:
        urls = "\n".join(
            f"<url><loc>{xml_escape(self.base + path)}</loc>"
            + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + "</url>"
            for path, lastmod in entries
        )
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}\n</urlset>\n')
        return Page(body=body.encode("utf-8"), content_type="application/xml; charset=utf-8")


@dataclass(kw_only=True, slots=True)
class DemoSite:
    pages: dict[str, Page]  #: path with query -> page, for LocalSite.pages
    articles: list[DemoArticle]  #: the distinct articles
    copies: list[str]  #: paths of the exact and the near copy


def build_site(base: str) -> DemoSite:
    """Every page of the sample site, its absolute URLs made from ``base``."""
    config = load_site_config()
    articles = load_articles()
    site = SiteRenderer(base, config, articles)
    pages: dict[str, Page] = {}
    for number, article in enumerate(articles):
        pages[article.path] = site.article_page(article, path=article.path, post_id=101 + number)

    def tracked(article: DemoArticle, query: str | None) -> str:
        """A link to ``article``, with tracking parameters when given (served the same page, as a real
        server ignores them)."""
        if not query:
            return article.path
        pages[f"{article.path}?{query}"] = pages[article.path]
        return f"{article.path}?{query}"

    # exact copy: the same article, byte for byte apart from declaring no canonical URL
    exact = config["exact_copy"]
    exact_of = site.by_slug[exact["of"]]
    pages[exact["path"]] = site.article_page(exact_of, path=exact["path"], canonical=False,
                                             post_id=101 + articles.index(exact_of))
    # near copy: the wire service's version of another article
    near_path, near_article, agency = site.near_copy()
    notice = f'<p class="wire-notice">{_esc(config["near_copy"]["label"])}: {_esc(agency)}</p>'
    pages[near_path] = site.article_page(near_article, path=near_path, notice=notice, publisher=agency,
                                         post_id=900)

    # Every copy is linked from the home page, a start URL: the spider follows the links of a page reached
    # from a sitemap or feed no further, and the section page may be reached from the sitemap first.
    newest_first = list(reversed(articles))
    home_tracking = config["tracking_links"]["home"]
    private_href, private_label = config["private_link"]
    wire_block = (
        f'<section class="wire-stories"><h2>{_esc(config["near_copy"]["label"])}</h2><ul>'
        f'<li><a href="{near_path}">{_esc(near_article.title)}</a> ({_esc(agency)})</li></ul></section>'
    )
    home_extra = (
        f'<section class="weekend-edition"><h2>{_esc(exact["label"])}</h2><ul>'
        f'<li><a href="{exact["path"]}">{_esc(exact_of.title)}</a></li></ul></section>\n{wire_block}\n'
        f'<section class="staff-area"><h2>Newsroom</h2><ul>'
        f'<li><a href="{private_href}">{_esc(private_label)}</a></li></ul></section>'
    )
    pages["/"] = site.listing_page(
        "/", page_title=config["home_title"], heading="Top stories", intro=config["home_description"],
        items=[site.listing_item(a, tracked(a, home_tracking.get(a.slug))) for a in newest_first],
        extra=home_extra, schema_type="WebSite",
    )
    section = config["section"]
    pages[section["path"]] = site.listing_page(
        section["path"], page_title=f"{section['name']} – {config['name']}", heading=section["name"],
        intro=section["description"], items=[site.listing_item(a) for a in newest_first], extra=wire_block,
        schema_type="CollectionPage",
    )
    pages["/about/"] = site.about_page()

    feed_tracking = config["tracking_links"]["feed"]
    feed_items = [(tracked(a, feed_tracking.get(a.slug)), a) for a in newest_first[: config["feed_items"]]]
    pages["/feed/"] = site.rss(feed_items)
    sitemap_entries = [(a.path, a.published) for a in newest_first]
    latest = newest_first[0].published
    sitemap_entries += [("/", latest), (section["path"], latest), ("/about/", None)]
    pages["/sitemap.xml"] = site.sitemap(sitemap_entries)
    pages["/robots.txt"] = Page(body=_read("robots.txt").format_map({"base": site.base}).encode("utf-8"),
                                content_type="text/plain; charset=utf-8")
    pages["/wp-content/themes/harbor/style.css"] = Page(body=_read("style.css").encode("utf-8"),
                                                        content_type="text/css; charset=utf-8")
    return DemoSite(pages=pages, articles=articles, copies=[exact["path"], near_path])


class CopiesServedLate(dict):
    """``LocalSite.pages`` that answers a few paths ``delay`` seconds late.

    The crawl fetches concurrently, so either an original or its copy could be
    archived first; serving the copies late makes the demo print the same
    thing every run (the originals as articles, the copies as duplicates).
    """

    def __init__(self, pages: dict[str, Page], late_paths: list[str], delay: float) -> None:
        super().__init__(pages)
        self.late_paths = frozenset(late_paths)
        self.delay = delay

    def get(self, path, default=None):
        if path in self.late_paths:
            time.sleep(self.delay)
        return super().get(path, default)


# --------------------------------------------------------------------------- the crawl


def repo_root() -> Path | None:
    """The folder holding scrapy.cfg next to the ``crawler`` package (a source checkout), if any."""
    root = Path(crawler.__file__).resolve().parent.parent
    return root if (root / "scrapy.cfg").is_file() else None


def crawl_command(base: str, archive: Path) -> list[str]:
    return [
        sys.executable, "-m", "scrapy", "crawl", "news",
        "-a", f"start_urls={base}/,{base}/feed/,{base}/robots.txt",
        "-s", f"ARCHIVE_URI={archive}",
        "-s", "DOWNLOAD_DELAY=0",
        "-s", "AUTOTHROTTLE_ENABLED=False",
        "-s", "ALLOW_PRIVATE_NETWORKS=127.0.0.0/8",  # the demo site is on loopback...
        "-s", "CRAWL_ALLOWED_NETWORKS=127.0.0.0/8",  # ...and nothing else may be reached
        "-s", "LOG_LEVEL=WARNING",
    ]


def run_crawl(base: str, archive: Path) -> int:
    env = dict(os.environ)
    env.setdefault("CRAWL_CONTACT", "https://example.invalid/news-archive-demo")
    root = repo_root()
    if root is None:  # an installed package: no scrapy.cfg to find the settings by
        env["SCRAPY_SETTINGS_MODULE"] = "crawler.settings"
    return subprocess.run(crawl_command(base, archive), cwd=root or Path.cwd(), env=env).returncode


# --------------------------------------------------------------------------- the report


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def format_table(columns: list[str], rows: list[tuple], max_width: int = 60) -> str:
    """Rows as an aligned text table; cells longer than ``max_width`` are cut with an ellipsis."""
    cells = [[_cell(v) for v in row] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(row) for row in cells]
    if not rows:
        out.append("(no rows)")
    return "\n".join(out)


def _query(con, sql: str, *, max_width: int = 60, shorten: str | None = None) -> str:
    result = con.execute(sql)
    columns = [d[0] for d in result.description]
    rows = result.fetchall()
    if shorten:
        rows = [tuple(v.removeprefix(shorten) if isinstance(v, str) else v for v in row) for row in rows]
    return format_table(columns, rows, max_width=max_width)


def _print_section(title: str, sql: str | None = None) -> None:
    print(f"\n== {title} ==")
    if sql:
        print("\n" + "\n".join("  " + line for line in sql.splitlines()) + "\n")


def _format_counts(counts: dict) -> str:
    width = max(len(key) for key in counts)
    lines = []
    for key, value in counts.items():
        if isinstance(value, dict):
            value = "  ".join(f"{k}={v}" for k, v in value.items()) or "-"
        lines.append(f"  {key.ljust(width)}  {value}")
    return "\n".join(lines)


def duckdb_with_delta():
    """A DuckDB connection with the ``delta`` extension loaded from the ``duckdb-extension-delta`` package (DuckDB
    cannot download it without internet)."""
    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect()
    extension = (Path(duckdb_extension_delta.__file__).parent / "extensions" / f"v{duckdb.__version__}"
                 / "delta.duckdb_extension")
    con.execute(f"LOAD {_sql_string(extension.as_posix())}")
    return con


def report(archive: Path, base: str) -> None:
    """Print what the crawl archived, querying the Delta tables with DuckDB's delta_scan."""

    manifests = sorted((archive / "runs").glob("*.json"))
    if not manifests:
        raise SystemExit(f"no run manifest in {archive / 'runs'}: the archive was not completely written")
    manifest = json.loads(manifests[-1].read_text(encoding="utf-8"))
    crawl_id = manifest["crawl_id"]
    con = duckdb_with_delta()
    con.execute("SET TimeZone = 'UTC'")

    def source(dataset: str) -> str:
        return f"delta_scan({_sql_string((archive / dataset).as_posix())})"

    if len(manifests) > 1:
        print(f"\nNote: {archive} holds {len(manifests)} runs; the first query covers them all, "
              f"the others only this run ({crawl_id}). Use a fresh --archive folder for a clean demo.")

    sql = ("SELECT domain, count(*) AS articles, min(published_at), max(published_at) "
           f"FROM {source('articles')} GROUP BY ALL")
    _print_section("Articles per domain", sql)
    print(_query(con, sql))

    sql = (f"SELECT title, authors, published_at\nFROM {source('articles')}\n"
           f"WHERE crawl_id = {_sql_string(crawl_id)}\nORDER BY published_at")
    _print_section("Articles archived by this run", sql)
    print(_query(con, sql, max_width=90))

    sql = (f"SELECT url, kind, distance, duplicate_of_url\nFROM {source('duplicates')}\n"
           f"WHERE crawl_id = {_sql_string(crawl_id)}\nORDER BY kind, url")
    _print_section("Duplicates found by this run", sql)
    if any((archive / "duplicates" / "_delta_log").glob("*.json")):
        print(f"(URLs shown relative to {base})")
        print(_query(con, sql, max_width=110, shorten=base))
    else:
        print("(no duplicates dataset was written)")

    _print_section(f"Counts from the run manifest {manifests[-1].relative_to(archive).as_posix()} "
                   f"(status: {manifest['status']})")
    print(_format_counts(manifest["counts"]))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.demo",
        description="Crawl a bundled sample news site on 127.0.0.1 into a local archive, then query it.",
    )
    parser.add_argument("--archive", default="archive",
                        help="folder to write the archive to (default: ./archive)")
    parser.add_argument("--keep-serving", action="store_true",
                        help="keep serving the sample site after the report, until Ctrl-C")
    args = parser.parse_args(argv)
    archive = Path(args.archive).expanduser().resolve()

    server = LocalSite()
    base = server.start()
    try:
        demo = build_site(base)
        server.pages = CopiesServedLate(demo.pages, demo.copies, COPY_DELAY_SECONDS)
        config = load_site_config()
        print(f"Serving the sample site \"{config['name']}\" at {base}/ "
              f"({len(demo.articles)} articles, {len(demo.pages)} URLs)")
        print(f"Crawling it into {archive} ...", flush=True)
        started = time.monotonic()
        code = run_crawl(base, archive)
        if code != 0:
            print(f"The crawl failed (exit code {code}); see the messages above.", file=sys.stderr)
            return code
        print(f"Crawl finished in {time.monotonic() - started:.1f} s.")
        report(archive, base)
        if args.keep_serving:
            print(f"\nStill serving {base}/ -- open it in a browser; press Ctrl-C to stop.", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
