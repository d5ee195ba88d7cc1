"""Storage rules: hostile names, the layout, staying inside --out, LogName parsing."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from cdnlogs.config import DEFAULT_LAYOUT
from cdnlogs.errors import ConfigError, UnsafeNameError
from cdnlogs.models import PROVIDER_TZ, LogFile
from cdnlogs.storage import (
    LayoutFields,
    check_domain,
    check_log_name,
    fsync_dir,
    log_stem,
    parse_log_name,
    relative_path,
    resolve_inside,
    sha256_file,
    validate_layout,
)

GOOD = "a.example.com_2026_11_28_010000_020000.gz"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x.gz", "separator"),
        ("/etc/passwd.gz", "separator"),
        ("a/b.gz", "separator"),
        ("a\\b.gz", "separator"),
        ("..\\x.gz", "separator"),
        (".hidden.gz", "dot"),
        ("x\x00.gz", "NUL"),
        ("x\n.gz", "control"),
        ("x\r.gz", "control"),
        ("x\x7f.gz", "control"),
        ("..", "'..'"),
        (".", "dot"),
        ("a..gz", "'..'"),
        ("", "empty"),
        ("a" * 253 + ".gz", "255 bytes"),
        ("x.log", "plain .gz"),
        ("x.gz.tar.gz.", "plain .gz"),
        ("x y.gz", "plain .gz"),
        ("ü.gz", "plain .gz"),
        ("x.gz;rm", "plain .gz"),
        ("-x.gz", "plain .gz"),
    ],
)
def test_hostile_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(UnsafeNameError, match=reason):
        check_log_name(name)


@pytest.mark.parametrize(
    "name",
    [
        GOOD,
        "a.example.com_2026_11_28_010000_020000_xx.gz",
        "gc.ggter.com_2015_05_23_1100_1200.gz",
        "www.example.com_2024_10_05_000000_020000.gz.xxxxxx",
        "a" * 252 + ".gz",
    ],
)
def test_provider_names_are_accepted(name: str) -> None:
    assert check_log_name(name) == name


def test_stem_of_each_form() -> None:
    assert log_stem(GOOD) == GOOD[:-3]
    assert log_stem("w.com_2024_10_05_000000_020000.gz.x1") == "w.com_2024_10_05_000000_020000.x1"


@pytest.mark.parametrize("domain", ["a.example.com", "localhost", "*.example.com", "x-1.cn"])
def test_valid_domains(domain: str) -> None:
    assert check_domain(domain) == domain


@pytest.mark.parametrize(
    "domain", ["", "..", "a/b.com", "../etc", "-a.com", "a..com", ".a.com", "a b.com", "a" * 64]
)
def test_invalid_domains(domain: str) -> None:
    with pytest.raises(UnsafeNameError):
        check_domain(domain)


def file_at(start: datetime, domain: str = "a.example.com") -> LogFile:
    local = start.astimezone(PROVIDER_TZ)
    name = f"{domain}_{local:%Y_%m_%d_%H%M%S}_{local + timedelta(hours=1):%H%M%S}.gz"
    return LogFile(domain, name, "https://h/x", 1, start, start + timedelta(hours=1))


def test_layout_uses_the_provider_date_of_the_next_day() -> None:
    f = file_at(datetime(2026, 11, 27, 17, tzinfo=UTC))
    assert f.name == "a.example.com_2026_11_28_010000_020000.gz"
    assert relative_path(DEFAULT_LAYOUT, f, "log") == PurePosixPath(
        "a.example.com/2026/11/28/a.example.com_2026_11_28_010000_020000.log"
    )
    assert relative_path(DEFAULT_LAYOUT, f, "gz").name == f.name


def test_layout_placeholders() -> None:
    g = file_at(datetime(2026, 11, 27, 17, tzinfo=UTC))
    f = LogFile("*.example.com", g.name, g.url, g.size, g.start, g.end)
    rel = relative_path("{domain}/{YYYY}{MM}{DD}/{HH}/{name}", f, "gz")
    assert rel == PurePosixPath(f"_.example.com/20261128/01/{f.name}")
    fields = LayoutFields("a.example.com", GOOD, datetime(2026, 11, 27, 17, tzinfo=UTC))
    assert str(relative_path(DEFAULT_LAYOUT, fields, "log")).startswith("a.example.com/2026/11/28/")


@pytest.mark.parametrize(
    ("layout", "match"),
    [
        ("{domain}/{year}/{stem}{ext}", "unknown placeholder"),
        ("{domain}/{YYYY}{ext}", "must contain"),
        ("/abs/{stem}{ext}", "relative"),
        ("../{stem}{ext}", "'..'"),
        (".cdnlogs/{stem}{ext}", "hidden"),
        ("{domain}//{stem}{ext}", "empty"),
        ("{stem!r}{ext}", "format spec"),
        ("{stem{ext}", "not a valid template"),
    ],
)
def test_bad_layouts(layout: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        validate_layout(layout)


def test_unsafe_network_data_never_renders_a_path() -> None:
    start = datetime(2026, 11, 27, 17, tzinfo=UTC)
    with pytest.raises(UnsafeNameError):
        relative_path(DEFAULT_LAYOUT, LogFile("a.com", "../../x.gz", "u", 1, start, start), "log")
    with pytest.raises(UnsafeNameError):
        relative_path(DEFAULT_LAYOUT, LogFile("../..", GOOD, "u", 1, start, start), "log")
    with pytest.raises(ConfigError):
        relative_path(DEFAULT_LAYOUT, file_at(start), "zip")


def test_resolve_inside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dest = resolve_inside(out, PurePosixPath("a.com/2026/x.log"))
    assert dest == out.resolve() / "a.com" / "2026" / "x.log"
    for bad in ("../x.log", "/etc/passwd", "a/../../x", "."):
        with pytest.raises(UnsafeNameError):
            resolve_inside(out, bad)


def test_symlink_escape_is_refused(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "a.com").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeNameError, match="outside"):
        resolve_inside(out, "a.com/2026/x.log")
    (out / "b.com").mkdir()
    (out / "b.com" / "x.log").symlink_to(outside / "x.log")
    with pytest.raises(UnsafeNameError, match="outside"):
        resolve_inside(out, "b.com/x.log")
    # A symlink that stays inside is fine.
    (out / "c.com").symlink_to(out / "b.com", target_is_directory=True)
    assert resolve_inside(out, "c.com/y.log") == out.resolve() / "b.com" / "y.log"


def test_parse_log_name_forms() -> None:
    tz = PROVIDER_TZ
    parsed = parse_log_name("a.b.com_2026_11_28_010000_020000.gz")
    assert parsed is not None
    assert parsed.domain == "a.b.com" and parsed.suffix is None
    assert parsed.local_start == datetime(2026, 11, 28, 1, tzinfo=tz)
    assert parsed.start == datetime(2026, 11, 27, 17, tzinfo=UTC)
    assert parsed.end == datetime(2026, 11, 27, 18, tzinfo=UTC)
    legacy = parse_log_name("gc.ggter.com_2015_05_23_1100_1200.gz")
    assert legacy is not None and legacy.start == datetime(2015, 5, 23, 3, tzinfo=UTC)
    split = parse_log_name("a.com_2026_11_28_230000_000000_2.gz")
    assert split is not None and split.suffix == "2"
    assert split.local_end == datetime(2026, 11, 29, tzinfo=tz)
    midnight = parse_log_name("a.com_2026_11_28_2300_2400.gz")
    assert midnight is not None and midnight.local_end == datetime(2026, 11, 29, tzinfo=tz)
    assert parse_log_name("w.com_2024_10_05_000000_020000.gz.xxxxxx") is not None
    for bad in ("x.gz", "a.com_2026_13_01_000000_010000.gz", "a.com_2026_11_28_250000_0100.gz"):
        assert parse_log_name(bad) is None


def test_sha256_and_fsync_dir(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    fsync_dir(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_dir(tmp_path / "missing")
