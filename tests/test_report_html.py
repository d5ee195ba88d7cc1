"""The HTML report: self-contained, escaped, same numbers as the terminal, rendered by Chromium."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Page, sync_playwright
from rich.console import Console

from cdnlogs.analyze import Filters, Report, analyze
from cdnlogs.dims import DimensionStore
from cdnlogs.report import client_panels
from cdnlogs.report.html import chart_label, render_html, write_html
from cdnlogs.report.text import render_text
from tests.helpers import HOSTILE_UA, build, make_rows, open_dataset, write_dataset

ACTUAL = Path(__file__).parent / "actual"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHART_IDS = (
    "chart-traffic",
    "chart-requests",
    "chart-status",
    "chart-hit",
    "chart-minutes",
    "chart-province",
    "chart-isp",
    "chart-country",
    "chart-latency",
    "chart-device",
    "chart-browser",
    "chart-os",
)


class Tables(HTMLParser):
    """Collect the text of every cell of every table, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        for name in ("src", "href"):
            if attr.get(name):
                self.external.append(f"{tag} {name}={attr[name]}")
        if tag == "table":
            self._table = attr.get("id") or f"t{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = tmp_path_factory.mktemp("dataset")
    write_dataset(root, make_rows(), rejects={"a.example.com": 4})
    return analyze(open_dataset(root), Filters(top=8))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield context
        context.close()


#: True once every chart is drawn and no redraw is under way or pending: plotly.js draws a
#: chart, then lays it out again (asynchronously) when its automatic margins change.
_CHARTS_SETTLED = """() => Array.from(document.querySelectorAll('.plotly-graph-div')).every(div => {
    const layout = div._fullLayout;
    return Boolean(layout) && !layout._replotting && !layout._redrawFromAutoMarginCount
        && div.querySelector('.main-svg') !== null;
})"""


def wait_for_charts(page: Page) -> None:
    """Wait until plotly.js has finished laying out every chart on the page."""
    page.wait_for_function(_CHARTS_SETTLED)


def load(context: BrowserContext, path: Path, screenshot: str) -> dict[str, Any]:
    """Open ``path`` in Chromium; return console errors, requests, dialogs and chart facts."""
    page = context.new_page()
    console: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            console.append(f"{message.type}: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", on_dialog)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(path.as_uri(), wait_until="load")
    wait_for_charts(page)
    facts = page.evaluate(
        """ids => Object.fromEntries(ids.map(id => {
            const div = document.getElementById(id);
            return [id, div ? {
                svgs: div.querySelectorAll('.main-svg').length,
                traces: div.querySelectorAll('.trace').length,
                points: div.querySelectorAll('.point, .slice, path.js-line').length,
            } : null];
        }))""",
        list(CHART_IDS),
    )
    data = page.evaluate("JSON.parse(document.getElementById('cdnlogs-report').textContent)")
    cells = page.evaluate(
        "Array.from(document.querySelectorAll('#top-user_agents td.key')).map(td => td.textContent)"
    )
    ACTUAL.mkdir(exist_ok=True)
    page.screenshot(path=str(ACTUAL / screenshot), full_page=True)
    page.close()
    return {
        "console": console,
        "requests": requests,
        "dialogs": dialogs,
        "charts": facts,
        "data": data,
        "ua_cells": cells,
    }


@pytest.mark.browser
def test_chromium_renders_charts_offline_without_errors(
    report: Report, browser: BrowserContext, tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    write_html(report, path)
    result = load(browser, path, "report_html.png")
    assert result["console"] == []
    assert result["dialogs"] == []
    # The file itself is the only request the page makes.
    assert result["requests"] == [path.as_uri()]
    for chart_id in CHART_IDS:
        facts = result["charts"][chart_id]
        assert facts is not None, chart_id
        assert facts["svgs"] >= 1, chart_id
        assert facts["traces"] >= 1, chart_id
    assert result["charts"]["chart-traffic"]["traces"] >= 2
    assert result["charts"]["chart-status"]["points"] >= 4  # one slice per status class
    # The numbers embedded in the page are the report's numbers.
    assert result["data"] == json.loads(json.dumps(report.to_dict()))
    # The hostile user agent is shown as text (control characters made visible), not run.
    assert HOSTILE_UA.replace("\x1b", "\\x1b") in result["ua_cells"]
    (ACTUAL / "report.html").write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


@pytest.mark.browser
def test_chromium_shows_empty_report_message(browser: BrowserContext, tmp_path: Path) -> None:
    empty = analyze(open_dataset(tmp_path), Filters(domains=("a.example.com",)))
    path = tmp_path / "empty.html"
    write_html(empty, path)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    text = page.inner_text("#empty")
    page.screenshot(path=str(ACTUAL / "report_html_empty.png"))
    page.close()
    assert errors == []
    assert "Nothing to report for a.example.com" in text
    assert "the dataset has no rows yet" in text


def test_html_is_self_contained(report: Report) -> None:
    html = render_html(report)
    parser = Tables()
    parser.feed(html)
    assert parser.external == []
    assert not re.search(r"https?://(?!ref\.example/|x\.example/p)[^\s\"'<]*", strip_js(html))
    assert "Content-Security-Policy" in html and "connect-src 'none'" in html
    assert "@import" not in html and "@font-face" not in html
    # plotly.js is inlined exactly once, not once per chart.
    assert html.count("Plotly v") <= 2 and len(html) > 3_000_000


def strip_js(html: str) -> str:
    """The page without its inline scripts (plotly.js has URLs in comments and license text)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.DOTALL)


def test_hostile_values_are_escaped(report: Report) -> None:
    html = render_html(report)
    assert '<script>alert("ua")' not in html
    assert "&lt;script&gt;alert(&quot;ua&quot;)&lt;/script&gt; [bold]x[/bold] \\x1b[31mred" in html
    assert "\x1b" not in html
    # The JSON blob cannot be closed by a value from the logs.
    blob = html.split('id="cdnlogs-report">', 1)[1].split("</script>", 1)[0]
    assert "<" not in blob
    assert HOSTILE_UA in {i["key"] for i in json.loads(blob)["tops"]["user_agents"]}


def test_html_numbers_equal_terminal_numbers(report: Report) -> None:
    out = io.StringIO()
    render_text(report, Console(file=out, width=200, markup=False, highlight=False))
    text_lines = out.getvalue().splitlines()
    parser = Tables()
    parser.feed(render_html(report))
    expected_tables = {"summary", "status", "errors", "domains", "hours"} | {
        f"top-{n}" for n in report.tops
    }
    expected_tables |= {panel.ident for panel in client_panels(report)}
    assert expected_tables <= parser.tables.keys()
    checked = 0
    for table_id, rows in parser.tables.items():
        for cells in rows[1:]:  # the first row is the header
            pattern = re.compile(r"\s+".join(re.escape(c) for c in cells if c))
            assert any(pattern.search(line) for line in text_lines), (table_id, cells)
            checked += 1
    assert checked > 40
    summary = {row[0]: row[1] for row in parser.tables["summary"][1:]}
    assert summary["Requests"] == f"{report.totals.requests:,}"
    assert summary["Rejected lines"] == "4"


@pytest.mark.browser
def test_chromium_renders_the_client_panels_of_busy_traffic(
    browser: BrowserContext, tmp_path: Path
) -> None:
    root = tmp_path / "dataset"
    build(root)
    busy = analyze(open_dataset(root), Filters(top=10), DimensionStore(root))
    path = tmp_path / "busy.html"
    write_html(busy, path)
    result = load(browser, path, "report_html_busy.png")
    assert result["console"] == []
    assert result["requests"] == [path.as_uri()]
    for chart_id in CHART_IDS:
        assert result["charts"][chart_id]["traces"] >= 1, chart_id
    assert result["charts"]["chart-device"]["points"] >= 3  # bot, mobile, desktop slices
    assert result["data"] == json.loads(json.dumps(busy.to_dict()))
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(path.as_uri(), wait_until="load")
    wait_for_charts(page)
    labels = page.evaluate(
        "Array.from(document.querySelectorAll('#chart-province .xtick text'))"
        ".map(t => t.textContent)"
    )
    assert labels[:3] == [r.key for r in busy.geo["province"][:3]]
    # The README's picture (docs/report-screenshot.png is a copy): the new panels' charts.
    box = page.locator("#chart-minutes").bounding_box()
    assert box is not None
    page.screenshot(
        path=str(ACTUAL / "report_html_readme.png"),
        clip={"x": 0, "y": box["y"] - 20, "width": 1280, "height": 1500},
        full_page=True,
    )
    page.close()


def test_chart_labels_cannot_carry_markup() -> None:
    assert chart_label('<a href="x">Evil</a>\x1b') == '&lt;a href="x"&gt;Evil&lt;/a&gt;\\x1b'
