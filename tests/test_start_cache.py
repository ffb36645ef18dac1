"""A start reuses the validated outcome of the one before while nothing it was made from changed.

Whether a start validated in full shows in what it imported (``-X importtime``): pydantic only
on the full path. Each test has its own cache directory (XDG_CACHE_HOME).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import clean_env

SHOW = "import json, os; plan = json.loads(os.environ['OTEL_CELERY_LAUNCH_PLAN']); print(plan['resource'].get('service.name'))"


def start(env: dict[str, str], *head: str, program: str = SHOW, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Runs the launcher; says whether it validated in full (imported pydantic)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "otel_celery_launch", *head, "--", sys.executable, "-c", program],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    full = any(line.split("|")[-1].strip() == "pydantic" for line in done.stderr.splitlines() if line.startswith("import time:"))
    return done, full


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), OTEL_EXPORTER_OTLP_PROTOCOL="none", OTEL_SERVICE_NAME="first")


def test_a_second_start_skips_validation_and_runs_the_same(env: dict[str, str]) -> None:
    first, full = start(env)
    assert first.returncode == 0 and full and first.stdout == "first\n", first.stderr
    second, full = start(env)
    assert second.returncode == 0 and not full and second.stdout == "first\n", second.stderr
    changed, full = start({**env, "OTEL_SERVICE_NAME": "second"})
    assert full and changed.stdout == "second\n"


def test_warnings_are_given_again_from_the_cache(env: dict[str, str]) -> None:
    env = {**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    outcomes = [start(env) for _ in range(2)]
    assert [full for _, full in outcomes] == [True, False]
    warnings = [[line for line in done.stderr.splitlines() if "warning:" in line] for done, _ in outcomes]
    assert warnings[0] and warnings[0] == warnings[1]
    assert "4318" in warnings[0][0]


def test_a_changed_file_or_variable_it_reads_is_validated_again(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("service:\n  name: ${WHO:-nobody}\n")
    env = {k: v for k, v in env.items() if k != "OTEL_SERVICE_NAME"}
    assert start(env, "--config", str(config))[0].stdout == "nobody\n"
    assert start(env, "--config", str(config)) [1] is False
    named, full = start({**env, "WHO": "ada"}, "--config", str(config))
    assert full and named.stdout == "ada\n"
    config.write_text("service:\n  name: [not, a, name]\n")
    broken, full = start(env, "--config", str(config))
    assert full and broken.returncode == 2 and "service.name" in broken.stderr and broken.stdout == ""


def test_installing_a_distribution_is_seen(env: dict[str, str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    env = {**env, "PYTHONPATH": str(site)}
    assert start(env)[1] is True
    assert start(env)[1] is False
    stamp = site.stat()
    (site / "newly_installed-1.0.dist-info").mkdir()
    os.utime(site, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as rsync -a or a reproducible build leaves it
    assert start(env)[1] is True


@pytest.mark.parametrize("secret", [
    {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20sekrit-token"},
    {"OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-key=sekrit-token"},
    {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:sekrit-token@127.0.0.1:4318"},
    {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/?key=sekrit-token"},
    {"config": "exporter:\n  protocol: grpc\n  headers:\n    x-key: sekrit-token\n"},
    {"config": "exporter:\n  protocol: grpc\n  headers:\n    x-key: ${KEY}\n", "KEY": "sekrit-token"},
    {"config": "disabled: true\nexporter:\n  headers:\n    authorization: Bearer sekrit-token\n"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:sekrit-token@127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"},
    {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://user:sekrit-token@127.0.0.1:4318"},
    {"flags": "--exporter-endpoint=https://u:sekrit-token@collector:4318"},
])
def test_nothing_is_written_when_a_secret_is_involved(env: dict[str, str], tmp_path: Path, secret: dict[str, str]) -> None:
    head: list[str] = []
    if "config" in secret:
        (tmp_path / "c.yaml").write_text(secret.pop("config"))
        head = ["--config", str(tmp_path / "c.yaml")]
    if "flags" in secret:
        head = [secret.pop("flags")]
    env = {**env, **secret}
    for _ in range(2):
        done, full = start(env, *head, program="pass")
        assert done.returncode == 0 and full, done.stderr
    cache = tmp_path / "cache"
    written = [path for path in cache.rglob("*") if path.is_file()] if cache.exists() else []
    assert written == []


def test_a_cache_another_user_could_write_or_a_damaged_one_is_ignored(env: dict[str, str], tmp_path: Path) -> None:
    assert start(env)[1] is True
    folder = tmp_path / "cache" / "otel-celery-launch"
    (entry,) = folder.glob("*.json")
    assert entry.stat().st_mode & 0o077 == 0 and folder.stat().st_mode & 0o077 == 0
    os.chmod(folder, 0o777)
    assert start(env)[1] is True
    os.chmod(folder, 0o700)
    assert start(env)[1] is False
    entry.write_text(json.dumps({"plan": {"resource": 1}}))
    done, full = start(env)
    assert full and done.returncode == 0 and done.stdout == "first\n"
    entry.write_bytes(b"\xff" * 100)
    done, full = start(env)
    assert full and done.returncode == 0 and done.stdout == "first\n"


def test_what_validation_checked_outside_the_key_is_checked_again(env: dict[str, str], tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not checked further\n")
    head = ["--exporter-endpoint", "https://127.0.0.1:4317", "--exporter-certificate", str(bundle)]
    env = {**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert start(env, *head, program="pass")[1] is True
    assert start(env, *head, program="pass")[1] is False
    bundle.unlink()
    gone, full = start(env, *head, program="print('ran')")
    assert full and gone.returncode == 2 and "must be an existing file" in gone.stderr and "ran" not in gone.stdout


def test_a_config_swapped_for_a_pipe_or_a_device_is_refused_not_read(env: dict[str, str], tmp_path: Path) -> None:
    real, link, pipe = tmp_path / "real.yaml", tmp_path / "otel.yaml", tmp_path / "pipe"
    real.write_text("service:\n  name: from-file\n")
    link.symlink_to(real)
    os.mkfifo(pipe)
    assert start(env, "--config", str(link))[0].stdout == "first\n"  # the variable wins over the file
    assert start(env, "--config", str(link))[1] is False
    for target in (pipe, Path("/dev/zero")):
        link.unlink()
        link.symlink_to(target)
        done, full = start(env, "--config", str(link))
        assert full and done.returncode == 2 and "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_a_cache_directory_that_is_a_link_is_not_used(env: dict[str, str], tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "otel-celery-launch").symlink_to(elsewhere)
    for _ in range(2):
        assert start(env)[1] is True
    assert list(elsewhere.iterdir()) == []
