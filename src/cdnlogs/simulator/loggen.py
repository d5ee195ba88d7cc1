"""Realistic Aliyun CDN offline-log lines, generated fast and deterministically.

The line format (13 fields)::

    [9/Jun/2015:01:58:09 +0800] 1.2.3.4 - 1542 "-" "GET http://h/" 200 191 2830 HIT "UA" "a/b" http

Every choice is an index into a precomputed pool drawn with one ``random.Random(seed)``, so a
benchmark can generate millions of lines in seconds. About 0.5% of lines carry an unescaped
double quote inside the User-Agent or Referer, and a few carry ``-`` in a numeric field, as
real logs do; parsers must cope with both.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

_TZ8 = timezone(timedelta(hours=8))
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: ``MM:SS`` for each second of an hour, by second.
MINUTE_SECOND = tuple(f"{s // 60:02d}:{s % 60:02d}" for s in range(3600))
#: Size of the weighted pools: a draw is ``pool[int(random() * POOL_SIZE)]``.
POOL_SIZE = 1000

_T = TypeVar("_T")


@dataclass(frozen=True)
class Pools:
    """The pools every domain draws from; each weighted pool holds ``POOL_SIZE`` entries.

    ``busylog`` draws its clients, paths, agents and referers from larger pools of its own and
    the rest from these.
    """

    clients: list[str]
    proxies: list[str]
    #: ``(path, content type, full size)``, hottest first; drawn with a skew, not weighted.
    paths: list[tuple[str, str, int]]
    queries: list[str]
    #: Referers; ``{domain}`` stands for the requested domain.
    referers: list[str]
    agents: list[str]
    statuses: list[int]
    methods: list[str]
    protocols: list[str]
    cache: list[str]


def _weighted(rng: random.Random, items: list[tuple[_T, float]]) -> list[_T]:
    """Expand ``(item, weight)`` pairs into a pool of ``POOL_SIZE`` entries, shuffled."""
    total = sum(w for _, w in items)
    pool: list[_T] = []
    for item, weight in items:
        pool.extend([item] * max(1, round(weight / total * POOL_SIZE)))
    rng.shuffle(pool)
    return (pool * 2)[:POOL_SIZE]


def _build_pools() -> Pools:
    """The fixed pools every domain draws from (seeded, so identical in every process)."""
    rng = random.Random(20150609)
    ipv4 = [
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(1500)
    ]
    ipv6 = [
        f"240e:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"
        for _ in range(120)
    ]
    heavy = ["203.0.113.7", "198.51.100.23", "240e:3b0:1::42", "192.0.2.99", "100.64.12.5"]
    clients = [*ipv4, *ipv6]
    client_pool = [rng.choice(clients) for _ in range(POOL_SIZE)]
    # Heavy hitters: a quarter of all requests come from five clients, as scrapers do.
    for i in range(0, POOL_SIZE, 4):
        client_pool[i] = heavy[(i // 4) % len(heavy)]
    rng.shuffle(client_pool)
    proxies = _weighted(rng, [("-", 95), ("10.0.3.17", 2), ("172.16.8.4", 2), ("10.1.1.1", 1)])
    kinds = [
        ("/index.html", "text/html", 18000),
        ("/", "text/html", 16000),
        ("/static/app.js", "application/javascript", 120000),
        ("/static/vendor.js", "application/javascript", 380000),
        ("/static/style.css", "text/css", 42000),
        ("/img/logo.png", "image/png", 8200),
        ("/img/banner.jpg", "image/jpeg", 210000),
        ("/api/v1/items", "application/json", 2400),
        ("/video/intro.mp4", "video/mp4", 8400000),
        ("/downloads/setup.exe", "application/octet-stream", 52000000),
        ("/favicon.ico", "image/x-icon", 1150),
        ("/robots.txt", "text/plain", 120),
        ("/fonts/main.woff2", "font/woff2", 48000),
    ]
    paths: list[tuple[str, str, int]] = list(kinds)
    for i in range(260):
        base, ctype, size = rng.choice(kinds)
        stem, dot, ext = base.rpartition(".")
        if not dot or stem == "":
            path = f"/page/{i}.html"
            ctype, ext = "text/html", "html"
        else:
            path = f"{stem}-{i}.{ext}"
        paths.append((path, ctype, max(100, int(size * rng.uniform(0.3, 1.7)))))
    queries = _weighted(
        rng,
        [
            ("", 70),
            ("?v=3", 8),
            ("?utm_source=newsletter&utm_medium=email", 6),
            ("?page=2", 5),
            ("?id=1842&sort=desc", 5),
            ("?q=cdn%20logs", 4),
            ("?token=abc123&ts=1700000000", 2),
        ],
    )
    referers = _weighted(
        rng,
        [
            ("-", 55),
            ("https://www.google.com/", 12),
            ("https://www.baidu.com/s?wd=cdn", 10),
            ("https://{domain}/", 12),
            ("https://{domain}/index.html", 6),
            ("https://t.co/x1y2z3", 3),
            ("android-app://com.example.app", 2),
        ],
    )
    agents = _weighted(
        rng,
        [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/124.0.0.0 Safari/537.36",
                30,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
                18,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko) Version/17.3 Safari/605.1.15",
                10,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                7,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/124.0.0.0 Mobile Safari/537.36",
                12,
            ),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 5),
            ("Mozilla/5.0 (compatible; AhrefsBot/5.0; +http://ahrefs.com/robot/)", 3),
            (
                "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
                3,
            ),
            ("curl/8.5.0", 4),
            ("python-requests/2.31.0", 3),
            ("Wget/1.21.4", 1),
            ("-", 2),
            ("okhttp/4.12.0", 2),
        ],
    )
    statuses = _weighted(
        rng,
        [
            (200, 78),
            (206, 4),
            (304, 8),
            (301, 1),
            (403, 1.5),
            (404, 4),
            (499, 1.2),
            (500, 0.6),
            (502, 0.8),
            (503, 0.6),
            (504, 0.3),
        ],
    )
    methods = _weighted(rng, [("GET", 94), ("HEAD", 4), ("POST", 2)])
    protocols = _weighted(rng, [("https", 70), ("http", 22), ("quic", 8)])
    cache = _weighted(rng, [("HIT", 82), ("MISS", 18)])
    return Pools(
        clients=client_pool,
        proxies=proxies,
        paths=paths,
        queries=queries,
        referers=referers,
        agents=agents,
        statuses=statuses,
        methods=methods,
        protocols=protocols,
        cache=cache,
    )


#: Built once at import, shared by every call.
POOLS = _build_pools()
_ODD_AGENTS = (
    'Mozilla/5.0 (compatible; "Scanner" v2)',
    'MyApp/1.0 "beta" (Linux)',
    'Mozilla/5.0 (Windows NT 10.0) like "Gecko"',
)
_ODD_REFERERS = (
    'https://example.org/search?q="cdn logs"',
    'https://forum.example.net/t/"quoted"',
)


def generate_lines(domain: str, hour_start_utc: datetime, count: int, seed: int) -> Iterator[str]:
    """Yield ``count`` log lines for one hour of ``domain``, in time order, without newlines.

    The same arguments always give the same lines. Times are spread over the hour and written
    in +0800, day not zero-padded, as the provider does.
    """
    rng = random.Random(f"{seed}:{domain}:{hour_start_utc.isoformat()}")
    r = rng.random
    prefix = hour_prefix(hour_start_utc)
    p = POOLS
    clients, proxies, queries = p.clients, p.proxies, p.queries
    statuses, methods, protocols, cache = p.statuses, p.methods, p.protocols, p.cache
    agents = p.agents
    referers = [x.replace("{domain}", domain) for x in p.referers]
    paths = p.paths
    npaths = len(paths)
    minsec = MINUTE_SECOND
    size = POOL_SIZE
    for i in range(count):
        second = i * 3600 // count if count else 0
        path, ctype, full = paths[int(r() * r() * npaths)]  # skewed: a few hot URLs
        status = statuses[int(r() * size)]
        proto = protocols[int(r() * size)]
        scheme = "http" if proto == "http" else "https"
        sent = response_bytes(status, full, r)
        rt, req, agent, referer = timing_and_odd_fields(
            r, agents[int(r() * size)], referers[int(r() * size)]
        )
        yield format_line(
            f"{prefix}{minsec[second]}",
            clients[int(r() * size)],
            proxies[int(r() * size)],
            rt,
            referer,
            methods[int(r() * size)],
            f"{scheme}://{domain}{path}{queries[int(r() * size)]}",
            status,
            req,
            sent,
            cache[int(r() * size)],
            agent,
            ctype,
            proto,
        )


def hour_prefix(hour_start_utc: datetime) -> str:
    """``[d/Mon/yyyy:HH:`` of the hour in +0800, day not zero-padded, as the provider writes it."""
    local = hour_start_utc.astimezone(UTC).astimezone(_TZ8)
    return f"[{local.day}/{_MONTHS[local.month - 1]}/{local.year}:{local.hour:02d}:"


def response_bytes(status: int, full: int, r: Callable[[], float]) -> int:
    """Bytes sent for a response of ``status`` to a ``full``-byte object (a draw for 206/errors)."""
    if status == 200:
        return full
    if status == 206:
        return int(full * r()) + 1
    if status == 304:
        return 0
    return 150 + int(r() * 400)


def timing_and_odd_fields(
    r: Callable[[], float], agent: str, referer: str
) -> tuple[int | str, int | str, str, str]:
    """Draw (response time, request bytes) and make ~0.5% of lines odd, as real logs are.

    Returns ``(response_time, request_bytes, agent, referer)``: an odd line carries an unescaped
    quote in its User-Agent or Referer (parsers must not choke on them), or ``-`` in a number.
    """
    rt: int | str = 1 + int(r() * r() * 3000)
    req: int | str = 120 + int(r() * 900)
    odd = r()
    if odd < 0.005:
        if odd < 0.0025:
            agent = _ODD_AGENTS[int(r() * len(_ODD_AGENTS))]
        else:
            referer = _ODD_REFERERS[int(r() * len(_ODD_REFERERS))]
    elif odd < 0.0058:
        rt = "-"
        if odd < 0.0054:
            req = "-"
    return rt, req, agent, referer


def format_line(
    time: str,
    client: str,
    proxy: str,
    rt: int | str,
    referer: str,
    method: str,
    url: str,
    status: int,
    req: int | str,
    sent: int,
    cache: str,
    agent: str,
    ctype: str,
    proto: str,
) -> str:
    """One line in the provider's 13-field format; ``time`` is ``[d/Mon/yyyy:HH:MM:SS``."""
    return (
        f'{time} +0800] {client} {proxy} {rt} "{referer}" "{method} {url}" '
        f'{status} {req} {sent} {cache} "{agent}" "{ctype}" {proto}'
    )


def gzip_lines(lines: Iterable[str], *, level: int = 6) -> bytes:
    """Gzip newline-terminated lines in memory with ``mtime=0``, so the bytes are reproducible."""
    data = "".join(f"{line}\n" for line in lines).encode()
    return gzip.compress(data, compresslevel=level, mtime=0)


def write_gz(path: Path, lines: Iterable[str], *, level: int = 6) -> int:
    """Stream lines into a gzip file at ``path`` (``mtime=0``); return the compressed size."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0) as gz,
    ):
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 4096:
                gz.write(("\n".join(batch) + "\n").encode())
                batch.clear()
        if batch:
            gz.write(("\n".join(batch) + "\n").encode())
    return path.stat().st_size
