"""Real subprocesses for the tests: the launcher, Celery workers, a private redis-server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

BIN_DIR = Path(sys.executable).parent
LAUNCHER = str(BIN_DIR / "otel-celery-launch")
SCENARIOS = Path(__file__).parent / "scenarios"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any OTEL_*/CELERY_* leaking in, with this venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CELERY_", "PYTHONPATH"))}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def poll(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def answers_ping(port: int) -> bool:
    """A Redis server (or Sentinel) listens on ``port`` and answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Output:
    """Collects a process's merged output line by line, so tests can wait on a line appearing."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        def found() -> str | None:
            return next((line for line in self.lines if text in line), None)

        try:
            return poll(found, timeout, repr(text))  # type: ignore[return-value]
        except AssertionError:
            raise AssertionError(f"{text!r} never appeared; output was:\n" + "\n".join(self.lines)) from None

    def finish(self) -> str:
        self._thread.join(timeout=10)
        return "\n".join(self.lines)


class Worker:
    """``otel-celery-launch [launcher args] -- celery -A APP worker ...`` in its own process group."""

    def __init__(self, app: str, cwd: Path, env: Mapping[str, str], pool: str = "prefork", launcher_args: Sequence[str] = (), worker_args: Sequence[str] = (), quiet: bool = False) -> None:
        command = [LAUNCHER, *launcher_args, "--", "celery", *(["-q"] if quiet else []), "-A", app, "worker", "-P", pool, "-c", "2", "-l", "info",
                   "--without-gossip", "--without-mingle", "--without-heartbeat", *worker_args]
        self.process = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        self.output = Output(self.process)

    def __enter__(self) -> Worker:
        self.output.wait_for(" ready.")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.output.finish()
        return self.process.returncode


def run_launcher(args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAUNCHER, *args], env=dict(env), cwd=cwd, input=input, capture_output=True, text=True, timeout=timeout)


class RedisServer:
    """A private redis-server on a free port, so the tests own their queues."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (see .ci/run)")
        self.port = free_port()
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        poll(lambda: answers_ping(self.port), 10, "redis-server to answer")

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(16)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def sidecar_of(plan_env: str) -> int:
    """The PID of the sidecar named in a program's OTEL_CELERY_LAUNCH_PLAN (the process that listens on its socket)."""
    import json

    name = json.loads(plan_env)["sidecar"]
    inodes = {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:] if line.split()[-1:] == [f"@{name}"]}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
            except OSError:
                continue
            if any(f"socket:[{inode}]" in links for inode in inodes):
                return int(entry.name)
    raise AssertionError(f"no process listens on @{name}")
