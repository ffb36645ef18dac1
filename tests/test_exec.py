"""The launcher becomes the command: same PID, same streams, the command's exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.processes import LAUNCHER, clean_env, run_launcher


def test_command_keeps_the_launchers_pid() -> None:
    process = subprocess.Popen([LAUNCHER, "--", "python", "-c", "import os; print(os.getpid())"],
                               env=clean_env(OTEL_TRACES_EXPORTER="none"), stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=30)
    assert int(out) == process.pid


def test_streams_and_exit_status_pass_through() -> None:
    result = run_launcher(["--", "sh", "-c", "cat; echo to-stderr >&2; exit 7"], clean_env(), input="from stdin\n")
    assert (result.returncode, result.stdout, result.stderr) == (7, "from stdin\n", "to-stderr\n")


def test_death_by_signal_is_reported_as_such() -> None:
    result = run_launcher(["--", "sh", "-c", "kill -TERM $$"], clean_env())
    assert result.returncode == -15  # no wrapper process turning it into an exit code


def test_missing_command_exits_127_naming_it() -> None:
    result = run_launcher(["--", "no-such-command-here"], clean_env())
    assert result.returncode == 127
    assert "no-such-command-here: command not found" in result.stderr


def test_non_executable_file_and_directory_exit_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    for target in (str(script), str(tmp_path)):
        result = run_launcher(["--", target], clean_env())
        assert result.returncode == 126, result.stderr
        assert target in result.stderr and result.stdout == ""


def test_no_command_is_a_usage_error() -> None:
    for args in ([], ["--"], ["--service-name", "x"]):
        result = run_launcher(args, clean_env())
        assert result.returncode == 2
        assert "no command given" in result.stderr and "Traceback" not in result.stderr


def test_invalid_settings_never_start_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    result = run_launcher(["--", "touch", str(marker)], clean_env(OTEL_EXPORTER_OTLP_PROTOCOL="grcp"))
    assert result.returncode == 2
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in result.stderr and "'grcp'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_help_and_version() -> None:
    help_text = run_launcher(["--help"], clean_env())
    assert help_text.returncode == 0 and "--exporter-endpoint" in help_text.stdout and "check" in help_text.stdout
    version = run_launcher(["--version"], clean_env())
    assert version.returncode == 0 and version.stdout.startswith("otel-celery-launch ")
    as_module = subprocess.run([sys.executable, "-m", "otel_celery_launch", "--version"], capture_output=True, text=True)
    assert as_module.returncode == 0 and as_module.stdout == version.stdout
