"""What happens inside the launched process: the hook, laziness, chaining, failing open."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from otel_celery_launch.handoff import ENV_VAR
from otel_celery_launch.launch.environment import HOOK_DIR
from tests.otlp_receiver import Receiver
from tests.processes import clean_env, run_launcher

LOADED = "import sys; print(sorted({m.split('.')[0] + '.' + m.split('.')[1] if m.count('.') else m for m in sys.modules if m.startswith(('opentelemetry', 'pydantic', 'grpc', 'celery', 'structlog'))}))"


def test_nothing_heavy_is_imported_until_the_program_asks() -> None:
    result = run_launcher(["--", "python", "-c", LOADED], clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_child_sets_up_opentelemetry_without_pydantic(receiver: Receiver) -> None:
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.propagate import get_global_textmap\n"
        "with trace.get_tracer('t').start_as_current_span('lazy'): pass\n"
        "print(type(trace.get_tracer_provider()).__module__, sorted(get_global_textmap().fields))\n"
        + LOADED.replace("; print(", "\nprint(", 1)
    )
    result = run_launcher(["--", "python", "-c", code], clean_env(OTEL_SERVICE_NAME="lazy-svc", **receiver.env("grpc")))
    assert result.returncode == 0, result.stderr
    provider_line, modules_line = result.stdout.strip().splitlines()
    assert provider_line == "opentelemetry.sdk.trace ['baggage', 'traceparent', 'tracestate']"
    assert "pydantic" not in modules_line and "celery" not in modules_line
    (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    assert (span.name, span.service) == ("lazy", "lazy-svc")


def test_users_sitecustomize_and_pythonpath_are_kept(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.USER_SITECUSTOMIZE_RAN = True\n")
    (tmp_path / "user_module.py").write_text("VALUE = 42\n")
    code = "import builtins, user_module; from opentelemetry import trace; print(builtins.USER_SITECUSTOMIZE_RAN, user_module.VALUE, type(trace.get_tracer_provider()).__name__)"
    result = run_launcher(["--", "python", "-c", code], clean_env(PYTHONPATH=str(tmp_path), OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "42", "TracerProvider"]


def test_disabled_sdk_runs_the_command_without_the_hook() -> None:
    code = f"import os, sys; print(os.environ.get('{ENV_VAR}'), any('bootstrap' in p for p in sys.path))"
    result = run_launcher(["--", "python", "-c", code], clean_env(OTEL_SDK_DISABLED="true", **{ENV_VAR: "stale"}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "False"]


@pytest.mark.parametrize(
    ("plan", "stage"),
    [
        ({"propagators": ["no-such-propagator"], "exporter": {"protocol": "none"}}, "setting up the propagators failed"),
        ({"propagators": [], "exporter": {"protocol": "grpc"}, "sidecar": "otel-celery-launch-gone", "main_pid": 0},
         "the export sidecar cannot be reached"),
    ],
    ids=["propagator", "sidecar"],
)
def test_telemetry_failure_inside_the_child_warns_once_and_runs_on(plan: dict, stage: str) -> None:
    """Plans the launcher would refuse, handed to the hook directly, to break setup for real."""
    plan = {"resource": {}, "sampler": "always_on", "sampler_ratio": 1.0, "batch": {}, "log_level": "info", **plan}
    code = (
        "from opentelemetry import propagate, trace\n"
        "for n in range(3):\n"
        "    with trace.get_tracer('t').start_as_current_span('s'): pass\n"
        "print('user code ran')"
    )
    env = clean_env(PYTHONPATH=HOOK_DIR, **{ENV_VAR: json.dumps(plan)})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "user code ran\n", result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith(f"otel-celery-launch: warning: {stage}")
