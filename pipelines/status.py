"""What ``news-archive status`` and the report show: the tables, the last runs, articles per site per day, and the
sites health flags. Reading only: a missing table is shown as missing, never created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from pipelines.health import Alert, HealthSettings, archive_alerts, flagged_runs, site_series
from pipelines.runs import RunSummary, load_runs
from pipelines.table import PARTITION, add_actions
from schemas import DATASETS


@dataclass(frozen=True, slots=True)
class TableInfo:
    dataset: str
    version: int | None  #: None: no table yet
    files: int = 0
    rows: int = 0
    bytes: int = 0
    partitions: int = 0


@dataclass(kw_only=True, slots=True)
class ArchiveOverview:
    uri: str
    today: date
    days: int  #: the window of the per-day figures
    tables: list[TableInfo]
    runs: list[RunSummary]  #: newest first
    new_articles: pa.Table  #: domain, day (date32), articles: articles first archived per site per day
    articles: pa.Table  #: domain, day, body_chars, has_title, has_authors, date_kind: the window's article rows
    rejects: pa.Table  #: domain, reason, rows: the window's rejects
    duplicates: pa.Table  #: domain, kind, rows: the window's duplicates
    alerts: list[Alert] = field(default_factory=list)
    flagged: dict[str, dict[str, list[str]]] = field(default_factory=dict)  #: site -> crawl_id -> signals
    series: dict = field(default_factory=dict)  #: site -> its SiteRun list (pipelines/health.py)

    @property
    def sites(self) -> list[str]:
        names = set(self.new_articles.column("domain").to_pylist()) | set(self.series)
        return sorted(names)


def open_table(store, dataset: str) -> DeltaTable | None:
    uri, options = store.table_location(dataset)
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None


def table_info(dataset: str, table: DeltaTable | None) -> TableInfo:
    if table is None:
        return TableInfo(dataset=dataset, version=None)
    actions = add_actions(table)
    partitions = len(set(actions.column(f"partition.{PARTITION}").to_pylist())) if actions.num_rows else 0
    return TableInfo(dataset=dataset, version=table.version(), files=actions.num_rows,
                     rows=int(pc.sum(actions.column("num_records")).as_py() or 0) if actions.num_rows else 0,
                     bytes=int(pc.sum(actions.column("size_bytes")).as_py() or 0) if actions.num_rows else 0,
                     partitions=partitions)


def _window_rows(table: DeltaTable | None, since: date, columns: dict, empty: pa.Schema) -> pa.Table:
    """The rows of the partitions from ``since`` on, as the projected ``columns``."""
    if table is None:
        return empty.empty_table()
    dataset = table.to_pyarrow_dataset()
    return dataset.to_table(columns=columns, filter=pc.field(PARTITION) >= since.isoformat())


ARTICLE_COLUMNS = pa.schema([("domain", pa.string()), ("article_id", pa.string()), ("version", pa.int32()),
                             ("first_seen", pa.timestamp("us", tz="UTC")), ("body_chars", pa.int32()),
                             ("has_title", pa.bool_()), ("has_authors", pa.bool_()), ("has_instant", pa.bool_()),
                             ("has_date", pa.bool_())])


def read_overview(store, *, uri: str, days: int = 14, health: HealthSettings | None = None, runs_read: int = 200,
                  today: date | None = None) -> ArchiveOverview:
    today = today or datetime.now(timezone.utc).date()
    since = today - timedelta(days=days - 1)
    tables = {dataset: open_table(store, dataset) for dataset in DATASETS}
    field_ = pc.field
    articles = _window_rows(tables.get("articles"), since, {
        "domain": field_("domain"), "article_id": field_("article_id"), "version": field_("version"),
        "first_seen": field_("first_seen_at"), "body_chars": pc.utf8_length(field_("body")),
        "has_title": pc.coalesce(pc.greater(pc.utf8_length(field_("title")), 0), pa.scalar(False)),
        "has_authors": pc.greater(pc.list_value_length(field_("authors")), 0),
        "has_instant": pc.is_valid(field_("published_at")), "has_date": pc.is_valid(field_("published_date")),
    }, ARTICLE_COLUMNS)
    first = articles.filter(pc.equal(articles.column("version"), 1))
    first = first.append_column("day", pc.cast(first.column("first_seen"), pa.date32()))
    first = first.filter(pc.greater_equal(first.column("day"), pa.scalar(since, pa.date32())))
    new_articles = (first.group_by(["domain", "day"]).aggregate([("article_id", "count_distinct")])
                    .rename_columns(["domain", "day", "articles"]) if first.num_rows else
                    pa.table({"domain": pa.array([], pa.string()), "day": pa.array([], pa.date32()),
                              "articles": pa.array([], pa.int64())}))
    rejects = _counted(tables.get("rejects"), since, "reason")
    duplicates = _counted(tables.get("duplicates"), since, "kind")
    runs = load_runs(store, limit=runs_read)
    overview = ArchiveOverview(uri=uri, today=today, days=days,
                               tables=[table_info(dataset, table) for dataset, table in tables.items()],
                               runs=runs, new_articles=new_articles, articles=articles, rejects=rejects,
                               duplicates=duplicates)
    health = health or HealthSettings()
    overview.series = site_series(runs)
    overview.alerts = archive_alerts(runs, health)
    overview.flagged = {site: flagged_runs(series, health) for site, series in overview.series.items()}
    return overview


def _counted(table: DeltaTable | None, since: date, column: str) -> pa.Table:
    rows = _window_rows(table, since, {"domain": pc.field("domain"), column: pc.field(column)},
                        pa.schema([("domain", pa.string()), (column, pa.string())]))
    if not rows.num_rows:
        return pa.table({"domain": pa.array([], pa.string()), column: pa.array([], pa.string()),
                         "rows": pa.array([], pa.int64())})
    return rows.group_by(["domain", column]).aggregate([(column, "count")]).rename_columns(["domain", column, "rows"])


# --- the text of news-archive status ------------------------------------------------------------------------


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                       for i, (cell, width) in enumerate(zip(line, widths))).rstrip()
             for line in [header, *rows]]
    return ["  " + line for line in lines]


def run_row(run: RunSummary) -> list[str]:
    counts = run.counts
    seconds = run.seconds
    return [run.crawl_id, run.job, run.status,
            run.started_at.strftime("%Y-%m-%d %H:%M") if run.started_at else "?",
            f"{seconds:.0f}s" if seconds is not None else "?",
            str(counts.get("pages_fetched", 0)), str(counts.get("new_articles", counts.get("articles_written", 0))),
            str(counts.get("duplicates_written", 0)), str(counts.get("rejects_written", 0))]


RUN_HEADER = ["run", "job", "status", "started (UTC)", "took", "fetched", "new articles", "duplicates", "rejects"]


def render_status(overview: ArchiveOverview, *, last_runs: int = 10) -> str:
    lines = [f"archive {overview.uri}", "", "tables:"]
    lines += _grid(["table", "version", "files", "rows", "size", "partitions"],
                   [[t.dataset, "none" if t.version is None else str(t.version), str(t.files), str(t.rows),
                     _size(t.bytes), str(t.partitions)] for t in overview.tables])
    lines += ["", f"last runs ({min(last_runs, len(overview.runs))} of {len(overview.runs)} read):"]
    lines += _grid(RUN_HEADER, [run_row(run) for run in overview.runs[:last_runs]]) if overview.runs else ["  none"]
    days = [overview.today - timedelta(days=n) for n in range(min(overview.days, 7) - 1, -1, -1)]
    lines += ["", f"new articles per site, last {len(days)} days (UTC):"]
    counts = {(d, day): n for d, day, n in zip(*(overview.new_articles.column(c).to_pylist()
                                                 for c in ("domain", "day", "articles")))}
    sites = overview.sites
    lines += _grid(["site", *[f"{day:%m-%d}" for day in days], "total"],
                   [[site, *[str(counts.get((site, day), 0)) for day in days],
                     str(sum(counts.get((site, day), 0) for day in days))] for site in sites]) if sites else ["  none"]
    lines += ["", f"health: {len(overview.alerts)} alert(s) over {len(overview.series)} site(s)"]
    lines += [f"  ALERT {alert.line()} (run {alert.crawl_id})" for alert in overview.alerts]
    return "\n".join(lines) + "\n"
