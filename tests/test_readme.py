"""The README's settings table says what crawler/settings.py does: every default it quotes, every setting it names."""

from __future__ import annotations

import re

import pytest

from conftest import REPO
from crawler import settings

README = (REPO / "README.md").read_text(encoding="utf-8")
#: defaults the table describes in words, not as the value: (setting, the words)
DESCRIBED = {
    "ARCHIVE_URI": "`./archive` (env `ARCHIVE_URI`)",
    "ARCHIVE_SPOOL_DIR": "`<archive>/_spool`",
    "ARCHIVE_S3_ENDPOINT_URL": "boto3's",
    "ARCHIVE_S3_REGION": "boto3's",
    "ARCHIVE_S3_ADDRESSING_STYLE": "`auto`",
    "ARCHIVE_S3_STORAGE_CLASS": "none",
    "ARCHIVE_S3_SSE": "none",
    "ARCHIVE_S3_SSE_KMS_KEY_ID": "none",
    "EXTRACT_PUBLISHED_SINCE": "none",
    "EXTRACT_PUBLISHED_UNTIL": "none",
    "ARCHIVE_CRAWL_ID": "made at start",
    "EXTRACT_WORKERS": "one per usable CPU",
    "CRAWL_SHARD": "none (env `CRAWL_SHARD`)",
    "CRAWL_SHARDS": "none (env)",
    "JOB_COMPLETION_INDEX": "none (env)",
    "CRAWL_FRONTIER_DIR": "system temp folder",
    "CRAWL_CONTACT": "env `CRAWL_CONTACT`",
    "CRAWL_ALLOWED_NETWORKS": "empty (no restriction)",
}


def table_rows() -> list[tuple[list[str], str]]:
    section = README.split("### Settings", 1)[1].split("\n\n", 2)[2]
    rows = []
    for line in section.split("\n\n", 1)[0].splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        names = [name.replace("AUTOTHROTTLE_*", "AUTOTHROTTLE_ENABLED") for name in re.findall(r"`([A-Z0-9_*]+)`", cells[0])]
        rows.append((names, cells[1]))
    return rows


def spellings(value) -> set[str]:
    """How the README may write ``value``."""
    if isinstance(value, bool):
        return {f"`{value}`", "on" if value else "off"}
    if isinstance(value, int):
        forms = {str(value), f"{value:,}".replace(",", " "), f"{value} s"}
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value and value % size == 0:
                forms.add(f"{value // size} {unit}")
        return forms
    if isinstance(value, float):
        return {f"{value:g} s", f"{value:g}"}
    return {f"`{value}`"}


ROWS = table_rows()


@pytest.mark.parametrize(("names", "cell"), ROWS, ids=[",".join(names) for names, _ in ROWS])
def test_each_default_in_the_settings_table_is_the_one_in_settings_py(names, cell):
    parts = [part.strip() for part in re.split(r" / |, (?![^()]*\))", cell)]
    if len(parts) != len(names):
        parts = [cell] * len(names)
    for name, part in zip(names, parts):
        assert hasattr(settings, name), f"{name} is in the README's table but not in crawler/settings.py"
        if name in DESCRIBED:
            assert part.startswith(DESCRIBED[name]), (name, part)
            continue
        value = getattr(settings, name)
        assert any(part == form or part.startswith(form + " ") for form in spellings(value)), (name, value, part)


def test_every_setting_of_the_project_is_in_the_table():
    named = {name for names, _ in ROWS for name in names}
    ours = {name for name in vars(settings) if name.startswith(("ARCHIVE_", "EXTRACT_", "DEDUP_", "CRAWL_", "MEMORY_",
                                                                      "PROGRESS_", "HEALTH_"))}
    assert ours - named == set()


def test_every_sql_query_in_the_readme_runs_on_an_archive_and_gives_what_the_table_holds(tmp_path, monkeypatch):
    """The README's queries, run as written from the folder that holds ``archive/`` (the fixture of
    tests/data, converted), against what deltalake reads from the same tables."""
    import shutil
    from collections import Counter

    from deltalake import DeltaTable

    from pipelines.archive import open_tables
    from pipelines.storage import LocalStore
    from test_readers import duckdb_with_delta

    shutil.copytree(REPO / "tests" / "data" / "archive-before-delta", tmp_path / "archive",
                    ignore=shutil.ignore_patterns("README.md"))
    open_tables(LocalStore(tmp_path / "archive"))
    monkeypatch.chdir(tmp_path)
    blocks = [block.strip() for block in re.findall(r"^```sql\n(.*?)^```", README, flags=re.S | re.M)]
    assert blocks, "the README shows SQL"
    connection = duckdb_with_delta()
    rows = DeltaTable("archive/articles").to_pyarrow_table().to_pylist()
    keyword_days = Counter((r["sitemap_news_published_date"], k) for r in rows for k in r["sitemap_news_keywords"] or ())
    paywalled = Counter((r["sitemap_news_published_date"], k) for r in rows for k in r["sitemap_news_keywords"] or ()
                        if r["is_accessible_for_free"] is False)
    expected = {"articles per domain (an article counted once, however many versions of it were captured)":
                sorted(Counter(domain for domain, _ in {(r["domain"], r["article_id"]) for r in rows}).items()),
                # (an archive written before the columns: nulls there, so no row; tests/test_publisher_metadata.py
                # runs it on a crawl that has them)
                "articles per Google News keyword per day, and how many of them are paywalled":
                sorted((day, keyword, n, paywalled[day, keyword]) for (day, keyword), n in keyword_days.items())}
    for block in blocks:
        title = block.splitlines()[0].removeprefix("-- ")
        assert title in expected, f"no expectation for the README query {title!r}"
        assert connection.sql(block).fetchall() == expected[title]


def _project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports (at any level of the file, function-local imports included)."""
    import ast

    modules = {}
    for package in ("crawler", "pipelines", "schemas"):
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_pipelines_import_nothing_of_the_crawler_and_no_module_imports_itself_back():
    graph = _project_imports()
    assert {m: sorted(i for i in imports if i.startswith("crawler")) for m, imports in graph.items()
            if m.startswith("pipelines") and any(i.startswith("crawler") for i in imports)} == {}
    cycles = []

    def visit(module, path):
        for imported in graph[module]:
            if imported == path[0]:
                cycles.append(path + [imported])
            elif imported not in path and len(path) < 12:
                visit(imported, path + [imported])

    for module in graph:
        visit(module, [module])
    assert cycles == []
