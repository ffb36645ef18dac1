"""Settings from YAML, environment and flags, checked through the real launcher and real spans."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_celery_launch.settings.errors import SettingsError
from otel_celery_launch.settings.load import load_settings
from otel_celery_launch.settings.resolve import build_plan
from tests.otlp_receiver import Receiver
from tests.processes import clean_env, run_launcher

ONE_SPAN = "from opentelemetry import trace\nwith trace.get_tracer('t').start_as_current_span('work'): pass\n"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "otel.yaml"
    path.write_text(text)
    return path


def test_yaml_only(tmp_path: Path, receiver: Receiver) -> None:
    config = _yaml(tmp_path, f"""
service: {{name: yaml-svc, version: "1.4.2", environment: test, attributes: {{team: payments}}}}
exporter:
  protocol: http/protobuf
  endpoint: http://127.0.0.1:{receiver.http_port}
  headers: {{x-api-key: "${{API_KEY}}", x-tenant: "${{TENANT:-acme}}"}}
  timeout: 5s
  compression: gzip
batch: {{schedule_delay: 100ms}}
""")
    result = run_launcher(["--config", str(config), "--", "python", "-c", ONE_SPAN], clean_env(API_KEY="s3cret-value"))
    assert result.returncode == 0, result.stderr
    (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    assert (span.service, span.protocol) == ("yaml-svc", "http/protobuf")
    assert span.attributes["resource:service.version"] == "1.4.2"
    assert span.attributes["resource:deployment.environment.name"] == "test"
    assert span.attributes["resource:team"] == "payments"
    assert (span.headers["x-api-key"], span.headers["x-tenant"]) == ("s3cret-value", "acme")


def test_env_only_with_headers_and_per_signal_endpoint(receiver: Receiver) -> None:
    env = clean_env(
        OTEL_SERVICE_NAME="env-svc",
        OTEL_RESOURCE_ATTRIBUTES="team=pay%20ments",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{receiver.grpc_port}",
        OTEL_EXPORTER_OTLP_HEADERS="x-api-key=abc%3D",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    result = run_launcher(["--", "python", "-c", ONE_SPAN], env)
    assert result.returncode == 0, result.stderr
    (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    assert (span.service, span.protocol, span.attributes["resource:team"]) == ("env-svc", "grpc", "pay ments")
    assert span.headers["x-api-key"] == "abc="


def test_config_file_named_by_environment_variable(tmp_path: Path) -> None:
    config = _yaml(tmp_path, "service: {name: from-file}\n")
    result = run_launcher(["check"], clean_env(OTEL_CELERY_LAUNCH_CONFIG=str(config)))
    assert result.returncode == 0, result.stderr
    assert f"config file: {config}" in result.stdout
    assert _row(result.stdout, "service.name") == ["from-file", "file", str(config)]


def _row(report: str, key: str) -> list[str]:
    return next(line.split()[1:] for line in report.splitlines() if line.split()[:1] == [key])


def test_flags_beat_environment_beat_yaml(tmp_path: Path, receiver: Receiver) -> None:
    config = _yaml(tmp_path, "service: {name: from-yaml, version: v-yaml, environment: e-yaml}\nbatch: {schedule_delay: 100ms}\n")
    env = clean_env(OTEL_SERVICE_NAME="from-env", OTEL_RESOURCE_ATTRIBUTES="team=env-team", **receiver.env("grpc"))
    args = ["--config", str(config), "--service-name", "from-flag", "--service-version", "v-flag"]

    report = run_launcher(["check", *args], env).stdout
    assert _row(report, "service.name") == ["from-flag", "flag", "--service-name"]
    assert _row(report, "service.version") == ["v-flag", "flag", "--service-version"]
    assert _row(report, "service.environment") == ["e-yaml", "file", str(config)]
    assert _row(report, "service.attributes.team") == ["env-team", "env", "OTEL_RESOURCE_ATTRIBUTES"]
    assert _row(report, "sampler.type") == ["parentbased_always_on", "default"]

    assert run_launcher([*args, "--", "python", "-c", ONE_SPAN], env).returncode == 0
    assert run_launcher(["--config", str(config), "--", "python", "-c", ONE_SPAN], env).returncode == 0
    spans = receiver.wait_for(lambda spans: len(spans) == 2)
    assert sorted(span.service for span in spans) == ["from-env", "from-flag"]


def test_check_never_prints_secrets(tmp_path: Path) -> None:
    config = _yaml(tmp_path, 'exporter: {protocol: http/protobuf, headers: {x-api-key: "${API_KEY}"}, endpoint: "https://user:hunter2@collector:4318"}\n')
    result = run_launcher(["check", "--config", str(config)], clean_env(API_KEY="s3cret-value", OTEL_EXPORTER_OTLP_TRACES_HEADERS="authorization=Bearer%20tok"))
    assert result.returncode == 0, result.stderr
    for secret in ("s3cret-value", "hunter2", "Bearer", "tok"):
        assert secret not in result.stdout + result.stderr
    assert _row(result.stdout, "exporter.headers.x-api-key")[0] == "****"


def test_unset_placeholder_without_default_is_an_error(tmp_path: Path) -> None:
    config = _yaml(tmp_path, 'exporter: {headers: {x-api-key: "${API_KEY}"}}\n')
    result = run_launcher(["check", "--config", str(config)], clean_env())
    assert result.returncode == 2
    assert "exporter.headers.x-api-key" in result.stderr and "${API_KEY} is not set" in result.stderr


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://localhost:4317"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http://localhost:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/otlp/"}, "http://c:4318/otlp/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:9/custom"}, "http://c:9/custom"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:4317"}, "https://t:4317"),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, None),
    ],
)
def test_endpoint_rules_follow_the_spec(env: dict[str, str], url: str | None) -> None:
    assert build_plan(load_settings(env, {}).settings).exporter.endpoint == url


def test_otel_durations_are_milliseconds_and_insecure_follows_the_scheme() -> None:
    plan = build_plan(load_settings({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"}, {}).settings)
    assert (plan.exporter.timeout, plan.batch.schedule_delay, plan.exporter.insecure) == (2.5, 0.2, False)


def test_all_problems_are_reported_at_once() -> None:
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grcp", "OTEL_SDK_DISABLED": "ture", "OTEL_TRACES_SAMPLER_ARG": "2"}
    with pytest.raises(SettingsError) as raised:
        load_settings(env, {("exporter", "endpoint"): "localhost:4317"})
    messages = [str(problem) for problem in raised.value.problems]
    assert len(messages) == 4, messages
    assert any(m.startswith("exporter.endpoint (flag --exporter-endpoint)") and "http://localhost:4317" in m for m in messages)
    assert any(m.startswith("disabled (env OTEL_SDK_DISABLED)") and "'ture'" in m for m in messages)


CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.mark.parametrize("name", ["worker.yaml", "producer.yaml"])
def test_shipped_config_files_are_valid(name: str) -> None:
    result = run_launcher(["check", "--config", str(CONFIGS / name)], clean_env())
    assert result.returncode == 0, result.stderr


def test_shipped_env_example_is_valid() -> None:
    lines = (CONFIGS / "env-only.env").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    result = run_launcher(["check"], clean_env(**env))
    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "service.name") == ["payments-worker", "env", "OTEL_SERVICE_NAME"]
