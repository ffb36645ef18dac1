"""Bad input is refused before the command runs: exit 2, one line per problem, no traceback, no secret."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_celery_launch.cli import main
from otel_celery_launch.settings.model import leaves
from tests.processes import clean_env, run_launcher

SECRET = "s3cret-token-value"

# (case id, YAML file text or None, environment, the words the message must hold)
CASES = [
    ("unknown key", "exporter: {protocl: grpc}\n", {}, ["exporter.protocl", "did you mean 'protocol'"]),
    ("unknown section", "exporters: {protocol: grpc}\n", {}, ["exporters", "did you mean 'exporter'"]),
    ("protocol typo", "exporter: {protocol: grcp}\n", {}, ["exporter.protocol", "'grcp'", "grpc", "http/protobuf"]),
    ("protocol env", None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, ["OTEL_EXPORTER_OTLP_PROTOCOL", "'http/json'"]),
    ("exporter name", None, {"OTEL_TRACES_EXPORTER": "jaeger"}, ["OTEL_TRACES_EXPORTER", "'jaeger'", "otlp, console, none"]),
    ("propagator not installed", "propagators: [tracecontext, b3]\n", {}, ["propagators", "'b3'", "tracecontext, baggage"]),
    ("sampler", None, {"OTEL_TRACES_SAMPLER": "sometimes"}, ["sampler.type", "OTEL_TRACES_SAMPLER", "'sometimes'"]),
    ("compression", "exporter: {compression: zstd}\n", {}, ["exporter.compression", "'zstd'", "gzip"]),
    ("log format", "logs: {format: xml}\n", {}, ["logs.format", "'xml'", "json"]),
    ("endpoint without scheme", "exporter: {endpoint: 'localhost:4317'}\n", {}, ["exporter.endpoint", "try http://localhost:4317"]),
    ("endpoint scheme", None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://collector:4317"}, ["OTEL_EXPORTER_OTLP_ENDPOINT", "http:// or https://"]),
    ("endpoint host", "exporter: {endpoint: 'http://:4317'}\n", {}, ["exporter.endpoint", "must name a host"]),
    ("endpoint port", "exporter: {endpoint: 'http://collector:99999'}\n", {}, ["exporter.endpoint", "port"]),
    ("ratio", "sampler: {ratio: 1.5}\n", {}, ["sampler.ratio", "1.5", "less than or equal to 1"]),
    ("negative duration", "batch: {schedule_delay: -5s}\n", {}, ["batch.schedule_delay", "duration"]),
    ("word for a duration", None, {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"}, ["exporter.timeout", "OTEL_EXPORTER_OTLP_TIMEOUT", "'soon'"]),
    ("zero size", "batch: {max_queue_size: 0}\n", {}, ["batch.max_queue_size", "greater than 0"]),
    ("bad boolean yaml", "exporter: {insecure: ture}\n", {}, ["exporter.insecure", "'ture'", "true or false"]),
    ("bad boolean env", None, {"OTEL_SDK_DISABLED": "maybe"}, ["disabled", "OTEL_SDK_DISABLED", "'maybe'", "true or false"]),
    ("header string", None, {"OTEL_EXPORTER_OTLP_HEADERS": f"authorization{SECRET}"}, ["OTEL_EXPORTER_OTLP_HEADERS", "entry 1 is not key=value"]),
    ("certificate missing", "exporter: {certificate: /no/such/ca.pem}\n", {}, ["exporter.certificate", "must be an existing file"]),
    ("certificate directory", "exporter: {certificate: /tmp}\n", {}, ["exporter.certificate", "it is a directory"]),
    ("unset variable", "exporter: {headers: {x-key: '${NO_SUCH_VAR}'}}\n", {}, ["exporter.headers.x-key", "${NO_SUCH_VAR} is not set"]),
    ("yaml syntax", "exporter:\n  protocol: [grpc\n", {}, ["otel.yaml:", "YAML syntax error"]),
    ("root not a mapping", "- grpc\n- http\n", {}, ["must be a mapping of settings at the top level, not a list"]),
    ("binary file", "\x00\x01\x02\xff\xfe", {}, ["otel.yaml"]),
    ("secret in a bad URL", f"exporter: {{endpoint: 'ftp://user:{SECRET}@collector:4317'}}\n", {}, ["exporter.endpoint", "****@collector"]),
]


@pytest.mark.parametrize(("yaml_text", "env", "words"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_refused_before_the_command_runs(yaml_text: str | None, env: dict[str, str], words: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "the command ran"
    args = ["--", "python", "-c", f"open({str(marker)!r}, 'w')"]
    if yaml_text is not None:
        config = tmp_path / "otel.yaml"
        config.write_bytes(yaml_text.encode("latin-1"))
        args = ["--config", str(config), *args]
    for command in (args, ["check", *args[: args.index("--")]]):
        result = run_launcher(command, clean_env(**env))
        assert result.returncode == 2, result.stderr
        assert not marker.exists()
        assert "Traceback" not in result.stderr and SECRET not in result.stderr + result.stdout
        lines = result.stderr.splitlines()
        assert all(line.startswith("otel-celery-launch: error: ") for line in lines), lines
        assert any(all(word in line for word in words) for line in lines), lines


@pytest.mark.parametrize("problem", ["config file not found", "is a directory, not a config file"])
def test_a_missing_file_or_a_directory_is_named(problem: str, tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml" if "not found" in problem else tmp_path
    result = run_launcher(["check", "--config", str(path)], clean_env())
    assert result.returncode == 2 and f"{path}: {problem}" in result.stderr


@pytest.mark.parametrize(
    ("flags", "warning"),
    [
        (["--exporter-endpoint", "http://c:4318"], "port 4318 is where collectors speak http/protobuf"),
        (["--exporter-protocol", "http/protobuf", "--exporter-endpoint", "http://c:4317"], "port 4317 is where collectors speak grpc"),
        (["--exporter-endpoint", "https://c:4317", "--exporter-insecure", "true"], "an https:// endpoint with exporter.insecure true"),
        (["--exporter-endpoint", "http://c:4317/v1/traces"], "gRPC ignores the path"),
    ],
)
def test_likely_mistakes_warn_and_the_command_still_runs(flags: list[str], warning: str) -> None:
    result = run_launcher([*flags, "--exporter-timeout", "100ms", "--", "python", "-c", "print('ran')"], clean_env())
    assert result.returncode == 0 and result.stdout == "ran\n", result.stderr
    assert f"otel-celery-launch: warning: exporter.endpoint: {warning}" in result.stderr
    report = json.loads(run_launcher(["check", "--json", *flags], clean_env()).stdout)
    assert any(warning in line for line in report["warnings"])


def test_a_python_outside_the_launchers_environment_gets_one_warning(tmp_path: Path) -> None:
    foreign = tmp_path / "python3"
    foreign.symlink_to(os.path.realpath("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.sys.base_prefix + "/bin/python3"))
    result = run_launcher(["--", str(foreign), "-c", "print('ran')"], clean_env())
    assert result.returncode == 0 and result.stdout == "ran\n"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and "not the Python this launcher is installed in" in warnings[0], warnings


def test_check_json_has_every_key_with_its_origin() -> None:
    result = run_launcher(["check", "--json", "--service-name", "svc"], clean_env(OTEL_EXPORTER_OTLP_HEADERS=f"k={SECRET}"))
    report = json.loads(result.stdout)
    rows = {row["key"]: row for row in report["settings"]}
    assert rows["service.name"] == {"key": "service.name", "value": "svc", "origin": "flag --service-name"}
    assert rows["exporter.headers.k"]["value"] == "****" and SECRET not in result.stdout
    assert {leaf.dotted for leaf in leaves() if leaf.shape != "mapping"} <= set(rows)


def test_schema_describes_every_key_and_forbids_others() -> None:
    schema = json.loads(run_launcher(["schema"], clean_env()).stdout)
    assert schema["additionalProperties"] is False
    for leaf in leaves():
        node = schema
        for key in leaf.path[:-1]:
            node = schema["$defs"][node["properties"][key]["$ref"].rsplit("/", 1)[1]]
            assert node["additionalProperties"] is False
        assert leaf.path[-1] in node["properties"]


# Property-based: whatever YAML and variables arrive, the launcher validates or refuses, never crashes.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=20))
_keys = st.sampled_from(sorted({part for leaf in leaves() for part in leaf.path} | {"bogus", "v1"}))
_documents = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)), max_leaves=12)
_variables = st.dictionaries(
    st.sampled_from(["OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
                     "OTEL_TRACES_SAMPLER_ARG", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_PROPAGATORS",
                     "OTEL_TRACES_EXPORTER", "OTEL_CELERY_LAUNCH_LOGS_FORMAT"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    max_size=4,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_documents, variables=_variables)
def test_generated_input_is_accepted_or_refused_cleanly(document: object, variables: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "generated.yaml"
    config.write_text(yaml.safe_dump(document))
    check_cleanly(config, variables, monkeypatch, capsys)


def check_cleanly(config: Path, variables: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``check`` in this process: exit 0, or exit 2 with nothing but error lines; never an exception."""
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        status = main(["check", "--config", str(config)])
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    assert status in (0, 2)
    if status == 2:
        assert err and all(line.startswith("otel-celery-launch: error: ") for line in err.splitlines()), err


# Property-based, hostile: raw YAML text that may hold aliases, deep nesting, duplicate keys, tabs or
# bytes that are not UTF-8; each example must end in exit 0 or 2 within the deadline, and all of them
# together within a memory bound.
_fragments = st.sampled_from([
    "a: &x [1, 2]\n", "b: *x\n", "c: [*x, *x, *x]\n", "[" * 40 + "]" * 40 + "\n", "exporter:\n  protocol: grpc\n  protocol: grpc\n",
    "batch: {schedule_delay: 5000}\n", "batch: {exit_timeout: .nan}\n", "\t- x\n", "? [a, b]\n: c\n", "service: {name: !!python/object:os.system x}\n",
    "disabled: yes\n", "exporter: {headers: {'Authorization': 'Bearer%20x'}}\n", "%YAML 1.1\n---\n", "--- \n...\n",
])
_raw_documents = st.lists(st.one_of(_fragments, st.binary(max_size=40).map(lambda b: b.decode("latin-1"))), max_size=6).map("".join)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_raw_documents)
def test_hostile_text_is_accepted_or_refused_cleanly_and_quickly(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = tmp_path / "hostile.yaml"
    config.write_bytes(text.encode("latin-1"))
    check_cleanly(config, {}, monkeypatch, capsys)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024, "more than 200 MiB for one document"
