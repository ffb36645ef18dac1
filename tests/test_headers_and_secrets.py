"""Headers as vendors document them reach the collector; no secret is ever printed or inherited; failures name their cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import clean_env, run_launcher

SECRET = "s3cret-token-value"
PROTOCOLS = ["grpc", "http/protobuf"]
ONE_SPAN = "from opentelemetry import trace\nwith trace.get_tracer('t').start_as_current_span('one'): pass\n"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("source", ["env", "file"])
def test_vendor_headers_arrive_as_written(protocol: str, source: str, tmp_path: Path, receiver: Receiver) -> None:
    env = clean_env(**receiver.env(protocol))
    args = ["--", "python", "-c", ONE_SPAN]
    if source == "env":
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer%20{SECRET},X-Scope-OrgID=tenant-1"
    else:
        (tmp_path / "otel.yaml").write_text(f"exporter: {{headers: {{Authorization: 'Bearer {SECRET}', X-Scope-OrgID: tenant-1}}}}\n")
        args = ["--config", str(tmp_path / "otel.yaml"), *args]
    result = run_launcher(args, env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    assert (span.headers["authorization"], span.headers["x-scope-orgid"]) == (f"Bearer {SECRET}", "tenant-1")


BAD_HEADERS = [
    ("space in a name", "bad%20name=v", "'bad name'"),
    ("empty name", "=v", "entry 1 is not key=value"),
    ("pseudo-header", ":authority=v", "':authority'"),
    ("non-ASCII name", "cl%C3%A9=v", "'clé'"),
    ("line break in a value", f"x-key={SECRET}%0Aevil", "printable ASCII"),
    ("NUL in a value", f"x-key={SECRET}%00", "printable ASCII"),
    ("invalid UTF-8", f"x-key={SECRET}%ff", "does not percent-decode to UTF-8"),
    ("non-ASCII value", f"x-key={SECRET}%C3%A9", "printable ASCII"),
    ("a header the exporter sets", f"content-type={SECRET}", "'content-type'"),
    ("gRPC reserved name", f"grpc-timeout={SECRET}", "exporter.headers.grpc-timeout (env OTEL_EXPORTER_OTLP_HEADERS): gRPC reserves"),
]


@pytest.mark.parametrize(("headers", "words"), [case[1:] for case in BAD_HEADERS], ids=[case[0] for case in BAD_HEADERS])
def test_headers_no_transport_carries_are_refused_naming_the_key_not_the_value(headers: str, words: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    env = clean_env(OTEL_EXPORTER_OTLP_HEADERS=headers)
    for args in (["--", "python", "-c", f"open({str(marker)!r}, 'w')"], ["check"]):
        result = run_launcher(args, env)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "OTEL_EXPORTER_OTLP_HEADERS" in result.stderr, result.stderr
        assert SECRET not in result.stderr + result.stdout and "Traceback" not in result.stderr
        assert all(line.startswith("otel-celery-launch: error:") for line in result.stderr.splitlines())
    assert not marker.exists()


def test_a_value_the_sdk_cannot_parse_is_sent_and_never_printed(receiver: Receiver) -> None:
    """The SDK's HTTP exporter parses OTEL_EXPORTER_OTLP_HEADERS again, and printed such a value whole."""
    value = f'"{SECRET};\\x'
    env = clean_env(OTEL_EXPORTER_OTLP_HEADERS=f"x-key={value}", **receiver.env("http/protobuf"))
    result = run_launcher(["--", "python", "-c", ONE_SPAN], env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    assert span.headers["x-key"] == value


PRINT_ENVIRONMENT = """
import os, subprocess, sys
from opentelemetry import trace
with trace.get_tracer('t').start_as_current_span('one'): pass
print(open('/proc/self/environ', 'rb').read().decode('latin-1').replace('\\0', '\\n'))
print(subprocess.run(['env'], capture_output=True, text=True).stdout)
print(subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.listdir("/proc/self/fd")), dict(os.environ))'], capture_output=True, text=True).stdout)
"""


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_header_values_from_the_file_never_reach_the_environment(protocol: str, tmp_path: Path, receiver: Receiver) -> None:
    endpoint = f"http://127.0.0.1:{receiver.grpc_port}" if protocol == "grpc" else f"http://127.0.0.1:{receiver.http_port}/v1/traces?tenant={SECRET}"
    (tmp_path / "otel.yaml").write_text(f"exporter: {{headers: {{x-api-key: {SECRET}}}, traces_endpoint: '{endpoint}'}}\n")
    result = run_launcher(["--config", str(tmp_path / "otel.yaml"), "--", "python", "-c", PRINT_ENVIRONMENT], clean_env(**receiver.env(protocol)))
    assert result.returncode == 0, result.stderr
    assert "OTEL_CELERY_LAUNCH_PLAN" in result.stdout and SECRET not in result.stdout + result.stderr
    (span,) = receiver.wait_for(lambda spans: len(spans) == 1)
    assert span.headers["x-api-key"] == SECRET, "the exec'd process still has them"


@pytest.mark.parametrize(
    "endpoint",
    [f"https://user:pa/ss{SECRET}@collector:4317", f"https://user:pa ss{SECRET}@collector:4317", f"user:{SECRET}@collector:4317",
     f"http://collector:4318/v1/traces?api_key={SECRET}", f"http://user:pa?ss{SECRET}@collector:4318/v1/traces"],
    ids=["slash in password", "space in password", "no scheme", "query token", "question mark in password"],
)
def test_secrets_in_urls_are_masked_in_check_errors_and_hints(endpoint: str) -> None:
    env = clean_env(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    for args in (["check"], ["check", "--json"], ["--", "python", "-c", "pass"]):
        result = run_launcher(args, env)
        assert SECRET not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr


def test_check_warns_of_a_doubled_traces_path() -> None:
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318/v1/traces", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    result = run_launcher(["check"], env)
    assert result.returncode == 0
    assert "the path holds /v1/traces twice" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("protocol", "setup", "cause"),
    [
        ("http/protobuf", "doubled path", "has no OTLP endpoint at /v1/traces/v1/traces (HTTP 404)"),
        ("http/protobuf", "credentials", "rejected the credentials (HTTP 401)"),
        ("http/protobuf", "too large", "refused a batch as too large (HTTP 413)"),
        ("grpc", "credentials", "rejected the credentials (UNAUTHENTICATED)"),
        ("grpc", "too large", "refused a batch as too large or too many (RESOURCE_EXHAUSTED)"),
    ],
)
def test_a_failed_export_names_its_cause_and_no_secret(protocol: str, setup: str, cause: str, receiver: Receiver) -> None:
    env = clean_env(OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{SECRET}", **receiver.env(protocol))
    if setup == "doubled path":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] += "/v1/traces"
    else:
        receiver.rejecting = setup
    result = run_launcher(["--", "python", "-c", ONE_SPAN], env)
    assert result.returncode == 0, result.stderr
    assert cause in result.stderr, result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr


def test_no_secret_is_handed_to_a_python_that_skips_the_hook() -> None:
    code = "import os\nfor fd in os.listdir('/proc/self/fd'):\n    try: print(os.readlink(f'/proc/self/fd/{fd}'))\n    except OSError: pass"
    result = run_launcher(["--exporter-headers", f"authorization={SECRET}", "--", "python", "-I", "-c", code], clean_env())
    assert result.returncode == 0 and "memfd" not in result.stdout, result.stdout
    assert "-E, -I or -S skips the bootstrap" in result.stderr


def test_a_query_token_stays_out_of_the_programs_debug_logs(receiver: Receiver) -> None:
    """The program's own urllib3 debug lines showed the export's request line, query and all; the sidecar exports now."""
    code = "import logging\nlogging.basicConfig(level=logging.DEBUG)\n" + ONE_SPAN
    env = clean_env(OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{receiver.http_port}/v1/traces?token={SECRET}")
    result = run_launcher(["--", "python", "-c", code], env)
    assert result.returncode == 0, result.stderr
    receiver.wait_for(lambda spans: len(spans) == 1)
    assert SECRET not in result.stderr, result.stderr
