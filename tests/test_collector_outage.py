"""A collector that is down, hung or restarting never holds work back, and costs no span it could have had."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver, SilentCollector
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, free_port, poll, run_launcher

PLAIN = SCENARIOS / "plain"
TASKS = 10
POOLS = [("prefork", ["--max-tasks-per-child", "2"]), ("solo", []), ("threads", [])]
POOL_IDS = ["prefork-recycling", "solo", "threads"]


@pytest.fixture
def silent_collector() -> Iterator[SilentCollector]:
    collector = SilentCollector()
    yield collector
    collector.close()


def run_tasks(env: dict[str, str], marker_dir: Path) -> None:
    code = f"from tasks import record\nfor n in range({TASKS}): record.delay({str(marker_dir)!r}, n)"
    producer = run_launcher(["--", "python", "-c", code], {**env, "OTEL_TRACES_EXPORTER": "none"}, cwd=PLAIN)
    assert producer.returncode == 0, producer.stderr
    poll(lambda: len(os.listdir(marker_dir)) == TASKS, 30, f"{TASKS} tasks to run")


def reported_drops(output: str) -> tuple[int, list[str]]:
    warnings = [line for line in output.splitlines() if line.startswith("otel-celery-launch: warning:")]
    return sum(int(n) for line in warnings for n in re.findall(r"(\d+) spans? dropped", line)), warnings


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize(("pool", "worker_args"), POOLS, ids=POOL_IDS)
def test_refused_connections_drop_and_count_every_span(pool: str, worker_args: list[str], protocol: str, tmp_path: Path, redis: RedisServer) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    with Worker("tasks", PLAIN, env, pool=pool, worker_args=worker_args) as worker:
        run_tasks(env, tmp_path)
        assert worker.stop() == 0
    dropped, warnings = reported_drops(worker.output.finish())
    assert dropped == TASKS, warnings
    assert 1 <= len(warnings) <= 3, warnings  # reported per interval, never per span or per child
    assert all("cannot be reached: refused or unreachable" in line or "was failing" in line for line in warnings), warnings


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize(("pool", "worker_args"), POOLS[:2], ids=POOL_IDS[:2])
def test_a_hung_collector_does_not_hold_shutdown(pool: str, worker_args: list[str], protocol: str, tmp_path: Path, redis: RedisServer, silent_collector: SilentCollector) -> None:
    # The exporter would wait 10 s for an answer; the exit timeout is 2 s; the stop gets 8 s before SIGKILL.
    env = clean_env(CELERY_BROKER_URL=redis.url(), **silent_collector.env(protocol))
    with Worker("tasks", PLAIN, env, pool=pool, worker_args=worker_args) as worker:
        run_tasks(env, tmp_path)
        assert worker.stop(timeout=8) == 0, "\n".join(worker.output.lines)
    dropped, warnings = reported_drops(worker.output.finish())
    assert dropped == TASKS, warnings
    assert any("gave no answer within the exit timeout of 2s" in line for line in warnings), warnings


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize(("pool", "worker_args"), [("prefork", []), ("threads", [])], ids=["prefork", "threads"])
def test_a_collector_that_recovers_gets_every_span_without_a_restart(pool: str, worker_args: list[str], protocol: str, tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="outage", **receiver.env(protocol))
    receiver.failing = True
    with Worker("tasks", PLAIN, env, pool=pool, worker_args=worker_args) as worker:
        run_tasks(env, tmp_path)
        poll(lambda: receiver.refused >= 2, 15, "the worker to meet the failing collector")
        receiver.failing = False
        spans = receiver.wait_for(lambda spans: sum(s.name == "run/tasks.record" for s in spans) >= TASKS, timeout=30)
        worker.output.wait_for("answers again; exporting resumed")
    assert sorted(s.attributes["messaging.message.id"] for s in spans if s.name == "run/tasks.record") == sorted(
        {s.attributes["messaging.message.id"] for s in spans if s.name == "run/tasks.record"}
    ), "each task's run span arrives once"
    assert reported_drops(worker.output.finish())[0] == 0


def test_a_full_queue_drops_the_oldest_spans_and_counts_them_without_a_warning_each(tmp_path: Path, redis: RedisServer) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",
                    OTEL_BSP_MAX_QUEUE_SIZE="4", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="2", OTEL_BSP_SCHEDULE_DELAY="50")
    with Worker("tasks", PLAIN, env, pool="threads") as worker:
        run_tasks(env, tmp_path)
        assert worker.stop() == 0
    output = worker.output.finish()
    dropped, warnings = reported_drops(output)
    assert dropped == TASKS, warnings
    assert "Queue full" not in output and len(warnings) <= 3, warnings


FLUSHING_SCRIPT = """
from opentelemetry import trace
for n in range(5):
    with trace.get_tracer("script").start_as_current_span(f"step {n}"):
        pass
trace.get_tracer_provider().force_flush()
print("flushed")
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_script_that_flushes_while_the_collector_fails_is_not_held(protocol: str, receiver: Receiver) -> None:
    receiver.failing = True
    env = clean_env(OTEL_BSP_EXPORT_TIMEOUT="1000", OTEL_EXPORTER_OTLP_TIMEOUT="1000", **receiver.env(protocol))
    result = run_launcher(["--", "python", "-c", FLUSHING_SCRIPT], env, timeout=30)
    assert result.returncode == 0 and result.stdout == "flushed\n", result.stderr
    assert reported_drops(result.stderr)[0] == 5, result.stderr


@pytest.mark.parametrize("outage", ["failing", "absent"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_recycled_children_export_again_once_the_collector_is_back(protocol: str, outage: str, tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    """Every child exits after one task, so only exit flushes deliver: none may skip once the collector is back.

    The collector first answers every export with an error ("failing"), or is not there at
    all ("absent": nothing listens on its port until it starts).
    """
    collector = receiver if outage == "failing" else Receiver(grpc_port=free_port(), http_port=free_port())
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="recovery", **collector.env(protocol))
    collector.failing = True
    try:
        with Worker("tasks", PLAIN, env, worker_args=["--max-tasks-per-child", "1"]) as worker:
            run_tasks(env, tmp_path)
            worker.output.wait_for("otel-celery-launch: warning: the collector at")
            collector.failing = False
            if outage == "absent":
                collector.start()
            code = f"from tasks import record\nfor n in range(20): print(record.delay({str(tmp_path)!r}, 100 + n).id)"
            producer = run_launcher(["--", "python", "-c", code], {**env, "OTEL_TRACES_EXPORTER": "none"}, cwd=PLAIN)
            assert producer.returncode == 0, producer.stderr
            later = set(producer.stdout.split())

            def arrived(spans: list) -> set[str]:
                return later & {s.attributes["messaging.message.id"] for s in spans if s.name == "run/tasks.record"}

            collector.wait_for(lambda spans: arrived(spans) == later, timeout=60)
            assert worker.stop() == 0
    finally:
        if collector is not receiver:
            collector.stop()


@pytest.mark.parametrize(("pool", "protocol"), [("eventlet", "grpc"), ("gevent", "grpc"), ("threads", "http/protobuf"), ("solo", "grpc"), ("prefork", "http/protobuf")])
def test_no_traceback_at_shutdown_with_a_hung_collector(pool: str, protocol: str, tmp_path: Path, redis: RedisServer, silent_collector: SilentCollector) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), **silent_collector.env(protocol))
    with Worker("tasks", PLAIN, env, pool=pool) as worker:
        run_tasks(env, tmp_path)
        assert worker.stop(timeout=15) == 0, "\n".join(worker.output.lines)
    output = worker.output.finish()
    assert "Traceback" not in output and "Exception" not in output, output


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_recycled_children_export_again_once_a_hung_collector_is_back(protocol: str, tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    """The sidecar keeps trying a collector that hangs: the first children's spans after it is back arrive."""
    silent = SilentCollector()
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="recovery", **silent.env(protocol))
    collector = receiver
    try:
        with Worker("tasks", PLAIN, env, worker_args=["--max-tasks-per-child", "1"]) as worker:
            run_tasks(env, tmp_path)
            worker.output.wait_for("otel-celery-launch: warning: the collector at", timeout=40)
            silent.forward(receiver.grpc_port if protocol == "grpc" else receiver.http_port)
            code = f"from tasks import record\nfor n in range(10): print(record.delay({str(tmp_path)!r}, 100 + n).id)"
            producer = run_launcher(["--", "python", "-c", code], {**env, "OTEL_TRACES_EXPORTER": "none"}, cwd=PLAIN)
            assert producer.returncode == 0, producer.stderr
            later = set(producer.stdout.split())
            collector.wait_for(lambda spans: later <= {s.attributes["messaging.message.id"] for s in spans if s.name == "run/tasks.record"}, timeout=60)
            assert worker.stop() == 0
    finally:
        silent.close()
