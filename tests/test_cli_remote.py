"""`cdnlogs domains` and `cdnlogs list` end to end against the simulator over loopback.

In-process runs go through ``main()`` (the real exit-status translation); the credential chain
from env and profile files runs in subprocesses, because the SDK reads env vars at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from cdnlogs.cli import main
from cdnlogs.models import PROVIDER_TZ
from cdnlogs.simulator import Simulator, SimulatorConfig

DOMAINS = ("a.example.com", "b.example.com")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(domains=DOMAINS, days=2, seed=3, lines_per_file=5)) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(sim: Simulator) -> Iterator[None]:
    sim.faults.clear()
    sim.reset_counters()
    yield
    sim.faults.clear()


@pytest.fixture
def config(tmp_path: Path, sim: Simulator) -> Path:
    path = tmp_path / "cdnlogs.toml"
    path.write_text(
        f'endpoint = "{sim.endpoint}"\nlog_scheme = "http"\n'
        f'[credentials]\naccess_key_id = "{sim.access_key_id}"\n'
        f'access_key_secret = "{sim.access_key_secret}"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``cdnlogs argv`` through main(); return (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


def run_subprocess(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA", "CDNLOGS"))}
    return subprocess.run(
        [sys.executable, "-m", "cdnlogs", *argv],
        env={**clean, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def in_window(sim: Simulator, domain: str, hours: int = 24) -> set[str]:
    now = datetime.now(UTC)
    return {
        f.name
        for f in sim.files(domain, published_only=True)
        if now - timedelta(hours=hours) <= f.start < now
    }


def test_domains_table_and_json(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    code, out, _ = run(capsys, "domains", "--config", str(config))
    assert code == 0
    assert "a.example.com" in out and "b.example.com" in out and "online" in out
    code, out, _ = run(capsys, "domains", "--config", str(config), "--json")
    assert code == 0
    assert [d["name"] for d in json.loads(out)] == list(DOMAINS)


def test_list_table_shows_both_hours_and_totals(
    capsys: pytest.CaptureFixture[str], config: Path, sim: Simulator
) -> None:
    code, out, err = run(capsys, "list", "--config", str(config), "--domain", "a.example.com")
    assert code == 0, err
    expected = in_window(sim, "a.example.com")
    assert expected
    for name in expected:
        assert name in out
    some = next(f for f in sim.files("a.example.com") if f.name in expected)
    assert some.start.strftime("%Y-%m-%d %H:%M") in out
    assert some.start.astimezone(PROVIDER_TZ).strftime("%Y-%m-%d %H:%M") in out
    total = sum(f.size for f in sim.files("a.example.com") if f.name in expected)
    assert f"{len(expected)} files, {total} bytes" in out


def test_list_json_has_no_query_strings(
    capsys: pytest.CaptureFixture[str], config: Path, sim: Simulator
) -> None:
    code, out, _ = run(
        capsys, "list", "--config", str(config), "--all-domains", "--since", "36h", "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert [d["domain"] for d in doc["domains"]] == list(DOMAINS)
    for entry in doc["domains"]:
        assert {f["name"] for f in entry["files"]} == in_window(sim, entry["domain"], 36)
        for f in entry["files"]:
            assert "?" not in f["url"]
            assert f["start_local"].endswith("+08:00")
    assert doc["total_files"] == sum(len(d["files"]) for d in doc["domains"])


def test_old_since_is_clamped_with_a_warning(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, out, err = run(
        capsys, "list", "--config", str(config), "--domain", "a.example.com", "--since", "40d",
        "--json",
    )  # fmt: skip
    assert code == 0
    assert "31-day window" in err
    assert json.loads(out)["domains"][0]["clamped_from"] is not None


def test_throttling_is_retried_by_the_cli(
    capsys: pytest.CaptureFixture[str], config: Path, sim: Simulator
) -> None:
    sim.faults.throttle_next = 1
    code, _, err = run(capsys, "list", "--config", str(config), "--domain", "b.example.com")
    assert code == 0, err
    assert sim.api_calls["DescribeCdnDomainLogs"] == 2


def test_unknown_domain_exits_4_with_code_and_request_id(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, _, err = run(capsys, "list", "--config", str(config), "--domain", "nope.example.com")
    assert code == 4
    first = err.splitlines()[0]
    assert first.startswith("Error: InvalidDomain.NotFound:")
    assert "RequestId" in first


@pytest.mark.parametrize("algorithm", ["v3", "v2"])
def test_bad_secret_exits_4(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sim: Simulator, algorithm: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        f'signature_algorithm = "{algorithm}"\n'
        f'[credentials]\naccess_key_id = "{sim.access_key_id}"\n'
        'access_key_secret = "definitely-wrong-secret"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    code, out, err = run(capsys, "domains", "--config", str(path), "--endpoint", sim.endpoint)
    assert code == 4
    assert "SignatureDoesNotMatch" in err and "RequestId" in err
    assert "definitely-wrong-secret" not in out + err


@pytest.mark.parametrize(
    "code",
    [
        "Forbidden.RAM",
        "InvalidAccessKeyId.NotFound",
        "InvalidSecurityToken.Expired",
        "InvalidParameter",
        "Throttling.User",  # with one attempt allowed: exhausted at once
    ],
)
def test_each_refusal_exits_4_with_code_and_request_id(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    sim: Simulator,
    code: str,
) -> None:
    monkeypatch.setenv("CDNLOGS_API_ATTEMPTS", "1")
    sim.faults.force_api_error(code)
    status, out, err = run(capsys, "list", "--config", str(config), "--domain", "a.example.com")
    assert status == 4
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith(f"Error: {code}:")
    assert "(RequestId " in first
    assert sim.api_calls["DescribeCdnDomainLogs"] == 1


def test_no_credentials_exits_3_with_the_places_it_looked(
    capsys: pytest.CaptureFixture[str], sim: Simulator
) -> None:
    code, _, err = run(capsys, "domains", "--endpoint", sim.endpoint)
    assert code == 3
    assert "no Alibaba Cloud credential found" in err
    assert "hint: looked in:" in err
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in err and ".aliyun/config.json" in err


def test_bad_config_key_exits_3_naming_file_and_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('endpiont = "http://127.0.0.1:1"\n', encoding="utf-8")
    code, _, err = run(capsys, "list", "--config", str(path), "--domain", "a.example.com")
    assert code == 3
    assert str(path) in err and "'endpiont'" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    assert run(capsys, "list", "--config", str(config))[0] == 2  # no domain
    code, _, err = run(
        capsys, "list", "--config", str(config), "--domain", "a.example.com", "--since", "1h",
        "--until", "2h",
    )  # fmt: skip
    assert code == 2 and "empty" in err
    assert run(capsys, "list", "--config", str(config), "--since", "yesterday")[0] == 2


def test_nothing_secret_in_any_output_even_with_vv(
    capsys: pytest.CaptureFixture[str], config: Path, sim: Simulator
) -> None:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    listed = next(f for f in sim.files("a.example.com") if f.start == hour)
    query = dict(parse_qsl(urlsplit(sim.url(listed)).query))
    secrets = [query["Signature"], query["OSSAccessKeyId"], query["Expires"]]
    secrets.append(sim.access_key_secret)
    outputs = []
    for extra in ([], ["--json"]):
        for verbosity in (["-vv"], []):
            argv = [*verbosity, "list", "--config", str(config), "--domain", "a.example.com"]
            code, out, err = run(capsys, *argv, "-vv", *extra)
            assert code == 0
            outputs.append(out + err)
    assert "DEBUG" in outputs[0]  # -vv really logged the requests
    assert listed.name in outputs[0]
    for text in outputs:
        for secret in secrets:
            assert secret not in text


def test_legacy_aliyun_ini_as_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sim: Simulator
) -> None:
    day = (datetime.now(UTC) - timedelta(days=1)).astimezone(PROVIDER_TZ).strftime("%Y-%m-%d")
    ini = tmp_path / "aliyun.ini"
    ini.write_text(
        f"[Credentials]\naccesskeyid = {sim.access_key_id}\n"
        f"accesskeysecret={sim.access_key_secret}\n\n"
        "[Must]\nAction = DescribeCdnDomainLogs\nDomainName = b.example.com\n\n"
        f"[Select]\nLogDay={day}\nPageSize=\nPageNumber=\n",
        encoding="utf-8",
    )
    ini.chmod(0o600)
    code, out, err = run(
        capsys, "list", "--config", str(ini), "--endpoint", sim.endpoint, "--log-scheme", "http",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    names = {f["name"] for f in json.loads(out)["domains"][0]["files"]}
    expected = {
        f.name
        for f in sim.files("b.example.com", published_only=True)
        if f.start.astimezone(PROVIDER_TZ).strftime("%Y-%m-%d") == day
    }
    assert names == expected and len(expected) >= 24


# --- the credential chain in subprocesses (the SDK reads env at import) ----------------------


def test_env_credentials_in_a_subprocess(sim: Simulator, tmp_path: Path) -> None:
    result = run_subprocess(
        {
            "HOME": str(tmp_path),
            "ALIBABA_CLOUD_ACCESS_KEY_ID": sim.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sim.access_key_secret,
            "CDNLOGS_ENDPOINT": sim.endpoint,
            "CDNLOGS_LOG_SCHEME": "http",
            "CDNLOGS_DOMAINS": "a.example.com",
        },
        "list",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    names = {f["name"] for f in json.loads(result.stdout)["domains"][0]["files"]}
    assert names == in_window(sim, "a.example.com")
    assert result.stderr == ""  # no SDK noise


def test_cli_profile_and_ini_profile_in_subprocesses(sim: Simulator, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".aliyun").mkdir(parents=True)
    profiles = {
        "current": "broken",
        "profiles": [
            {"name": "broken", "mode": "AK", "access_key_id": sim.access_key_id,
             "access_key_secret": "wrong"},
            {"name": "sim", "mode": "AK", "access_key_id": sim.access_key_id,
             "access_key_secret": sim.access_key_secret},
        ],
    }  # fmt: skip
    (home / ".aliyun" / "config.json").write_text(json.dumps(profiles), encoding="utf-8")
    (home / ".aliyun" / "config.json").chmod(0o600)
    env = {"HOME": str(home), "CDNLOGS_ENDPOINT": sim.endpoint}
    named = run_subprocess(env, "domains", "--profile", "sim", "--json")
    assert named.returncode == 0, named.stderr
    assert [d["name"] for d in json.loads(named.stdout)] == list(DOMAINS)
    current = run_subprocess(env, "domains")  # the file's "current" profile has a bad secret
    assert current.returncode == 4
    assert "SignatureDoesNotMatch" in current.stderr

    ini_home = tmp_path / "ini-home"
    (ini_home / ".alibabacloud").mkdir(parents=True)
    (ini_home / ".alibabacloud" / "credentials.ini").write_text(
        f"[default]\ntype = access_key\naccess_key_id = {sim.access_key_id}\n"
        f"access_key_secret = {sim.access_key_secret}\n",
        encoding="utf-8",
    )
    from_ini = run_subprocess({**env, "HOME": str(ini_home)}, "domains", "--json")
    assert from_ini.returncode == 0, from_ini.stderr
    assert "readable by group/others" in from_ini.stderr  # the ini was written 0644
    missing = run_subprocess({**env, "HOME": str(ini_home)}, "domains", "--profile", "nope")
    assert missing.returncode == 3
    assert "'nope'" in missing.stderr


def test_help_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "from cdnlogs.cli import cli\n"
        "for argv in (['--help'], ['list', '--help'], ['domains', '--help']):\n"
        "    cli.main(argv, standalone_mode=False)\n"
        "heavy = [m for m in sys.modules if m.startswith(('alibabacloud', 'Tea', 'darabonba'))]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("flags", "style"),
    [
        ((), ("ACS3", "2018-05-10")),
        (("--signature-algorithm", "v2"), ("RPC", "2018-05-10")),
        (("--api-version", "2014-11-11"), ("ACS3", "2014-11-11")),
        (("--api-version", "2014-11-11", "--signature-algorithm", "v2"), ("RPC", "2014-11-11")),
    ],
)
def test_api_version_and_signature_flags_reach_the_wire(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    sim: Simulator,
    flags: tuple[str, ...],
    style: tuple[str, str],
) -> None:
    domain = DOMAINS[0]
    args = ["list", "--config", str(config), "--domain", domain, "--json", *flags]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    names = {f["name"] for f in json.loads(out)["domains"][0]["files"]}
    assert names == in_window(sim, domain)
    assert set(sim.api_styles) == {style}
