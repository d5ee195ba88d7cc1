"""Sharding an account's domains across workers with no coordinator.

Shard ``K/N`` (K is 0-based, as Kubernetes' ``JOB_COMPLETION_INDEX``) takes the domains whose
stable hash falls in K: the first 8 bytes of the SHA-256 of the lower-cased domain name, modulo
N. The hash depends on nothing but the name, so every worker, on any machine and Python version
(``hash()`` is salted per process), agrees on who owns a domain; adding a domain moves no other.

The account's API rate limit is shared by the N workers: each takes ``api_rate / N``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdnlogs.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from cdnlogs.config import Settings

#: Set by Kubernetes in each pod of an Indexed Job: 0 .. completions - 1.
INDEX_ENV = "JOB_COMPLETION_INDEX"

_SHARD_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        """A file-name-safe label, ``shard-K-of-N`` (the ledger snapshot's name)."""
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, domain: str) -> bool:
        """True when ``domain`` belongs to this shard."""
        return shard_of(domain, self.count) == self.index

    def select(self, domains: Iterable[str]) -> list[str]:
        """The domains of ``domains`` this shard owns, in their order."""
        return [d for d in domains if self.owns(d)]


def shard_of(domain: str, count: int) -> int:
    """The shard (0-based) of ``domain`` among ``count`` shards."""
    digest = hashlib.sha256(domain.strip().lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> Shard; UsageError unless 0 <= K < N."""
    match = _SHARD_RE.fullmatch(text)
    if match is None:
        raise UsageError(
            f"shard {text!r} is not K/N",
            hint="e.g. --shard 0/4 for the first of four workers (K counts from 0)",
        )
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise UsageError(f"shard {text!r}: K must be 0 to N-1 and N at least 1")
    return Shard(index, count)


def resolve_shard(settings: Settings, env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard this run works on, or None for the whole account.

    ``shard = "K/N"`` names it; ``shards = N`` takes K from ``$JOB_COMPLETION_INDEX``. Both
    given must agree on N. Raises ConfigError when ``shards`` is set and the index is missing
    or out of range.
    """
    environ = os.environ if env is None else env
    explicit = parse_shard(settings.shard) if settings.shard else None
    if settings.shards is None:
        return explicit
    if explicit is not None:
        if explicit.count != settings.shards:
            raise UsageError(f"--shard {explicit} and --shards {settings.shards} disagree on N")
        return explicit
    raw = environ.get(INDEX_ENV, "").strip()
    if not raw:
        raise ConfigError(
            f"--shards {settings.shards} needs ${INDEX_ENV} (set in a Kubernetes Indexed Job)",
            hint="or say which shard this is: --shard K/N",
        )
    if not raw.isdigit() or int(raw) >= settings.shards:
        raise ConfigError(f"${INDEX_ENV}={raw!r} is not a shard index 0..{settings.shards - 1}")
    return Shard(int(raw), settings.shards)


def shard_settings(settings: Settings, shard: Shard | None) -> Settings:
    """``settings`` with this shard's share of the account's API rate limit."""
    if shard is None or shard.count == 1 or settings.api_rate <= 0:
        return settings
    return dataclasses.replace(settings, api_rate=settings.api_rate / shard.count)
