"""Every task that ran has its run span at the collector, whichever pool ran it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, poll, run_launcher

PLAIN = SCENARIOS / "plain"
TASKS = 12


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize(
    ("pool", "worker_args"),
    [
        ("prefork", ["--max-tasks-per-child", "2"]),
        ("prefork", ["--autoscale", "3,1"]),
        ("solo", []),
        ("threads", []),
        ("gevent", []),
        ("eventlet", []),
    ],
    ids=["prefork-recycling", "prefork-autoscale", "solo", "threads", "gevent", "eventlet"],
)
def test_no_run_span_is_lost(pool: str, worker_args: list[str], protocol: str, tmp_path: Path, receiver: Receiver, redis: RedisServer) -> None:
    # A long batch delay: spans reach the collector only through the flushes on exit,
    # and SIGTERM comes the moment the last task has run.
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="delivery", **receiver.env(protocol))
    env["OTEL_BSP_SCHEDULE_DELAY"] = "60000"
    with Worker("tasks", PLAIN, env, pool=pool, worker_args=worker_args) as worker:
        code = f"from tasks import record\nfor n in range({TASKS}): record.delay({str(tmp_path)!r}, n)"
        producer = run_launcher(["--", "python", "-c", code], env, cwd=PLAIN)
        assert producer.returncode == 0, producer.stderr
        poll(lambda: len(os.listdir(tmp_path)) == TASKS, 30, f"{TASKS} tasks to run")
        assert worker.stop() == 0
    ran = os.listdir(tmp_path)
    if "--max-tasks-per-child" in worker_args:
        assert len({name.split(".")[1] for name in ran}) >= TASKS // 2, "children were recycled"
    spans = receiver.wait_for(lambda spans: sum(s.name == "run/tasks.record" for s in spans) >= TASKS, timeout=5)
    runs = [span for span in spans if span.name == "run/tasks.record"]
    assert len(runs) == TASKS and {span.service for span in runs} == {"delivery"}
