"""Log lines with the cardinality of a busy production domain, for benchmarks.

``loggen`` draws every field from pools of a thousand entries: right for the demo and the tests
(small, readable, with heavy hitters to find), wrong for measuring an analyzer, because a
tool's cost grows with the number of distinct keys it tracks (GoAccess keeps a hash table per
panel). With ``loggen``'s pools, 2 million lines hold only ~600 client addresses and ~300 paths
and GoAccess runs several times faster than on real traffic.

Here, one busy hour looks like what a CDN serves for a web app with media (2 M requests):

* clients: skewed draws from 600 k addresses (5% IPv6), so a few hundred thousand distinct
  clients appear, a handful of them heavy;
* URLs: ~150 k paths (fingerprinted assets, item pages, API ids, HLS video segments), and a third
  of the requests carry a query string, many of them unique (cache busters, URL-auth tokens);
* user agents: a few thousand (browser x version x platform, app builds, bots);
* referers: tens of thousands (internal pages, search result pages with terms, social links).

The line format, time spread, status mix and the ~0.5% of lines with raw quotes are
``loggen``'s. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from cdnlogs.simulator.loggen import (
    MINUTE_SECOND,
    POOLS,
    format_line,
    hour_prefix,
    response_bytes,
    timing_and_odd_fields,
)

_WORDS = (
    "cdn", "logs", "price", "video", "download", "app", "review", "login", "news", "sale",
    "map", "weather", "music", "game", "travel", "hotel", "phone", "laptop", "shoes", "recipe",
    "movie", "book", "car", "loan", "bank", "sport", "football", "live",
)  # fmt: skip


def _clients(rng: random.Random) -> list[str]:
    v4 = [
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(570_000)
    ]
    v6 = [
        f"240e:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}"
        f"::{rng.randint(1, 0xFFFF):x}"
        for _ in range(30_000)
    ]
    clients = v4 + v6
    rng.shuffle(clients)
    return clients


def _paths(rng: random.Random) -> list[tuple[str, str, int]]:
    """(path, content type, full size) for ~150 k URLs, hottest first."""
    hexd = "0123456789abcdef"

    def fingerprint() -> str:
        return "".join(rng.choice(hexd) for _ in range(8))

    paths: list[tuple[str, str, int]] = [
        ("/", "text/html", 16_000),
        ("/index.html", "text/html", 18_000),
        ("/favicon.ico", "image/x-icon", 1_150),
    ]
    for name in ("app", "vendor", "runtime", "chunk-common"):
        paths.append((f"/static/js/{name}.{fingerprint()}.js", "application/javascript", 240_000))
    paths.append((f"/static/css/main.{fingerprint()}.css", "text/css", 42_000))
    kinds = (
        (0.30, "/img/{h}/{h2}.jpg", "image/jpeg", 180_000),
        (0.15, "/img/{h}/{h2}.webp", "image/webp", 90_000),
        (0.15, "/item/{n}.html", "text/html", 24_000),
        (0.15, "/api/v2/items/{n}", "application/json", 2_400),
        (0.20, "/video/{n}/seg-{k}.ts", "video/mp2t", 1_800_000),
        (0.05, "/download/{n}/setup-{k}.apk", "application/vnd.android.package-archive", 48e6),
    )
    shares = [share for share, *_ in kinds]
    for _ in range(150_000):
        _, template, ctype, size = rng.choices(kinds, weights=shares)[0]
        path = template.format(
            h=fingerprint()[:2],
            h2=fingerprint() + fingerprint(),
            n=rng.randint(1, 2_000_000),
            k=rng.randint(1, 400),
        )
        paths.append((path, ctype, max(200, int(size * rng.uniform(0.3, 1.7)))))
    return paths


def _agents(rng: random.Random) -> list[str]:
    agents: list[str] = []
    for _ in range(4_000):
        kind = rng.random()
        if kind < 0.45:
            major = rng.randint(100, 131)
            build = f"{major}.0.{rng.randint(4000, 6999)}.{rng.randint(0, 250)}"
            platform = rng.choice(
                (
                    "Windows NT 10.0; Win64; x64",
                    "Macintosh; Intel Mac OS X 10_15_7",
                    "X11; Linux x86_64",
                    f"Linux; Android {rng.randint(9, 15)}; "
                    f"{rng.choice('SMRV')}{rng.randint(100, 999)}",
                )
            )
            mobile = " Mobile" if "Android" in platform else ""
            agents.append(
                f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
                f"Chrome/{build}{mobile} Safari/537.36"
            )
        elif kind < 0.75:
            ios = f"{rng.randint(14, 18)}_{rng.randint(0, 7)}"
            agents.append(
                f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
                f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.{ios.split('_')[1]} "
                f"Mobile/15E148 Safari/604.1"
            )
        elif kind < 0.85:
            agents.append(
                f"ExampleApp/{rng.randint(5, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} "
                f"(build {rng.randint(1000, 99999)}; Android {rng.randint(9, 15)}) okhttp/4.12.0"
            )
        elif kind < 0.93:
            major = rng.randint(110, 133)
            agents.append(
                f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{major}.0) Gecko/20100101 "
                f"Firefox/{major}.0"
            )
        else:
            agents.append(
                rng.choice(
                    (
                        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
                        "Mozilla/5.0 (compatible; Baiduspider/2.0; "
                        "+http://www.baidu.com/search/spider.html)",
                        f"curl/8.{rng.randint(0, 11)}.{rng.randint(0, 3)}",
                        f"python-requests/2.{rng.randint(20, 32)}.{rng.randint(0, 3)}",
                        "-",
                    )
                )
            )
    return agents


def _referers(rng: random.Random, paths: list[tuple[str, str, int]]) -> list[str]:
    referers = ["-"] * 30_000
    for _ in range(30_000):
        kind = rng.random()
        if kind < 0.5:
            referers.append("https://{domain}" + paths[int(rng.random() ** 2 * 40_000)][0])
        elif kind < 0.85:
            terms = "+".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))
            engine = rng.choice(("https://www.google.com/search?q=", "https://www.baidu.com/s?wd="))
            referers.append(engine + terms)
        else:
            referers.append(f"https://t.co/{rng.getrandbits(40):x}")
    rng.shuffle(referers)
    return referers


class _Pools:
    """Built on first use (about a second), then shared by every call in the process."""

    built: tuple[list[str], list[tuple[str, str, int]], list[str], list[str]] | None = None

    @classmethod
    def get(cls) -> tuple[list[str], list[tuple[str, str, int]], list[str], list[str]]:
        if cls.built is None:
            rng = random.Random(20240301)
            paths = _paths(rng)
            cls.built = (_clients(rng), paths, _agents(rng), _referers(rng, paths))
        return cls.built


def generate_busy_lines(
    domain: str, hour_start_utc: datetime, count: int, seed: int
) -> Iterator[str]:
    """Yield ``count`` lines for one busy hour of ``domain`` (see the module docstring)."""
    clients, paths, agents, referers = _Pools.get()
    rng = random.Random(f"busy:{seed}:{domain}:{hour_start_utc.isoformat()}")
    r = rng.random
    bits = rng.getrandbits
    prefix = hour_prefix(hour_start_utc)
    p = POOLS
    proxies, statuses, methods = p.proxies, p.statuses, p.methods
    protocols, cache = p.protocols, p.cache
    size = len(statuses)
    nclients, npaths, nagents, nrefs = len(clients), len(paths), len(agents), len(referers)
    refs = [x.replace("{domain}", domain) for x in referers]
    for i in range(count):
        second = i * 3600 // count if count else 0
        path, ctype, full = paths[int(r() * r() * r() * npaths)]
        status = statuses[int(r() * size)]
        proto = protocols[int(r() * size)]
        scheme = "http" if proto == "http" else "https"
        sent = response_bytes(status, full, r)
        q = r()
        if q < 0.12:
            query = f"?auth_key={1709251200 + second}-{bits(32):x}-0-{bits(128):032x}"
        elif q < 0.22:
            query = f"?t={bits(40)}"
        elif q < 0.33:
            query = f"?v={bits(16):x}&from={_WORDS[int(r() * len(_WORDS))]}"
        else:
            query = ""
        rt, req, agent, referer = timing_and_odd_fields(
            r, agents[int(r() * r() * nagents)], refs[int(r() * nrefs)]
        )
        yield format_line(
            f"{prefix}{MINUTE_SECOND[second]}",
            clients[int(r() * r() * nclients)],
            proxies[int(r() * size)],
            rt,
            referer,
            methods[int(r() * size)],
            f"{scheme}://{domain}{path}{query}",
            status,
            req,
            sent,
            cache[int(r() * size)],
            agent,
            ctype,
            proto,
        )


#: The shapes real traffic and format changes put into a log file, as ``hostile_lines`` mixes
#: them in: each takes a generated line (bytes) and returns the line(s) replacing it.
_HOSTILE: tuple[Callable[[bytes], list[bytes]], ...] = (
    # raw quotes in the Referer and the User-Agent at once (SQL-injection scanners)
    lambda line: [line.replace(b'"-"', b'"https://q.example/s?q="union select"', 1)],
    # a User-Agent ending in '""' (CSV quoting would run past the end of the line)
    lambda line: [line.replace(b'" "', b' ""x"" "', 1)],
    # 12 fields (no protocol) and 14+ (extra trailing fields)
    lambda line: [line.rsplit(b" ", 1)[0]],
    lambda line: [line + b" extra1 extra2"],
    # an empty line before the line, and a CRLF line end
    lambda line: [b"", line],
    lambda line: [line + b"\r"],
    # NUL and other control bytes in the User-Agent, bytes that are not UTF-8
    lambda line: [line.replace(b'" "', b'\x00\x07" "', 1)],
    lambda line: [line.replace(b'" "', b'\xe9\xff" "', 1)],
)


def hostile_lines(lines: Iterable[str], *, every: int = 200, seed: int = 1) -> Iterator[bytes]:
    """``lines`` as bytes, with about one in ``every`` (0.5%) replaced by a hostile shape.

    Shapes rotate through ``_HOSTILE``; one line in 100,000 becomes a 1 MB line.
    """
    rng = random.Random(seed)
    for number, line in enumerate(lines):
        raw = line.encode()
        if number % 100_000 == 99_999:
            yield raw.replace(b'" "', b"x" * 1_000_000 + b'" "', 1)
        elif rng.random() < 1 / every:
            yield from _HOSTILE[rng.randrange(len(_HOSTILE))](raw)
        else:
            yield raw
