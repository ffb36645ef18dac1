"""The sidecar exports for every process of the program: none of them waits on, forks with, or holds credentials for the collector."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver, SilentCollector
from tests.processes import SCENARIOS, LAUNCHER, RedisServer, Worker, clean_env, poll, run_launcher

PLAIN = SCENARIOS / "plain"
METRICS = SCENARIOS / "metrics"
SECRET = "s3cret-sidecar-token"


def produce(env: dict[str, str], marker_dir: Path, count: int, first: int = 0) -> list[str]:
    code = f"from tasks import record\nfor n in range({first}, {first + count}): print(record.delay({str(marker_dir)!r}, n).id)"
    producer = run_launcher(["--", "python", "-c", code], {**env, "OTEL_TRACES_EXPORTER": "none"}, cwd=PLAIN)
    assert producer.returncode == 0, producer.stderr
    return producer.stdout.split()


def run_ids(receiver: Receiver) -> set[str]:
    return {str(span.attributes["messaging.message.id"]) for span in receiver.named("run/tasks.record")}


@pytest.mark.parametrize("attempt", range(5))
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_recycling_prefork_children_never_hang(protocol: str, attempt: int, tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    """Each child runs one task and exits, while the main process collects metrics and exports logs:
    before the sidecar, a child forked during an exporter's import on a background thread hung forever."""
    (tmp_path / "otel.yaml").write_text(f"exporter: {{headers: {{x-api-key: {SECRET}}}}}\n")
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="recycling", OTEL_LOGS_EXPORTER="otlp",
                    OTEL_METRIC_EXPORT_INTERVAL="100", **receiver.env(protocol))
    markers = tmp_path / "markers"
    markers.mkdir()
    with Worker("tasks", PLAIN, env, launcher_args=["--config", str(tmp_path / "otel.yaml")], worker_args=["--max-tasks-per-child", "1"]) as worker:
        ids = set(produce(env, markers, 60))
        poll(lambda: len(os.listdir(markers)) == 60, 90, "every task to run")
        receiver.wait_until(lambda: ids <= run_ids(receiver), timeout=30, what="every run span")
        assert worker.stop(timeout=20) == 0, "SIGTERM completes"
    assert {span.headers["x-api-key"] for span in receiver.named("run/tasks.record")} == {SECRET}


def test_queue_depth_goes_out_while_a_prefork_worker_runs_over_grpc(redis: RedisServer, receiver: Receiver) -> None:
    idle = f"idle-{uuid.uuid4().hex}"
    env = clean_env(CELERY_BROKER_URL=redis.url(), TEST_QUEUE=f"busy-{uuid.uuid4().hex}", TEST_IDLE_QUEUE=idle, PYTHONPATH=str(METRICS),
                    OTEL_METRIC_EXPORT_INTERVAL="500", OTEL_CELERY_LAUNCH_QUEUE_DEPTH_INTERVAL="1000", **receiver.env("grpc"))
    code = "import metric_tasks as t\nfor _ in range(17): t.ok.apply_async(queue=t.IDLE)"
    producer = run_launcher(["--", "python", "-c", code], {**env, "OTEL_TRACES_EXPORTER": "none"}, cwd=METRICS)
    assert producer.returncode == 0, producer.stderr
    with Worker("metric_tasks", METRICS, env, worker_args=["-Q", env["TEST_QUEUE"]]):
        started = time.monotonic()
        receiver.wait_until(lambda: any(point.value == 17 for point in receiver.points
                                        if point.metric == "celery.queue.depth" and point.attributes.get("messaging.destination.name") == idle),
                            timeout=10, what="the idle queue's depth, 17, while the worker runs")
        assert time.monotonic() - started < 10
        assert receiver.total("celery.worker.pool.size") > 0


def _time_tasks(env: dict[str, str], tmp_path: Path, name: str, count: int) -> float:
    markers = tmp_path / name
    markers.mkdir()
    with Worker("tasks", PLAIN, env, worker_args=["--max-tasks-per-child", "5"]) as worker:
        started = time.monotonic()
        produce(env, markers, count)
        poll(lambda: len(os.listdir(markers)) == count, 120, f"{count} tasks to run")
        took = time.monotonic() - started
        worker.stop()
    return took


def test_a_slow_collector_holds_no_task_back(tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_LOGS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="200", **receiver.env("grpc"))
    healthy = _time_tasks(env, tmp_path, "healthy", 150)
    receiver.delay = 3.0
    slow = _time_tasks(env, tmp_path, "slow", 150)
    # 1.0 in a quiet run (bench/outage.py measures it); the margin is for a loaded 2-core machine
    assert slow <= healthy / 0.75 + 1.0, (healthy, slow)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_hung_collector_adds_under_half_a_second_to_sigterm(protocol: str, tmp_path: Path, redis: RedisServer) -> None:
    silent = SilentCollector()
    try:
        env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_LOGS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="200", **silent.env(protocol))
        stops = {}
        for launched in (False, True):
            markers = tmp_path / f"launched-{launched}"
            markers.mkdir()
            command = ["celery", "-A", "tasks", "worker", "-c", "2", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            process = subprocess.Popen([LAUNCHER, "--", *command] if launched else command, cwd=PLAIN, env=env, start_new_session=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                lines: list[str] = []
                assert process.stdout is not None
                for line in process.stdout:
                    lines.append(line)
                    if " ready." in line:
                        break
                produce(env, markers, 20)
                poll(lambda: len(os.listdir(markers)) == 20, 30, "20 tasks to run")
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                process.wait(15)
                stops[launched] = time.monotonic() - started
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                rest = process.stdout.read() if process.stdout else ""
            if launched:
                dropped = sum(int(n) for n in re.findall(r"(\d+) spans? dropped", rest))
                assert dropped == 20, rest
        assert stops[True] <= stops[False] + 0.5, stops
    finally:
        silent.close()


def test_logs_of_a_grpc_outage_are_all_delivered_after_it(redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(OTEL_LOGS_EXPORTER="otlp", OTEL_SERVICE_NAME="outage-logs", **receiver.env("grpc"))
    receiver.failing = True
    code = ("import logging, time\nlog = logging.getLogger('app')\n"
            "for n in range(500):\n    log.warning('line %d', n)\n    time.sleep(0.004)\n")
    process = subprocess.Popen([LAUNCHER, "--", "python", "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        poll(lambda: receiver.refused >= 2, 15, "the sidecar to meet the failing collector")
        receiver.failing = False
        receiver.wait_until(lambda: len({log.body for log in receiver.logs if log.body.startswith("line ")}) == 500, timeout=60,
                            what="all 500 records")
    finally:
        process.wait(30)


def test_a_re_exec_on_sighup_keeps_the_credentials(tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    (tmp_path / "otel.yaml").write_text(f"exporter: {{headers: {{x-api-key: {SECRET}}}}}\n")
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="restarted", **receiver.env("grpc"))
    markers = tmp_path / "markers"
    markers.mkdir()
    with Worker("tasks", PLAIN, env, pool="solo", launcher_args=["--config", str(tmp_path / "otel.yaml")]) as worker:
        worker.process.send_signal(signal.SIGHUP)
        poll(lambda: sum(" ready." in line for line in worker.output.lines) >= 2, 30, "the worker to restart")
        ids = set(produce(env, markers, 3))
        receiver.wait_until(lambda: ids <= run_ids(receiver), timeout=20, what="the restarted worker's run spans")
        assert worker.process.poll() is None, "the same process: Celery re-execs itself"
    assert {span.headers.get("x-api-key") for span in receiver.named("run/tasks.record")} == {SECRET}


def test_a_process_that_leaves_by_os_exit_loses_no_span(receiver: Receiver) -> None:
    code = "import os\nfrom opentelemetry import trace\nwith trace.get_tracer('t').start_as_current_span('last'): pass\nos._exit(3)"
    result = run_launcher(["--", "python", "-c", code], clean_env(**receiver.env("grpc")))
    assert result.returncode == 3, result.stderr
    assert [span.name for span in receiver.wait_for(lambda spans: len(spans) == 1)] == ["last"]


def _readable_memory(pid: int) -> bytes:
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            span, mode = line.split()[:2]
            if "r" not in mode:
                continue
            start, end = (int(part, 16) for part in span.split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except (OSError, ValueError, OverflowError):
                continue
    return b"".join(chunks)


@pytest.mark.parametrize("source", ["env", "file"])
def test_no_process_of_the_program_holds_a_header_value(source: str, tmp_path: Path, redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), **receiver.env("http/protobuf"))
    args: list[str] = []
    if source == "env":
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"x-api-key={SECRET}"
    else:
        (tmp_path / "otel.yaml").write_text(f"exporter: {{headers: {{x-api-key: {SECRET}}}}}\n")
        args = ["--config", str(tmp_path / "otel.yaml")]
    markers = tmp_path / "markers"
    markers.mkdir()
    with Worker("tasks", PLAIN, env, launcher_args=args) as worker:
        ids = set(produce(env, markers, 4))
        receiver.wait_until(lambda: ids <= run_ids(receiver), timeout=20, what="the run spans")
        main = worker.process.pid
        children = [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]
        assert len(children) == 2
        for pid in [main, *children]:
            assert SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes(), pid
            assert SECRET.encode() not in _readable_memory(pid), pid
    assert {span.headers["x-api-key"] for span in receiver.named("run/tasks.record")} == {SECRET}
