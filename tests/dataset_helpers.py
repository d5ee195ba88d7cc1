"""Build a small archive + ledger + dataset for the compaction, engine and store tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdnlogs.dataset import connect
from cdnlogs.manifest import Manifest
from cdnlogs.models import LogFile
from cdnlogs.simulator.loggen import generate_lines

DOMAINS = ("a.example.com", "b.example.com")
#: 00:00 on 2024-03-01 in +08:00.
DAY_START = datetime(2024, 2, 29, 16, tzinfo=UTC)


#: Requests and bytes per domain and day, the figures every engine must agree on.
TOTALS_SQL = (
    "SELECT domain, CAST(date AS STRING), count(*), coalesce(sum(response_bytes), 0) "
    "FROM {logs} GROUP BY domain, date"
)


def add_source(out: Path, domain: str, hour: datetime, lines: int, *, seed: int = 1) -> str:
    """Write one downloaded log file (as sync would) and record it done in the ledger."""
    local = hour.astimezone(UTC) + timedelta(hours=8)
    name = f"{domain}_{local:%Y_%m_%d_%H}0000_{(local + timedelta(hours=1)):%H}0000.gz"
    rel = f"{domain}/{local:%Y/%m/%d}/{name.removesuffix('.gz')}.log"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{line}\n" for line in generate_lines(domain, hour, lines, seed))
    path.write_text(text, encoding="utf-8")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with Manifest.open(out / ".cdnlogs") as manifest:
        log_file = LogFile(domain, name, "http://x/" + name, 1, hour, hour + timedelta(hours=1))
        manifest.record_listed([log_file])
        manifest.mark_done(
            domain, name, sha256=digest, plain_size=len(text), local_path=rel, fmt="log"
        )
    return name


def small_archive(out: Path, *, hours: int = 3, lines: int = 40) -> list[str]:
    """``hours`` source files per domain on 2024-03-01 (+08:00), and one on 2024-03-02."""
    names = []
    for index, domain in enumerate(DOMAINS):
        for hour in range(hours):
            start = DAY_START + timedelta(hours=hour)
            names.append(add_source(out, domain, start, lines + hour, seed=index * 10 + hour))
        names.append(add_source(out, domain, DAY_START + timedelta(days=1), lines, seed=99))
    return names


def totals(dataset: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(domain, date) -> (requests, response bytes) through cdnlogs' own views."""
    con = connect(dataset)
    try:
        rows = con.execute(TOTALS_SQL.format(logs="logs")).fetchall()
    finally:
        con.close()
    return {(d, day): (int(n), int(b)) for d, day, n, b in rows}
