"""plan_fetches: a pure function of listing and ledger rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cdnlogs.config import DEFAULT_LAYOUT
from cdnlogs.errors import ConfigError
from cdnlogs.manifest import FileRecord, Status
from cdnlogs.models import LogFile
from cdnlogs.plan import plan_fetches

T0 = datetime(2026, 3, 1, 16, tzinfo=UTC)


def _file(name: str, hour: int = 0, domain: str = "a.example.com", expires: int = 2**31) -> LogFile:
    start = T0 + timedelta(hours=hour)
    return LogFile(
        domain=domain,
        name=name,
        url=f"http://h/{name}?Expires={expires}&Signature=x",
        size=100 + hour,
        start=start,
        end=start + timedelta(hours=1),
    )


def _record(f: LogFile, status: Status, error: str | None = None) -> FileRecord:
    return FileRecord(
        domain=f.domain,
        log_name=f.name,
        hour_start=f.start,
        hour_end=f.end,
        remote_size=f.size,
        status=status,
        attempts=0,
        last_error=error,
        sha256=None,
        plain_size=None,
        local_path=None,
        format=None,
        first_seen=T0,
        updated_at=T0,
        done_at=None,
        ingested_rows=None,
        ingested_rejects=None,
        ingested_sha256=None,
        ingested_at=None,
    )


def _name(hour: int, suffix: str = "") -> str:
    local = T0 + timedelta(hours=hour + 8)
    end = local + timedelta(hours=1)
    return f"a.example.com_{local:%Y_%m_%d_%H}0000_{end:%H}0000{suffix}.gz"


def test_only_missing_pending_and_failed_files_are_fetched() -> None:
    files = [_file(_name(h), h) for h in range(6)]
    records = [
        _record(files[0], Status.DONE),
        _record(files[1], Status.PRUNED),
        _record(files[2], Status.PENDING),
        _record(files[3], Status.FAILED, "HTTP 500"),
        _record(files[4], Status.REJECTED, "bad"),
    ]
    plan = plan_fetches(files, records, layout=DEFAULT_LAYOUT, fmt="log")
    assert [t.log_file.name for t in plan.fetch] == [files[2].name, files[3].name, files[5].name]
    assert plan.skipped == {"done": 1, "pruned": 1}
    assert [(r.log_file.name, r.reason, r.known) for r in plan.rejected] == [
        (files[4].name, "bad", True)
    ]
    assert plan.new_rejections == []
    assert plan.fetch_bytes == files[2].size + files[3].size + files[5].size


def test_paths_follow_the_layout_in_provider_time() -> None:
    # 16:00Z is 00:00 the next day in +08:00: the folder is the provider's date.
    f = _file(_name(0), 0)
    plan = plan_fetches([f], [], layout=DEFAULT_LAYOUT, fmt="log")
    assert str(plan.fetch[0].relative_path) == (
        "a.example.com/2026/03/02/a.example.com_2026_03_02_000000_010000.log"
    )
    gz = plan_fetches([f], [], layout=DEFAULT_LAYOUT, fmt="gz")
    assert str(gz.fetch[0].relative_path).endswith("_010000.gz")


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.gz",
        "a/b.gz",
        "a\\b.gz",
        ".hidden.gz",
        "a\x00b.gz",
        "a\nb.gz",
        "x..y.gz",
        "no-gz-suffix",
        "",
    ],
)
def test_hostile_names_are_rejected_not_fetched(name: str) -> None:
    good = _file(_name(1), 1)
    plan = plan_fetches([_file(name), good], [], layout=DEFAULT_LAYOUT, fmt="log")
    assert [t.log_file.name for t in plan.fetch] == [good.name]
    assert [r.log_file.name for r in plan.new_rejections] == [name]
    assert plan.rejected[0].reason


def test_hostile_domain_is_rejected() -> None:
    f = replace(_file(_name(0)), domain="../evil")
    plan = plan_fetches([f], [], layout=DEFAULT_LAYOUT, fmt="log")
    assert plan.fetch == [] and len(plan.new_rejections) == 1


def test_duplicates_count_once_and_other_domains_rows_do_not_match() -> None:
    f = _file(_name(0))
    other = replace(f, domain="b.example.com")
    plan = plan_fetches(
        [f, f, other], [_record(other, Status.DONE)], layout=DEFAULT_LAYOUT, fmt="log"
    )
    assert [t.log_file.domain for t in plan.fetch] == ["a.example.com"]
    assert plan.skipped == {"done": 1}


def test_bad_layout_or_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        plan_fetches([_file(_name(0))], [], layout="{domain}/{nope}", fmt="log")
    with pytest.raises(ConfigError):
        plan_fetches([_file(_name(0))], [], layout=DEFAULT_LAYOUT, fmt="zip")
