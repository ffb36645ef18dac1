"""Settings that cannot be misread: hostile files, ambiguous durations, precedence, and a CLI that helps."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import LAUNCHER, clean_env, run_launcher

MEMORY_LIMIT = 1 << 30  # the launcher's whole address space, hostile input or not


def bounded_launcher(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """The launcher under an address-space limit, set by the shell (a preexec_fn would run Python
    between fork and exec in this process, whose gRPC receiver threads do not survive that)."""
    started = time.monotonic()
    limited = ["bash", "-c", f'ulimit -v {MEMORY_LIMIT // 1024} && exec "$@"', "bounded", LAUNCHER, *args]
    result = subprocess.run(limited, env=env, capture_output=True, text=True, timeout=30)
    return result, time.monotonic() - started


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("otel-celery-launch: error: ") for line in lines), lines[:5]
    assert "Traceback" not in result.stderr
    assert any(all(word in line for word in words) for line in lines), lines


def hostile_files(tmp_path: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(98 + n)}: &{chr(98 + n)} [{','.join(['*' + chr(97 + n)] * 9)}]" for n in range(8)]
    bomb.write_text("\n".join(lines) + "\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("service:\n" + "".join("  " * depth + "k:\n" for depth in range(1, 500)))
    flow = tmp_path / "flow.yaml"
    flow.write_text("service: " + "[" * 500 + "]" * 500 + "\n")
    big = tmp_path / "big.yaml"
    big.write_text("service: {name: '" + "x" * (20 << 20) + "'}\n")
    duplicate = tmp_path / "duplicate.yaml"
    duplicate.write_text("exporter:\n  protocol: grpc\n  timeout: 5s\n  protocol: http/protobuf\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    digits = tmp_path / "digits.yaml"
    digits.write_text("batch: {max_queue_size: " + "9" * 5000 + "}\n")
    many = tmp_path / "many.yaml"
    many.write_text("".join(f"bogus{n}: 1\n" for n in range(20000)))
    return {
        "5000 digits": (digits, ("batch.max_queue_size (file", "…")),
        "20000 unknown keys": (many, ("bogus19999", "unknown key")),
        "alias bomb": (bomb, ("bomb.yaml:", "aliases (*a) are not allowed")),
        "500 levels of nesting": (deep, ("deep.yaml:", "nested more than 20 levels deep")),
        "500 levels of brackets": (flow, ("flow.yaml:", "nested more than 20 levels deep")),
        "20 MB value": (big, ("big.yaml", "a config file may hold at most 1048576 bytes")),
        "duplicate key": (duplicate, ("duplicate.yaml:4:3", "key 'protocol' is given twice (first on line 2)")),
        "FIFO": (fifo, ("fifo.yaml", "is not a regular file")),
    }


@pytest.mark.parametrize("case", ["alias bomb", "500 levels of nesting", "500 levels of brackets", "20 MB value", "duplicate key", "FIFO",
                                  "5000 digits", "20000 unknown keys"])
def test_hostile_files_are_refused_quickly_with_bounded_memory(case: str, tmp_path: Path) -> None:
    path, words = hostile_files(tmp_path)[case]
    marker = tmp_path / "ran"
    for args in (["--config", str(path), "--", "python", "-c", f"open({str(marker)!r}, 'w')"], ["check", "--config", str(path)]):
        result, took = bounded_launcher(args, clean_env())
        refused(result, *words)
        assert took < 10, f"took {took:.1f}s"  # about 0.3 s on a quiet machine; the margin is for a loaded one
    assert not marker.exists()


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("file", "schedule_delay: 5000", ("batch.schedule_delay (file", "5000 has no unit: write 5000s for 5000 seconds or 5000ms for 5000 milliseconds")),
        ("file", "exit_timeout: .nan", ("batch.exit_timeout (file", "must be a duration with a unit", "(got '.nan')")),
        ("file", "export_timeout: .inf", ("batch.export_timeout (file", "must be a duration with a unit", "(got '.inf')")),
        ("file", "export_timeout: 100000000000000000000h", ("batch.export_timeout", "at most 1h")),
        ("file", "max_queue_size: 100000000000000000000000000", ("batch.max_queue_size", "less than or equal to 1000000")),
        ("file", "max_export_batch_size: true", ("batch.max_export_batch_size", "must be a number, not true or false")),
        ("file", "max_queue_size: 1:00:00", ("batch.max_queue_size", "'1:00:00'")),
        ("flag", "--batch-exit-timeout=2000", ("batch.exit_timeout (flag --batch-exit-timeout)", "2000 has no unit")),
        ("env", "OTEL_CELERY_LAUNCH_EXIT_TIMEOUT=nan", ("batch.exit_timeout (env OTEL_CELERY_LAUNCH_EXIT_TIMEOUT)", "positive, finite number of milliseconds")),
        ("env", "OTEL_BSP_EXPORT_TIMEOUT=-5", ("batch.export_timeout (env OTEL_BSP_EXPORT_TIMEOUT)", "positive, finite number of milliseconds")),
        ("env", "OTEL_BSP_SCHEDULE_DELAY=5s", ("batch.schedule_delay (env OTEL_BSP_SCHEDULE_DELAY)", "number of milliseconds")),
    ],
    ids=["bare number in the file", "nan", "inf", "10^20 hours", "1e26 spans", "a boolean for a number", "base 60", "bare number in a flag",
         "nan in env", "negative in env", "unit in env"],
)
def test_ambiguous_or_impossible_durations_and_sizes_are_refused(where: str, value: str, words: tuple[str, ...], tmp_path: Path) -> None:
    env, args = clean_env(), []
    if where == "file":
        (tmp_path / "otel.yaml").write_text(f"batch:\n  {value}\n")
        args = ["--config", str(tmp_path / "otel.yaml")]
    elif where == "flag":
        args = [value]
    else:
        name, _, text = value.partition("=")
        env[name] = text
    for command in ([*args, "--", "python", "-c", "pass"], ["check", *args]):
        refused(run_launcher(command, env), *words)


def test_each_source_has_one_duration_rule_and_check_shows_units(tmp_path: Path) -> None:
    (tmp_path / "otel.yaml").write_text("batch: {schedule_delay: 500ms, export_timeout: 2m}\n")
    env = clean_env(OTEL_CELERY_LAUNCH_EXIT_TIMEOUT="2000.0", OTEL_EXPORTER_OTLP_TIMEOUT="1500")
    result = run_launcher(["check", "--json", "--config", str(tmp_path / "otel.yaml")], env)
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row["value"] for row in json.loads(result.stdout)["settings"]}
    assert (rows["batch.exit_timeout"], rows["exporter.timeout"]) == ("2s", "1500ms"), "milliseconds in the environment, decimals too"
    assert (rows["batch.schedule_delay"], rows["batch.export_timeout"]) == ("500ms", "2m")
    text = run_launcher(["check", "--config", str(tmp_path / "otel.yaml")], env).stdout
    assert any(line.split()[:2] == ["batch.exit_timeout", "2s"] for line in text.splitlines()), text


def test_a_bad_value_in_the_file_is_an_error_even_where_a_variable_overrides_it(tmp_path: Path) -> None:
    (tmp_path / "otel.yaml").write_text("exporter: {protocol: grcp}\n")
    env = clean_env(OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    for command in (["--config", str(tmp_path / "otel.yaml"), "--", "python", "-c", "pass"], ["check", "--config", str(tmp_path / "otel.yaml")]):
        refused(run_launcher(command, env), "exporter.protocol (file", "'grcp'")


@pytest.mark.parametrize("word", ["yes", "on", "TRUE", "no", "off", "False"])
def test_booleans_take_the_same_words_in_every_source(word: str, tmp_path: Path) -> None:
    expected = "true" if word.lower() in ("yes", "on", "true") else "false"
    (tmp_path / "otel.yaml").write_text(f"disabled: {word}\n")
    for args, env in ((["--config", str(tmp_path / "otel.yaml")], clean_env()), ([], clean_env(OTEL_SDK_DISABLED=word)), ([f"--disabled={word}"], clean_env())):
        result = run_launcher(["check", "--json", *args], env)
        assert result.returncode == 0, result.stderr
        rows = {row["key"]: row["value"] for row in json.loads(result.stdout)["settings"]}
        assert rows["disabled"] == expected, (args, env.get("OTEL_SDK_DISABLED"))


def test_a_flag_that_enables_wins_over_the_variable_in_the_child_too(receiver: Receiver) -> None:
    env = clean_env(OTEL_SDK_DISABLED="true", **receiver.env("grpc"))
    check = run_launcher(["--disabled", "false", "check"], env)
    assert any(line.split()[:2] == ["disabled", "false"] for line in check.stdout.splitlines()), check.stdout
    code = "from opentelemetry import trace\nwith trace.get_tracer('t').start_as_current_span('enabled') as s: print(s.is_recording())"
    result = run_launcher(["--disabled", "false", "--", "python", "-c", code], env)
    assert result.returncode == 0 and result.stdout == "True\n", result.stderr
    receiver.wait_for(lambda spans: any(s.name == "enabled" for s in spans))


def test_the_cli_helps() -> None:
    env = clean_env()
    switch = run_launcher(["--disabled", "--exporter-insecure", "check"], env)
    assert switch.returncode == 0 and any(line.split()[:3] == ["disabled", "true", "flag"] for line in switch.stdout.splitlines()), switch.stderr
    assert any(line.split()[:3] == ["exporter.insecure", "true", "flag"] for line in switch.stdout.splitlines()), switch.stdout
    typo = run_launcher(["--exporter-endpont", "http://c:4317", "--", "true"], env)
    assert typo.returncode == 2 and "did you mean --exporter-endpoint?" in typo.stderr
    forgotten = run_launcher(["celery", "-A", "tasks", "worker"], env)
    assert forgotten.returncode == 2 and "put the command after --, as in  otel-celery-launch -- celery -A tasks worker" in forgotten.stderr
    before = run_launcher(["--service-name", "svc", "check"], env)
    assert before.returncode == 0 and any(line.split()[:2] == ["service.name", "svc"] for line in before.stdout.splitlines())
    demo = run_launcher(["demo", "--help"], env, timeout=10)
    assert demo.returncode == 0 and demo.stdout.startswith("usage: otel-celery-launch demo") and "embedded collector at" not in demo.stdout
    schema = run_launcher(["schema"], env)
    assert not any(mark in schema.stdout for mark in (":func:", ":class:", ":mod:", "``")), "no Sphinx markup"


def test_a_closed_pipe_is_no_error() -> None:
    result = subprocess.run(f"{LAUNCHER} check --json | head -c 1", shell=True, env=clean_env(), capture_output=True, text=True, timeout=30)
    assert result.stdout == "{" and "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_disabled_reaches_the_programs_own_sdk() -> None:
    code = "import os; print(os.environ.get('OTEL_SDK_DISABLED'))"
    result = run_launcher(["--disabled", "--", "python", "-c", code], clean_env(OTEL_SDK_DISABLED="false"))
    assert result.returncode == 0 and result.stdout == "true\n", result.stderr


def test_text_that_is_not_utf8_is_refused() -> None:
    for args, env in ((["check"], clean_env(OTEL_SERVICE_NAME="svc\udcff")), (["check", "--service-name", "svc\udcff"], clean_env())):
        refused(run_launcher(args, env), "service.name", "is not valid UTF-8 text")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("OTEL_METRIC_EXPORT_INTERVAL", "0.001", ("metrics.export_interval (env OTEL_METRIC_EXPORT_INTERVAL)", "at least 1ms")),
        ("OTEL_BSP_SCHEDULE_DELAY", "0.5", ("batch.schedule_delay", "at least 1ms")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://bad host:4317", ("exporter.endpoint", "neither a name", "nor an IP address")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:0", ("exporter.endpoint", "port 0")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://coll\u00e9ctor:4317", ("exporter.endpoint", "neither a name")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1", ("exporter.endpoint", "invalid IPv6 URL")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1]x:4317", ("exporter.endpoint", "neither a name")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://" + "a" * 64 + ".com:4317", ("exporter.endpoint", "neither a name")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://1.2.3.999:4317", ("exporter.endpoint", "neither a name")),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://h:4318/" + "a" * 100_000, ("exporter.traces_endpoint", "longer than 2048")),
        ("OTEL_SERVICE_NAME", "a" * 130_000, ("service.name (env OTEL_SERVICE_NAME)", "at most 1024 characters")),
        ("OTEL_RESOURCE_ATTRIBUTES", "k=" + "%C3%A9" * 20_000, ("service.attributes", "at most 65536 fit")),
    ],
    ids=["1 us interval", "0.5 ms delay", "space in host", "port 0", "non-ascii host", "unbalanced bracket", "junk after the bracket",
         "64-character label", "IPv4 out of range", "100k path", "130k service name", "attributes that grow as JSON"],
)
def test_values_that_would_spin_fail_or_not_fit_are_refused_before_exec(variable: str, value: str, words: tuple[str, ...]) -> None:
    for command in (["--", "python", "-c", "print('ran')"], ["check"]):
        result = run_launcher(command, clean_env(**{variable: value}))
        refused(result, *words)
        assert "ran" not in result.stdout


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4317", "http://[::1]:4317", "http://otel_collector.local:4317", "https://collector.example.com."])
def test_ordinary_hosts_pass(endpoint: str) -> None:
    assert run_launcher(["check"], clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)).returncode == 0


def test_an_empty_config_flag_is_an_error_not_no_file() -> None:
    for command in (["--config", "", "--", "python", "-c", "print('ran')"], ["check", "--config", ""]):
        result = run_launcher(command, clean_env())
        refused(result, "--config", "is empty")
        assert "ran" not in result.stdout


def test_a_malformed_endpoint_the_launcher_does_not_read_is_no_crash() -> None:
    """Only exporter.endpoint and the traces one are settings; the others the child gets without what may be a credential."""
    result = run_launcher(["--", "python", "-c", "import os; print(repr(os.environ.get('OTEL_EXPORTER_OTLP_LOGS_ENDPOINT')))"],
                          clean_env(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://[::1"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "''\n", "")
