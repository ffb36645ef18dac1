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
    (site / "newly_installed-1.0.dist-info").mkdir()
    assert start(env)[1] is True


@pytest.mark.parametrize("secret", [
    {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20sekrit-token"},
    {"OTEL_EXPORTER_OTLP_METRICS_HEADERS": "x-key=sekrit-token"},
    {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:sekrit-token@127.0.0.1:4318"},
    {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/?key=sekrit-token"},
    {"config": "exporter:\n  protocol: grpc\n  headers:\n    x-key: sekrit-token\n"},
    {"config": "exporter:\n  protocol: grpc\n  headers:\n    x-key: ${KEY}\n", "KEY": "sekrit-token"},
])
def test_nothing_is_written_when_a_secret_is_involved(env: dict[str, str], tmp_path: Path, secret: dict[str, str]) -> None:
    head: list[str] = []
    if "config" in secret:
        (tmp_path / "c.yaml").write_text(secret.pop("config"))
        head = ["--config", str(tmp_path / "c.yaml")]
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
