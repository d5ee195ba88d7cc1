"""Sharding: a stable split of the domains, K/N parsing, JOB_COMPLETION_INDEX, the rate share."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cdnlogs.config import Settings, load_settings
from cdnlogs.errors import ConfigError, UsageError
from cdnlogs.shard import Shard, parse_shard, resolve_shard, shard_of, shard_settings

DOMAINS = [f"d{i}.example.com" for i in range(200)]


def test_every_domain_in_exactly_one_shard_and_the_split_is_even() -> None:
    shards = [Shard(k, 4) for k in range(4)]
    picked = [s.select(DOMAINS) for s in shards]
    assert sorted(d for part in picked for d in part) == sorted(DOMAINS)
    assert all(35 <= len(part) <= 65 for part in picked), [len(p) for p in picked]
    assert shard_of("D0.Example.COM", 4) == shard_of("d0.example.com", 4)


def test_the_hash_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; the shard must not be.
    code = (
        "from cdnlogs.shard import shard_of; "
        "print([shard_of(f'd{i}.example.com', 7) for i in range(50)])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert runs == {str([shard_of(f"d{i}.example.com", 7) for i in range(50)]) + "\n"}
    # Pinned values: a change of the hash would move every domain to another worker.
    assert [shard_of(f"d{i}.example.com", 7) for i in range(8)] == _PINNED


#: sha256("d0.example.com")[:8] as a big-endian integer mod 7, and so on.
_PINNED = [5, 5, 6, 5, 2, 0, 2, 3]


def test_parse_shard() -> None:
    assert parse_shard("2/5") == Shard(2, 5) and str(Shard(2, 5)) == "2/5"
    assert Shard(0, 3).name == "shard-0-of-3"
    for bad in ("5/5", "1", "a/b", "-1/3", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    with pytest.raises(ConfigError, match="CDNLOGS_SHARD"):
        load_settings({}, env={"CDNLOGS_SHARD": "3/3"})


def test_job_completion_index() -> None:
    settings = Settings(shards=4)
    assert resolve_shard(settings, {"JOB_COMPLETION_INDEX": "3"}) == Shard(3, 4)
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX"):
        resolve_shard(settings, {})
    with pytest.raises(ConfigError, match="not a shard index"):
        resolve_shard(settings, {"JOB_COMPLETION_INDEX": "4"})
    assert resolve_shard(Settings(shard="1/4", shards=4), {}) == Shard(1, 4)
    with pytest.raises(UsageError, match="disagree"):
        resolve_shard(Settings(shard="1/3", shards=4), {})
    assert resolve_shard(Settings(), {"JOB_COMPLETION_INDEX": "1"}) is None


def test_shards_divide_the_api_rate() -> None:
    settings = Settings(api_rate=50.0)
    assert shard_settings(settings, Shard(0, 4)).api_rate == 12.5
    assert shard_settings(settings, None) is settings
    assert shard_settings(Settings(api_rate=0), Shard(0, 4)).api_rate == 0  # 0 = no limit


def test_a_sharded_sync_builds_its_provider_at_its_share_of_the_rate() -> None:
    from cdnlogs.providers.aliyun import AliyunCdnProvider
    from cdnlogs.sync import make_sync_provider

    def rate_of(shard: str | None) -> float:
        settings = Settings(
            shard=shard, api_rate=40.0, access_key_id="LTAIexample", access_key_secret="secret"
        )
        provider = make_sync_provider(settings)
        assert isinstance(provider, AliyunCdnProvider)
        return provider.limiter.rate

    assert rate_of("1/4") == 10.0
    assert rate_of(None) == 40.0
