"""Local storage rules: safe names, the path layout under ``--out``, and file helpers.

Everything that turns network data (a LogName, a domain) into a path goes through here:
:func:`check_log_name` and :func:`check_domain` refuse anything that is not a plain name,
:func:`relative_path` renders the layout template, and :func:`resolve_inside` guarantees the
result is inside the output directory even if someone planted a symlink. Nothing is ever
written outside ``--out``.

LogNames (reference section 4) look like
``<domain>_<YYYY>_<MM>_<DD>_<HHMMSS>_<HHMMSS>[_<ext>].gz`` with the times in the provider's
+08:00 zone; legacy names use ``HHMM``. One SDK sample shows ``….gz.xxxxxx``: such a name is
accepted (it is not hostile, and refusing it would lose a log), and its stem drops the
``.gz`` in the middle (``a_…_020000.gz.x1`` -> ``a_…_020000.x1``).
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from cdnlogs.errors import ArchivePathError, ConfigError, UnsafeNameError
from cdnlogs.models import PROVIDER_TZ, LogFile

#: Longest file name most filesystems take (ext4, xfs, btrfs: 255 bytes).
MAX_NAME_BYTES = 255
#: Longest DNS name.
MAX_DOMAIN_CHARS = 253
#: Local file formats: decompressed text, or the verified download as is.
FORMATS = {"log": ".log", "gz": ".gz"}
#: Placeholders a layout template may use.
LAYOUT_FIELDS = ("domain", "YYYY", "MM", "DD", "HH", "stem", "name", "ext")

HASH_CHUNK = 1024 * 1024

# Letters, digits, dot, underscore, hyphen; first character alphanumeric (no leading dot);
# a final ".gz", optionally followed by one ".<alnum>" tag (the SDK-sample variant).
_LOG_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.gz(?:\.[A-Za-z0-9]{1,32})?")
_GZ_TAG_RE = re.compile(r"\.gz(\.[A-Za-z0-9]{1,32})?$")
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_NAME_PARTS_RE = re.compile(
    r"(?P<domain>.+?)_(?P<y>\d{4})_(?P<m>\d{2})_(?P<d>\d{2})"
    r"_(?P<start>\d{6}|\d{4})_(?P<end>\d{6}|\d{4})"
    r"(?:_(?P<suffix>[A-Za-z0-9._-]+?))?"
    r"\.gz(?:\.[A-Za-z0-9]{1,32})?"
)


class ParsedName(NamedTuple):
    """What a LogName says: its domain and the +08:00 hour it covers."""

    domain: str
    local_start: datetime
    local_end: datetime
    suffix: str | None

    @property
    def start(self) -> datetime:
        """The hour start in UTC, as the API reports it."""
        return self.local_start.astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The hour end in UTC."""
        return self.local_end.astimezone(UTC)


@dataclass(frozen=True)
class LayoutFields:
    """What a layout needs when there is no LogFile (adopting a file found on disk)."""

    domain: str
    name: str
    start: datetime

    @property
    def local_start(self) -> datetime:
        """The hour start in the provider's +08:00 time."""
        return self.start.astimezone(PROVIDER_TZ)


def check_log_name(name: str) -> str:
    """Return ``name`` if it is a safe plain LogName, else raise UnsafeNameError with why."""
    if not name:
        raise UnsafeNameError("empty LogName")
    shown = ascii(name) if len(name) <= 80 else ascii(name[:80]) + "..."
    if "\x00" in name:
        raise UnsafeNameError(f"LogName {shown} contains NUL")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise UnsafeNameError(f"LogName {shown} contains control characters")
    if "/" in name or "\\" in name:
        raise UnsafeNameError(f"LogName {shown} contains a path separator")
    if ".." in name:
        raise UnsafeNameError(f"LogName {shown} contains '..'")
    if name.startswith("."):
        raise UnsafeNameError(f"LogName {shown} starts with a dot (a hidden file)")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafeNameError(f"LogName {shown} is longer than {MAX_NAME_BYTES} bytes")
    if not _LOG_NAME_RE.fullmatch(name):
        raise UnsafeNameError(
            f"LogName {shown} is not a plain .gz name of letters, digits, '.', '_' and '-'"
        )
    return name


def check_domain(domain: str) -> str:
    """Return ``domain`` if it is a valid host name (or ``*.`` wildcard), else UnsafeNameError."""
    shown = ascii(domain) if len(domain) <= 80 else ascii(domain[:80]) + "..."
    host = domain[2:] if domain.startswith("*.") else domain
    if not host or len(domain) > MAX_DOMAIN_CHARS:
        raise UnsafeNameError(f"domain {shown} is empty or too long")
    if not all(_LABEL_RE.fullmatch(label) for label in host.split(".")):
        raise UnsafeNameError(f"domain {shown} is not a valid host name")
    return domain


def domain_dir_name(domain: str) -> str:
    """The directory name of a domain: a wildcard ``*.a.com`` becomes ``_.a.com``."""
    check_domain(domain)
    return "_." + domain[2:] if domain.startswith("*.") else domain


def log_stem(name: str) -> str:
    """The LogName without its ``.gz`` (``x_010000_020000.gz`` -> ``x_010000_020000``)."""
    check_log_name(name)
    match = _GZ_TAG_RE.search(name)
    assert match is not None  # check_log_name guarantees the .gz
    return name[: match.start()] + (match.group(1) or "")


def validate_layout(layout: str) -> list[str]:
    """Check a layout template; return its placeholders or raise ConfigError."""
    try:
        parsed = list(string.Formatter().parse(layout))
    except ValueError as exc:
        raise ConfigError(f"layout {layout!r} is not a valid template: {exc}") from exc
    fields: list[str] = []
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in LAYOUT_FIELDS:
            raise ConfigError(
                f"layout {layout!r} uses unknown placeholder {{{field}}}",
                hint="use " + ", ".join(f"{{{f}}}" for f in LAYOUT_FIELDS),
            )
        if spec or conversion:
            raise ConfigError(f"layout {layout!r}: {{{field}}} takes no format spec")
        fields.append(field)
    if "stem" not in fields and "name" not in fields:
        # Without the name every file of a day (or hour) would land on the same path.
        raise ConfigError(f"layout {layout!r} must contain {{stem}} or {{name}}")
    if layout.startswith("/") or "\\" in layout:
        raise ConfigError(f"layout {layout!r} must be a relative path with '/' separators")
    for part in layout.split("/"):
        literal = "".join(lit for lit, *_ in string.Formatter().parse(part))
        if not part or part in (".", "..") or part.startswith(".") or ".." in literal:
            raise ConfigError(
                f"layout {layout!r} has an empty, hidden or '..' path component ({part!r})"
            )
    return fields


def relative_path(layout: str, log_file: LogFile | LayoutFields, fmt: str) -> PurePosixPath:
    """Render the layout for one file: a relative path under the output directory.

    The date placeholders are the +08:00 date the provider puts in the name (so a file for
    17:00Z lands in the next day's folder). Raises UnsafeNameError for an unsafe name or
    domain, ConfigError for a bad template or format.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}", hint="use one of: " + ", ".join(FORMATS))
    validate_layout(layout)
    local = log_file.local_start
    values = {
        "domain": domain_dir_name(log_file.domain),
        "YYYY": f"{local.year:04d}",
        "MM": f"{local.month:02d}",
        "DD": f"{local.day:02d}",
        "HH": f"{local.hour:02d}",
        "stem": log_stem(log_file.name),
        "name": check_log_name(log_file.name),
        "ext": FORMATS[fmt],
    }
    rel = PurePosixPath(layout.format(**values))
    if rel.is_absolute() or any(p in ("", ".", "..") or p.startswith(".") for p in rel.parts):
        raise UnsafeNameError(f"layout rendered an unsafe path {str(rel)!r}")
    if any(len(p.encode()) > MAX_NAME_BYTES for p in rel.parts):
        raise UnsafeNameError(f"layout rendered a name longer than {MAX_NAME_BYTES} bytes")
    return rel


def resolve_inside(out_dir: Path, rel: PurePosixPath | str) -> Path:
    """The absolute destination of ``rel`` under ``out_dir``; UnsafeNameError if it escapes.

    Symlinks on the way (a planted ``OUT/a.com -> /etc``) are followed before the check, so a
    path that would write through one is refused.
    """
    rel = PurePosixPath(rel)
    if rel.is_absolute() or not rel.parts or any(p in ("..", ".") for p in rel.parts):
        raise UnsafeNameError(f"{str(rel)!r} is not a plain relative path")
    root = Path(out_dir).resolve()
    dest = root.joinpath(*rel.parts).resolve()
    if dest == root or not dest.is_relative_to(root):
        raise UnsafeNameError(f"{rel} would resolve to {dest}, outside {root}")
    return dest


def parse_log_name(name: str) -> ParsedName | None:
    """Parse ``<domain>_<YYYY>_<MM>_<DD>_<HHMMSS>_<HHMMSS>[_<ext>].gz`` (or legacy ``HHMM``).

    Times are +08:00. An end at or before the start (``230000_000000``) or ``2400`` means
    the next day. Returns None for any other name.
    """
    match = _NAME_PARTS_RE.fullmatch(name)
    if match is None:
        return None
    try:
        day = datetime(int(match["y"]), int(match["m"]), int(match["d"]), tzinfo=PROVIDER_TZ)
        start = day + _clock_offset(match["start"])
        end = day + _clock_offset(match["end"])
    except ValueError:
        return None
    if start >= day + timedelta(days=1):
        return None
    if end <= start:
        end += timedelta(days=1)
    return ParsedName(match["domain"], start, end, match["suffix"])


def _clock_offset(text: str) -> timedelta:
    hours, minutes = int(text[0:2]), int(text[2:4])
    seconds = int(text[4:6]) if len(text) == 6 else 0
    if hours > 24 or minutes > 59 or seconds > 59 or (hours == 24 and (minutes or seconds)):
        raise ValueError(f"not a clock time: {text}")
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_directory_path(path: Path) -> None:
    """Raise ArchivePathError when ``path``, or a directory above it, exists but is not one.

    ``--out`` below a regular file would otherwise surface as a bare NotADirectoryError from
    whichever call touches it first. Nothing is created or changed.
    """
    for candidate in (path, *path.parents):
        if candidate.is_dir():  # follows symlinks, as every later open would
            return
        if os.path.lexists(candidate):
            kind = "a regular file" if candidate.is_file() else "not a directory"
            raise ArchivePathError(
                f"{path} cannot be a directory: {candidate} is {kind}",
                hint=f"point --out at a directory (or at a path that does not exist yet), or "
                f"move {candidate} away; nothing was changed",
            )


def make_directory(path: Path) -> None:
    """``mkdir -p path`` with the archive's errors: ArchivePathError naming what is in the way."""
    check_directory_path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchivePathError(
            f"cannot create the directory {path}: {exc.strerror or exc}",
            hint="check the permissions and the free space of the directory above it",
        ) from exc


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename or unlink inside it survives a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
