"""``news-archive report``: the archive's status as one self-contained HTML file.

Plots are drawn by matplotlib (its object API, no pyplot state) as inline SVG, with their text as paths: the file
needs no script, font, stylesheet or network at view time, so it opens from an S3 console download as it is.
Sections: the health alerts, articles per day per site, yield per run per site with the flagged runs marked,
rejects by reason, duplicates by kind, body-length and date-coverage distributions, the sites and the runs.
"""

from __future__ import annotations

import html
import io
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: drawing only, whatever MPLBACKEND says
from matplotlib.figure import Figure  # noqa: E402 (after the backend is chosen)

from pipelines.status import RUN_HEADER, ArchiveOverview, run_row  # noqa: E402

#: sites drawn one by one in a plot (the most articles first, flagged sites always); the rest as "other sites"
MAX_SITES = 12
#: runs in the runs table
MAX_RUNS = 50
FLAG_COLOUR = "#d62728"
PLOTS = ("articles-per-day", "yield-per-run", "rejects-by-reason", "duplicates-by-kind", "body-length",
         "date-coverage")


def write_report(overview: ArchiveOverview, path: str | Path) -> None:
    """Write the report to ``path`` whole: a temporary file beside it, then renamed."""
    path = Path(path)
    text = render_report(overview)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def render_report(overview: ArchiveOverview) -> str:
    sites = _chosen_sites(overview)
    figures = {
        "articles-per-day": ("New articles per day, per site", _articles_per_day(overview, sites)),
        "yield-per-run": ("New articles per run, per site (flagged runs marked \u2716)", _yield_per_run(overview, sites)),
        "rejects-by-reason": ("Rejects by reason, last days", _counts_bar(overview.rejects, "reason", "rejects")),
        "duplicates-by-kind": ("Duplicates by kind, last days", _counts_bar(overview.duplicates, "kind", "duplicates")),
        "body-length": ("Body length of article rows, per site", _body_length(overview, sites)),
        "date-coverage": ("Publication date coverage of article rows, per site", _date_coverage(overview, sites)),
    }
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>news-archive report: {html.escape(overview.uri)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>news-archive report</h1><p class=\"meta\">{html.escape(overview.uri)} &middot; generated {generated}"
        f" &middot; per-day figures over the last {overview.days} days (UTC, through {overview.today})</p>",
        _alerts_section(overview),
    ]
    for plot_id, (caption, svg) in figures.items():
        parts.append(f"<figure id=\"{plot_id}\" class=\"plot\">{svg}<figcaption>{html.escape(caption)}"
                     f"</figcaption></figure>")
    parts += [_sites_table(overview), _runs_table(overview), "</body></html>\n"]
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:0}.meta{color:#666;margin-top:.3em}
figure.plot{margin:1.5em 0;border:1px solid #ddd;padding:.5em}figure.plot svg{width:100%;height:auto}
figcaption{font-weight:600;margin-top:.3em}
table{border-collapse:collapse;font-size:13px;margin:1em 0;width:100%}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 6px;text-align:right}th:first-child,td:first-child{text-align:left}
.alerts{border-left:4px solid #d62728;background:#fdf0f0;padding:.5em 1em}.ok{border-left:4px solid #2ca02c;
background:#f0f8f0;padding:.5em 1em}.flag{color:#d62728;font-weight:600}
"""


# --- the plots --------------------------------------------------------------------------------------------------


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # inline: no XML declaration or doctype


def _figure(height: float = 3.2) -> tuple[Figure, object]:
    figure = Figure(figsize=(10, height))
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _empty(axes, what: str) -> None:
    axes.text(0.5, 0.5, f"no {what} in the window", ha="center", va="center", transform=axes.transAxes, color="#777")
    axes.set_xticks([])
    axes.set_yticks([])


def _chosen_sites(overview: ArchiveOverview) -> list[str]:
    totals = Counter()
    for site, n in zip(overview.new_articles.column("domain").to_pylist(),
                       overview.new_articles.column("articles").to_pylist()):
        totals[site] += n
    flagged = sorted({alert.site for alert in overview.alerts})
    others = [site for site, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])) if site not in flagged]
    others += [site for site in sorted(overview.series) if site not in flagged and site not in others]
    return (flagged + others)[:max(MAX_SITES, len(flagged))]


def _articles_per_day(overview: ArchiveOverview, sites: list[str]) -> str:
    figure, axes = _figure()
    days = [overview.today - timedelta(days=n) for n in range(overview.days - 1, -1, -1)]
    counts: dict[str, Counter] = defaultdict(Counter)
    for site, day, n in zip(*(overview.new_articles.column(c).to_pylist() for c in ("domain", "day", "articles"))):
        counts[site if site in sites else "other sites"][day] += n
    if not counts:
        _empty(axes, "articles")
    for site in [s for s in sites if s in counts] + (["other sites"] if "other sites" in counts else []):
        axes.plot(days, [counts[site][day] for day in days], marker="o", markersize=3, label=site)
    if counts:
        axes.set_ylabel("new articles")
        axes.legend(fontsize=8, ncols=3, frameon=False)
        figure.autofmt_xdate()
    return _svg(figure)


def _yield_per_run(overview: ArchiveOverview, sites: list[str]) -> str:
    figure, axes = _figure(3.6)
    drawn = [site for site in sites if overview.series.get(site)]
    if not drawn:
        _empty(axes, "crawl runs with per-site counts")
    for site in drawn:
        runs = overview.series[site]
        when = [run.started_at for run in runs]
        line, = axes.plot(when, [run.new_articles for run in runs], marker="o", markersize=3, label=site)
        flagged = overview.flagged.get(site, {})
        marked = [run for run in runs if run.crawl_id in flagged]
        if marked:
            axes.scatter([run.started_at for run in marked], [run.new_articles for run in marked], marker="X", s=90,
                         color=FLAG_COLOUR, zorder=3)
            for run in marked:
                axes.annotate(", ".join(flagged[run.crawl_id]), (run.started_at, run.new_articles),
                              textcoords="offset points", xytext=(6, 6), fontsize=7, color=FLAG_COLOUR)
    if drawn:
        axes.set_ylabel("new articles per run")
        axes.legend(fontsize=8, ncols=3, frameon=False)
        figure.autofmt_xdate()
    return _svg(figure)


def _counts_bar(table, column: str, what: str) -> str:
    figure, axes = _figure(max(2.2, 0.32 * table.num_rows + 1))
    totals = Counter()
    for key, n in zip(table.column(column).to_pylist(), table.column("rows").to_pylist()):
        totals[key] += n
    if not totals:
        _empty(axes, what)
        return _svg(figure)
    keys = sorted(totals, key=lambda key: (totals[key], key))
    bars = axes.barh(keys, [totals[key] for key in keys], color="#4c72b0")
    axes.bar_label(bars, fontsize=8, padding=2)
    axes.set_xlabel(what)
    return _svg(figure)


def _body_length(overview: ArchiveOverview, sites: list[str]) -> str:
    figure, axes = _figure(max(2.4, 0.35 * len(sites) + 1))
    lengths: dict[str, list[int]] = defaultdict(list)
    for site, chars in zip(overview.articles.column("domain").to_pylist(),
                           overview.articles.column("body_chars").to_pylist()):
        if site in sites:
            lengths[site].append(chars)
    drawn = [site for site in reversed(sites) if lengths.get(site)]
    if not drawn:
        _empty(axes, "article rows")
        return _svg(figure)
    axes.boxplot([lengths[site] for site in drawn], orientation="horizontal", tick_labels=drawn, widths=0.6)
    axes.set_xlabel("body length (characters)")
    return _svg(figure)


def _date_coverage(overview: ArchiveOverview, sites: list[str]) -> str:
    figure, axes = _figure(max(2.4, 0.35 * len(sites) + 1))
    shares: dict[str, Counter] = defaultdict(Counter)
    columns = (overview.articles.column(c).to_pylist() for c in ("domain", "has_instant", "has_date"))
    for site, instant, day in zip(*columns):
        if site in sites:
            shares[site]["instant" if instant else "date only" if day else "none"] += 1
    drawn = [site for site in reversed(sites) if shares.get(site)]
    if not drawn:
        _empty(axes, "article rows")
        return _svg(figure)
    left = [0.0] * len(drawn)
    for kind, colour in (("instant", "#2ca02c"), ("date only", "#ffbf00"), ("none", "#d62728")):
        values = [shares[site][kind] / sum(shares[site].values()) for site in drawn]
        axes.barh(drawn, values, left=left, color=colour, label={"instant": "publication instant (UTC)",
                                                                  "date only": "date only", "none": "no date"}[kind])
        left = [a + b for a, b in zip(left, values)]
    axes.set_xlim(0, 1)
    axes.set_xlabel("share of article rows")
    axes.legend(fontsize=8, ncols=3, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return _svg(figure)


# --- the tables -------------------------------------------------------------------------------------------------


def _alerts_section(overview: ArchiveOverview) -> str:
    if not overview.alerts:
        return (f"<section id=\"alerts\" class=\"ok\"><h2>Health</h2><p>No site flagged ({len(overview.series)} "
                f"site(s) judged).</p></section>")
    items = "".join(f"<li><b>{html.escape(alert.site)}</b>: <span class=\"flag\">{alert.signal}</span>: "
                    f"{html.escape(alert.message)} (run {html.escape(alert.crawl_id)})</li>" for alert in overview.alerts)
    sites = len({alert.site for alert in overview.alerts})
    return (f"<section id=\"alerts\" class=\"alerts\"><h2>Health: {sites} site(s) flagged</h2><ul>{items}</ul>"
            f"</section>")


def _table(table_id: str, title: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<section id=\"{table_id}\"><h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table></section>"


def _sites_table(overview: ArchiveOverview) -> str:
    flagged = defaultdict(list)
    for alert in overview.alerts:
        flagged[alert.site].append(alert.signal)
    rows = []
    for site in sorted(overview.series):
        runs = overview.series[site]
        last = runs[-1]
        signals = ", ".join(flagged.get(site, []))
        rows.append([html.escape(site), str(len(runs)), str(last.new_articles), str(last.fetched),
                     str(last.failed), str(last.body_chars_median if last.body_chars_median is not None else "-"),
                     f"<span class=\"flag\">{html.escape(signals)}</span>" if signals else "ok"])
    return _table("sites", "Sites (their last crawl run)", ["site", "runs", "new articles", "pages fetched",
                                                             "failed", "median body", "health"], rows)


def _runs_table(overview: ArchiveOverview) -> str:
    rows = [[html.escape(cell) for cell in run_row(run)] for run in overview.runs[:MAX_RUNS]]
    return _table("runs", f"Runs (the last {len(rows)} of {len(overview.runs)} read)", RUN_HEADER, rows)


def plots_in(report_html: str) -> list[str]:
    """The ids of the plots a report holds, each a figure with an inline SVG (for tests and checks)."""
    return re.findall(r'<figure id="([a-z-]+)" class="plot"><svg', report_html)
