"""analyze(): golden numbers on a fixed dataset, computed independently in plain Python."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cdnlogs.analyze import Filters, Report, analyze
from cdnlogs.dataset import partition_date
from cdnlogs.errors import ParseError
from cdnlogs.ingest import Ingester
from cdnlogs.logformat import parse_line
from cdnlogs.simulator.loggen import generate_lines
from tests.helpers import (
    COLUMNS,
    HOSTILE_UA,
    T0,
    Row,
    expected,
    make_rows,
    open_dataset,
    write_dataset,
)


def check(report: Report, exp: dict[str, Any]) -> None:
    """Assert the report matches the oracle."""
    t = report.totals
    assert (t.requests, t.bytes, t.unique_clients) == (
        exp["requests"],
        exp["bytes"],
        exp["clients"],
    )
    assert report.hit_ratio.by_requests == pytest.approx(exp["hit_requests"])
    assert report.hit_ratio.by_bytes == pytest.approx(exp["hit_bytes"])
    got_classes = {c.label: c.requests for c in report.status_classes if c.requests}
    assert got_classes == exp["classes"]
    assert [(e.status, e.requests) for e in report.top_errors] == exp["errors"]
    lat = report.latency
    assert (lat.p50_ms, lat.p95_ms, lat.p99_ms) == pytest.approx(exp["p"])
    for name, key in (("urls", "urls"), ("clients", "clients_top"), ("user_agents", "agents")):
        got = [(i.key, i.requests, i.bytes) for i in report.tops[name]]
        assert got == exp[key], name
    assert [(i.key, i.requests, i.bytes) for i in report.tops["referers"]] == exp["referers"]
    nonzero = {
        h.hour: (h.requests, h.bytes, h.peak_mbps, h.errors) for h in report.hours if h.requests
    }
    assert nonzero.keys() == exp["hours"].keys()
    for hour, (n, b, peak, e) in exp["hours"].items():
        assert nonzero[hour][:2] == (n, b)
        assert nonzero[hour][2] == pytest.approx(peak)
        assert nonzero[hour][3] == e
    assert {d.domain: d.requests for d in report.domains} == dict(exp["domains"])


# --- the real pipeline: generated Aliyun lines -> ingest -> dataset --------------------------

ODD_LINES = [
    # A user agent with unescaped quotes and markup: the fast path rejects it, the reference
    # parser takes it.
    '[1/Nov/2026:09:10:11 +0800] 10.9.9.9 - 12 "-" "GET https://a.example.com/x?y=1" 200 100 '
    '2000 HIT "<script>alert("ua")</script> [bold]x[/bold]" "text/html" https',
    "this is not a log line at all",
    '[1/Nov/2026:09:59:59 +0800] 10.9.9.8 - - "-" "GET https://a.example.com/" - - - - "-" "-"',
]


def ingest_generated(root: Path) -> tuple[list[Row], int]:
    """Ingest simulator lines (plus odd ones) for two domains and three hours; return the oracle.

    The oracle is the reference parser over the very same lines; a line it refuses is a reject.
    """
    rows: list[Row] = []
    rejects = 0
    src = root.parent / (root.name + "-src")
    src.mkdir()
    with Ingester(root) as ingester:
        for domain in ("a.example.com", "b.example.com"):
            for hour in range(3):
                start = T0 + timedelta(hours=hour)
                lines = list(generate_lines(domain, start, 400, seed=5))
                if domain == "a.example.com" and hour == 1:
                    lines += ODD_LINES
                local = start.astimezone(timezone(timedelta(hours=8)))
                name = f"{domain}_{local:%Y_%m_%d_%H%M%S}_{local + timedelta(hours=1):%H%M%S}.gz"
                path = src / name.replace(".gz", ".log")
                path.write_text("\n".join(lines) + "\n", encoding="utf-8")
                ingester.ingest_file(
                    path, domain=domain, log_name=name, day=partition_date(name, start)
                )
                for line in lines:
                    try:
                        record = parse_line(line)
                    except ParseError:
                        rejects += 1
                        continue
                    values = {name: getattr(record, name) for name, _ in COLUMNS[:-1]}
                    rows.append(Row(domain, values))
    return rows, rejects


def test_golden_numbers_through_the_real_ingest(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    rows, rejects = ingest_generated(root)
    assert rejects >= 1
    report = analyze(open_dataset(root), Filters())
    check(report, expected(rows))
    assert report.totals.rejected_lines == rejects
    assert report.totals.requests == len(rows) == 6 * 400 + len(ODD_LINES) - rejects
    assert '<script>alert("ua")</script> [bold]x[/bold]' in {
        i.key for i in analyze(open_dataset(root), Filters(top=1000)).tops["user_agents"]
    }
    since = T0 + timedelta(hours=1)
    report = analyze(open_dataset(root), Filters(domains=("a.example.com",), since=since))
    subset = [r for r in rows if r.domain == "a.example.com" and r.values["ts"] >= since]
    check(report, expected(subset))


# --- tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    root = tmp_path_factory.mktemp("dataset")
    rows = make_rows()
    write_dataset(root, rows, rejects={"a.example.com": 3, "b.example.com": 2})
    return root, rows


def test_golden_numbers_match_plain_python(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    report = analyze(open_dataset(root), Filters())
    check(report, expected(rows))
    assert report.totals.rejected_lines == 5
    assert {d.domain: d.rejected_lines for d in report.domains} == {
        "a.example.com": 3,
        "b.example.com": 2,
    }


def test_hours_are_filled_and_bandwidth_defined(dataset: tuple[Path, list[Row]]) -> None:
    root, _ = dataset
    report = analyze(open_dataset(root), Filters())
    assert [h.hour for h in report.hours] == [T0 + timedelta(hours=i) for i in range(5)]
    gap = report.hours[3]
    assert (gap.requests, gap.bytes, gap.peak_mbps, gap.error_rate) == (0, 0, 0.0, None)
    for h in report.hours:
        assert h.avg_mbps == pytest.approx(h.bytes * 8 / 3600 / 1e6)
        # The busiest 5-minute slot can never be slower than the hour's mean.
        assert h.peak_mbps >= h.avg_mbps
    assert report.peak_mbps == max(h.peak_mbps for h in report.hours)
    assert report.peak_hour in {h.hour for h in report.hours if h.peak_mbps == report.peak_mbps}


def test_filter_by_domain(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    report = analyze(open_dataset(root), Filters(domains=("b.example.com",)))
    check(report, expected([r for r in rows if r.domain == "b.example.com"]))
    assert report.totals.rejected_lines == 2
    assert [d.domain for d in report.domains] == ["b.example.com"]


def test_filter_by_time_window_is_half_open(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    since, until = T0 + timedelta(hours=1, minutes=30), T0 + timedelta(hours=2, minutes=15)
    report = analyze(open_dataset(root), Filters(since=since, until=until, top=5))
    check(report, expected([r for r in rows if since <= r.values["ts"] < until], top=5))
    assert all(len(items) <= 5 for items in report.tops.values())


def test_filter_with_offset_aware_bounds(dataset: tuple[Path, list[Row]]) -> None:
    root, rows = dataset
    since = datetime(2026, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))  # 01:00 UTC
    report = analyze(open_dataset(root), Filters(since=since))
    assert report.totals.requests == sum(
        1 for r in rows if r.values["ts"] >= T0 + timedelta(hours=1)
    )


def test_to_dict_is_json(dataset: tuple[Path, list[Row]]) -> None:
    root, _ = dataset
    report = analyze(open_dataset(root), Filters(domains=("a.example.com",)))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["totals"]["requests"] == report.totals.requests
    assert data["hours"][0]["hour"] == "2026-11-01T00:00:00Z"
    assert data["filters"]["domains"] == ["a.example.com"]
    assert data["empty"] is False
    assert HOSTILE_UA in {i["key"] for i in data["tops"]["user_agents"]}


def test_empty_dataset_and_empty_window(tmp_path: Path, dataset: tuple[Path, list[Row]]) -> None:
    report = analyze(open_dataset(tmp_path), Filters())
    assert report.empty and report.notes == ["the dataset has no rows yet"]
    assert report.totals.requests == 0 and report.hours == []
    json.dumps(report.to_dict())

    root, _ = dataset
    far = T0 + timedelta(days=30)
    report = analyze(open_dataset(root), Filters(since=far))
    assert report.empty and report.notes == ["no requests in the window"]
    assert report.totals.rejected_lines == 5
    report = analyze(open_dataset(root), Filters(domains=("nope.example.com",)))
    assert report.empty and report.totals.rejected_lines == 0


def test_filters_reject_naive_times() -> None:
    with pytest.raises(ValueError):
        Filters(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        Filters(top=0)
