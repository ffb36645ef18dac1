"""As a Docker entrypoint the launched worker is PID 1: it must stop on SIGTERM, flushed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import LAUNCHER, SCENARIOS, Output, RedisServer, clean_env, poll, run_launcher

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")


def test_worker_as_pid_1_stops_on_sigterm_with_spans_flushed(tmp_path: Path, receiver: Receiver, redis: RedisServer) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="pid1", **receiver.env("grpc"))
    env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"  # only the flush on shutdown can deliver the span
    command = ["unshare", "--pid", "--fork", "--mount-proc", LAUNCHER, "--", "sh", "-c",
               'echo "pid=$$"; exec celery -A tasks worker -P solo -l info --without-gossip --without-mingle --without-heartbeat']
    unshare = subprocess.Popen(command, cwd=SCENARIOS / "plain", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(unshare)
    try:
        assert output.wait_for("pid=") == "pid=1"
        output.wait_for(" ready.")
        code = f"from tasks import record\nrecord.delay({str(tmp_path)!r}, 1)"
        assert run_launcher(["--", "python", "-c", code], env, cwd=SCENARIOS / "plain").returncode == 0
        poll(lambda: os.listdir(tmp_path), 30, "the task to run")
        children = Path(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read_text().split()
        (pid_1,) = children
        started = time.monotonic()
        os.kill(int(pid_1), signal.SIGTERM)
        assert unshare.wait(15) == 0, output.finish()
        assert time.monotonic() - started < 10
    finally:
        if unshare.poll() is None:
            unshare.kill()
    receiver.wait_for(lambda spans: any(s.name == "run/tasks.record" and s.service == "pid1" for s in spans), timeout=5)
