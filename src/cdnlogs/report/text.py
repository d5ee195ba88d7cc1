"""The terminal report: rich tables built from an ``analyze.Report``.

Keys in the top tables (URLs, user agents, referers) come straight from the logs, so they are
hostile input: they go into ``rich.text.Text`` (never parsed as markup) after control
characters are made visible, so an escape sequence in a user agent cannot drive the terminal.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cdnlogs.analyze import Report, TopItem
from cdnlogs.report import (
    TOP_TITLES,
    Panel,
    client_panels,
    empty_message,
    fmt_bytes,
    fmt_int,
    fmt_key,
    fmt_mbps,
    fmt_ratio,
    fmt_time,
    summary_rows,
    visible,
    window_text,
)

#: The terminal shows at most this many of the most recent hours; --json and --html show all.
MAX_TEXT_HOURS = 48


def render_text(report: Report, console: Console) -> None:
    """Print the whole report to ``console``."""
    console.print(Text(f"cdnlogs report: {visible(window_text(report))}", style="bold"))
    if report.empty:
        console.print(Text(visible(empty_message(report))))
        if report.totals.rejected_lines:
            console.print(Text(f"Rejected lines: {fmt_int(report.totals.rejected_lines)}"))
        return
    for table in build_tables(report):
        console.print(table)


def build_tables(report: Report) -> list[Table]:
    """Every table of the terminal report, in print order."""
    tables = [_summary(report), _status(report), _errors(report), _domains(report)]
    tables.extend(_top(report, name) for name in TOP_TITLES)
    tables.extend(_panel(panel) for panel in client_panels(report))
    tables.append(_hours(report))
    return tables


def _panel(panel: Panel) -> Table:
    table = _table(panel.title, *panel.headers, numeric_from=panel.key_columns)
    table.columns[0].overflow = "ellipsis"
    table.columns[0].max_width = 70
    for row in panel.rows:
        key, *rest = row
        table.add_row(Text(key, no_wrap=True), *rest)
    return table


def _table(title: str, *headers: str, numeric_from: int = 1) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i >= numeric_from else "left")
    return table


def _summary(report: Report) -> Table:
    table = _table("Summary", "", "value")
    for label, value in summary_rows(report):
        table.add_row(label, value)
    return table


def _status(report: Report) -> Table:
    table = _table("Status classes", "class", "requests", "share")
    for cls in report.status_classes:
        if cls.requests:
            table.add_row(cls.label, fmt_int(cls.requests), fmt_ratio(cls.share))
    return table


def _errors(report: Report) -> Table:
    table = _table("Top error codes", "status", "requests", "share")
    for err in report.top_errors:
        table.add_row(str(err.status), fmt_int(err.requests), fmt_ratio(err.share))
    return table


def _domains(report: Report) -> Table:
    table = _table(
        "Per domain",
        "domain",
        "requests",
        "bytes",
        "clients",
        "hit (req)",
        "hit (bytes)",
        "errors",
        "rejected",
    )
    for d in report.domains:
        table.add_row(
            Text(visible(d.domain)),
            fmt_int(d.requests),
            fmt_bytes(d.bytes),
            fmt_int(d.unique_clients),
            fmt_ratio(d.hit_ratio_requests),
            fmt_ratio(d.hit_ratio_bytes),
            fmt_ratio(d.error_rate),
            fmt_int(d.rejected_lines),
        )
    return table


def _top(report: Report, name: str) -> Table:
    title, key_header = TOP_TITLES[name]
    table = _table(title, key_header, "requests", "bytes")
    items: list[TopItem] = report.tops.get(name, [])
    # Long URLs and user agents are cut with an ellipsis rather than wrapped over many lines.
    table.columns[0].overflow = "ellipsis"
    table.columns[0].max_width = 70
    for item in items:
        table.add_row(
            Text(fmt_key(item.key), no_wrap=True),
            fmt_int(item.requests),
            fmt_bytes(item.bytes),
        )
    return table


def _hours(report: Report) -> Table:
    shown = report.hours[-MAX_TEXT_HOURS:]
    title = "Per hour (UTC)"
    if len(shown) < len(report.hours):
        title += f": the last {len(shown)} of {len(report.hours)} hours (--json/--html: all)"
    table = _table(title, "hour", "requests", "bytes", "avg Mbps", "peak Mbps", "error rate")
    for h in shown:
        table.add_row(
            fmt_time(h.hour),
            fmt_int(h.requests),
            fmt_bytes(h.bytes),
            fmt_mbps(h.avg_mbps),
            fmt_mbps(h.peak_mbps),
            fmt_ratio(h.error_rate),
        )
    return table
