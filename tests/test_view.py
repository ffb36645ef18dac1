"""``otel-celery-launch view``: a worker's trace as a tree, its task's log line under the run span, and its metrics."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

from tests.processes import LAUNCHER, Output, RedisServer, Worker, clean_env, run_launcher

TASKS = """
import os
from celery import Celery
from celery.utils.log import get_task_logger
app = Celery("viewed", broker=os.environ["CELERY_BROKER_URL"])
log = get_task_logger(__name__)

@app.task
def greet(name):
    log.info("hello %s", name)
"""


def test_view_prints_the_trace_with_its_logs_and_the_metrics(tmp_path: Path, redis: RedisServer) -> None:
    (tmp_path / "viewed.py").write_text(TASKS)
    view = subprocess.Popen([LAUNCHER, "view", "--grpc-port", "0", "--http-port", "0", "--settle", "1", "--metrics-every", "1"],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(view)
    try:
        grpc_url = re.search(r"OTLP/gRPC at (\S+),", output.wait_for("listening:")).group(1)  # type: ignore[union-attr]
        env = clean_env(CELERY_BROKER_URL=redis.url(9), OTEL_EXPORTER_OTLP_ENDPOINT=grpc_url, OTEL_LOGS_EXPORTER="otlp",
                        OTEL_METRIC_EXPORT_INTERVAL="500", OTEL_BSP_SCHEDULE_DELAY="100")
        with Worker("viewed", tmp_path, {**env, "OTEL_SERVICE_NAME": "worker"}, pool="solo"):
            producer = run_launcher(["--service-name", "web", "--", "python", "-c", "import viewed; viewed.greet.delay('ada')"], env, cwd=tmp_path)
            assert producer.returncode == 0, producer.stderr
            run_line = output.wait_for("└─ run/viewed.greet [consumer]  (worker,")
            output.wait_for("celery.task.outcomes{")
    finally:
        view.send_signal(signal.SIGINT)
        view.wait(10)
    text = output.finish()
    assert view.returncode == 0, text
    lines = text.splitlines()
    publish = next(i for i, line in enumerate(lines) if "└─ apply_async/viewed.greet [producer]  (web," in line)
    run = lines.index(run_line)
    assert run == publish + 1 and len(run_line) - len(run_line.lstrip()) > len(lines[publish]) - len(lines[publish].lstrip())
    assert lines[run + 1].strip().startswith("· INFO hello ada")
    outcome = next(line for line in lines if "celery.task.outcomes{" in line)
    assert "celery.task.name=viewed.greet" in outcome and "celery.task.outcome=success" in outcome and outcome.split("} ")[1].startswith("1 ")
