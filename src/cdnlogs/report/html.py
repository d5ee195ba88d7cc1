"""The HTML report: one self-contained file with Plotly charts and plain HTML tables.

The file works offline and asks for nothing over the network: plotly.js is inlined, fonts are
the system's, and a Content-Security-Policy forbids every fetch, so even a mistake could not
make the page phone home. Log values (URLs, user agents, referers) are hostile input: they
appear only in HTML tables, escaped, and never in chart labels, where plotly.js would
interpret its pseudo-HTML (``<a href>``, ``<b>``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from cdnlogs.__about__ import __version__
from cdnlogs.analyze import Report
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

#: No fetch, frame, font or connection; inline script and style only (plotly needs both).
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem;
       color: #222; background: #fff; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
.sub { color: #555; margin-top: 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1rem; }
.chart { min-height: 340px; border: 1px solid #e3e3e3; border-radius: 6px; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.key, th.key { text-align: left; max-width: 60ch;
       overflow-wrap: anywhere; font-family: ui-monospace, monospace; }
.empty { padding: 1rem; background: #fff6e0; border: 1px solid #f0d48a; border-radius: 6px; }
"""


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    title = f"cdnlogs report: {window_text(report)}"
    parts = [f"<h1>cdnlogs report</h1><p class='sub'>{escape(window_text(report))}</p>"]
    if report.empty:
        parts.append(f"<p class='empty' id='empty'>{escape(empty_message(report))}</p>")
    parts.append(_table("Summary", ("", "value"), summary_rows(report), table_id="summary"))
    if not report.empty:
        parts.append(_charts(report))
        parts.append(_status_table(report))
        parts.append(_error_table(report))
        parts.append(_domain_table(report))
        parts.extend(_top_table(report, name) for name in TOP_TITLES)
        parts.extend(_panel_table(panel) for panel in client_panels(report))
        parts.append(_hour_table(report))
    # The numbers, machine-readable, for anyone who wants to check or reuse them. "<" is
    # escaped so no log value can close the script element.
    data = json.dumps(report.to_dict(), ensure_ascii=False, sort_keys=True)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            f"<meta name='generator' content='cdnlogs {escape(__version__)}'>",
            f"<title>{escape(title)}</title><style>{_CSS}</style>",
            # plotly.js (about 4.6 MB) inlined once, in the head, so every chart's inline
            # script finds it and the page needs nothing from the network.
            "" if report.empty else f"<script>{_plotly_js()}</script>",
            "</head><body>",
            *parts,
            f'<script type="application/json" id="cdnlogs-report">{data}</script>',
            "</body></html>",
        ]
    )


def write_html(report: Report, path: Path) -> None:
    """Write ``render_html(report)`` to ``path`` through a temporary file, so it is never half."""
    text = render_html(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "x") rather than mkstemp: the file gets the user's umask (mkstemp forces 0600,
    # and a report is usually meant to be shared or served).
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- charts --------------------------------------------------------------------------------


def _charts(report: Report) -> str:
    figures = [
        ("chart-traffic", _traffic_figure(report)),
        ("chart-requests", _requests_figure(report)),
        ("chart-status", _status_figure(report)),
        ("chart-hit", _hit_figure(report)),
        ("chart-minutes", _minutes_figure(report)),
        (
            "chart-province",
            _geo_figure(report, "province", "Requests and download speed per province"),
        ),
        ("chart-isp", _geo_figure(report, "isp", "Requests and download speed per ISP")),
        ("chart-country", _geo_figure(report, "country", "Top countries")),
        ("chart-latency", _latency_figure(report)),
        ("chart-device", _client_figure(report, "device_class", "Client types: device class")),
        ("chart-browser", _client_figure(report, "browser", "Client types: browser")),
        ("chart-os", _client_figure(report, "os", "Client types: operating system")),
    ]
    divs = []
    for div_id, fig in figures:
        html = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=div_id,
            config=_PLOTLY_CONFIG,
        )
        divs.append(f"<div class='chart'>{html}</div>")
    return "<h2>Charts</h2><div class='grid'>" + "".join(divs) + "</div>"


def _plotly_js() -> str:
    # A "</script" inside the library would end the element early; escaping the slash is
    # the standard, behaviour-preserving fix.
    return str(get_plotlyjs()).replace("</script", "<\\/script")


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "margin": {"l": 60, "r": 60, "t": 50, "b": 50},
        "height": 340,
        "font": {"family": "system-ui, sans-serif"},
        "legend": {"orientation": "h", "y": -0.2},
        **extra,
    }


def _hour_labels(report: Report) -> list[str]:
    return [h.hour.strftime("%Y-%m-%d %H:%M") for h in report.hours]


def _traffic_figure(report: Report) -> go.Figure:
    x = _hour_labels(report)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=[h.avg_mbps for h in report.hours], name="avg Mbps", mode="lines")
    )
    fig.add_trace(go.Scatter(x=x, y=[h.peak_mbps for h in report.hours], name="peak Mbps (5-min)"))
    fig.update_layout(**_layout("Bandwidth per hour (UTC)", yaxis={"title": {"text": "Mbps"}}))
    return fig


def _requests_figure(report: Report) -> go.Figure:
    x = _hour_labels(report)
    rates = [None if h.error_rate is None else h.error_rate * 100 for h in report.hours]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=[h.requests for h in report.hours], name="requests"))
    fig.add_trace(go.Scatter(x=x, y=rates, name="error rate %", yaxis="y2", mode="lines"))
    fig.update_layout(
        **_layout(
            "Requests and error rate per hour (UTC)",
            yaxis={"title": {"text": "requests"}},
            yaxis2={
                "title": {"text": "errors (%)"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
            },
        )
    )
    return fig


def _status_figure(report: Report) -> go.Figure:
    classes = [c for c in report.status_classes if c.requests]
    fig = go.Figure(
        go.Pie(
            labels=[c.label for c in classes],
            values=[c.requests for c in classes],
            sort=False,
            hole=0.4,
        )
    )
    fig.update_layout(**_layout("Status mix (requests)"))
    return fig


def _hit_figure(report: Report) -> go.Figure:
    hit = report.hit_ratio
    values = [(hit.by_requests or 0.0) * 100, (hit.by_bytes or 0.0) * 100]
    fig = go.Figure(
        go.Bar(
            x=["by requests", "by bytes"],
            y=values,
            text=[fmt_ratio(hit.by_requests), fmt_ratio(hit.by_bytes)],
            textposition="auto",
            name="hit ratio",
        )
    )
    fig.update_layout(**_layout("Cache hit ratio", yaxis={"range": [0, 100], "title": "%"}))
    return fig


#: Bars shown in a place or client chart (the tables list more).
CHART_BARS = 15


def chart_label(value: str) -> str:
    """A chart label from a database or rule set: plotly reads pseudo-HTML in labels, so
    ``<``, ``>`` and ``&`` are entities and control characters are made visible."""
    return escape(visible(value), quote=False)


def _minutes_figure(report: Report) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[m.minute.strftime("%Y-%m-%d %H:%M") for m in report.minutes],
            y=[m.mbps for m in report.minutes],
            name="Mbps",
            mode="lines",
        )
    )
    if report.peak_minute is not None:
        fig.add_trace(
            go.Scatter(
                x=[report.peak_minute.strftime("%Y-%m-%d %H:%M")],
                y=[report.peak_minute_mbps],
                name=f"peak {fmt_mbps(report.peak_minute_mbps)}",
                mode="markers",
                marker={"size": 10, "color": "#d62728"},
            )
        )
    fig.update_layout(**_layout("Bandwidth per minute (UTC)", yaxis={"title": {"text": "Mbps"}}))
    return fig


def _geo_figure(report: Report, name: str, title: str) -> go.Figure:
    rows = report.geo.get(name, [])[:CHART_BARS]
    labels = [chart_label(r.key) for r in rows]
    speeds = [
        None if r.speed_bytes_per_second is None else r.speed_bytes_per_second / 1e6 for r in rows
    ]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=[r.requests for r in rows], name="requests"))
    fig.add_trace(
        go.Scatter(x=labels, y=speeds, name="speed MB/s", yaxis="y2", mode="markers+lines")
    )
    fig.update_layout(
        **_layout(
            title,
            yaxis={"title": {"text": "requests"}},
            yaxis2={
                "title": {"text": "MB/s"},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
            },
        )
    )
    return fig


def _latency_figure(report: Report) -> go.Figure:
    buckets = report.latency_buckets
    fig = go.Figure(
        go.Bar(
            x=[b.label for b in buckets],
            y=[b.requests for b in buckets],
            text=[fmt_ratio(b.share) for b in buckets],
            textposition="auto",
            name="requests",
        )
    )
    fig.update_layout(**_layout("Response time distribution"))
    return fig


def _client_figure(report: Report, name: str, title: str) -> go.Figure:
    rows = report.client_types.get(name, [])[:CHART_BARS]
    if name == "device_class":
        fig = go.Figure(
            go.Pie(
                labels=[chart_label(r.key) for r in rows],
                values=[r.requests for r in rows],
                hole=0.4,
                sort=False,
            )
        )
    else:
        fig = go.Figure(
            go.Bar(
                x=[chart_label(r.key) for r in rows],
                y=[r.requests for r in rows],
                name="requests",
            )
        )
    fig.update_layout(**_layout(title))
    return fig


# --- tables --------------------------------------------------------------------------------


def _panel_table(panel: Panel) -> str:
    return _table(
        panel.title,
        panel.headers,
        panel.rows,
        key_columns=panel.key_columns,
        table_id=panel.ident,
    )


def _table(
    title: str,
    headers: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    *,
    key_columns: int = 1,
    table_id: str | None = None,
) -> str:
    """A plain HTML table; every header and cell is escaped."""

    def cls(i: int) -> str:
        return " class='key'" if i < key_columns else ""

    head = "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i)}>{escape(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    ident = f" id='{escape(table_id)}'" if table_id else ""
    return (
        f"<h2>{escape(title)}</h2><table{ident}><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _status_table(report: Report) -> str:
    rows = [
        (c.label, fmt_int(c.requests), fmt_ratio(c.share))
        for c in report.status_classes
        if c.requests
    ]
    return _table("Status classes", ("class", "requests", "share"), rows, table_id="status")


def _error_table(report: Report) -> str:
    rows = [(str(e.status), fmt_int(e.requests), fmt_ratio(e.share)) for e in report.top_errors]
    return _table("Top error codes", ("status", "requests", "share"), rows, table_id="errors")


def _domain_table(report: Report) -> str:
    rows = [
        (
            visible(d.domain),
            fmt_int(d.requests),
            fmt_bytes(d.bytes),
            fmt_int(d.unique_clients),
            fmt_ratio(d.hit_ratio_requests),
            fmt_ratio(d.hit_ratio_bytes),
            fmt_ratio(d.error_rate),
            fmt_int(d.rejected_lines),
        )
        for d in report.domains
    ]
    headers = ("domain", "requests", "bytes", "clients", "hit (req)", "hit (bytes)", "errors")
    return _table("Per domain", (*headers, "rejected"), rows, table_id="domains")


def _top_table(report: Report, name: str) -> str:
    title, key_header = TOP_TITLES[name]
    rows = [(fmt_key(i.key), fmt_int(i.requests), fmt_bytes(i.bytes)) for i in report.tops[name]]
    return _table(title, (key_header, "requests", "bytes"), rows, table_id=f"top-{name}")


def _hour_table(report: Report) -> str:
    rows = [
        (
            fmt_time(h.hour),
            fmt_int(h.requests),
            fmt_bytes(h.bytes),
            fmt_mbps(h.avg_mbps),
            fmt_mbps(h.peak_mbps),
            fmt_ratio(h.error_rate),
        )
        for h in report.hours
    ]
    headers = ("hour", "requests", "bytes", "avg Mbps", "peak Mbps", "error rate")
    return _table("Per hour (UTC)", headers, rows, table_id="hours")
