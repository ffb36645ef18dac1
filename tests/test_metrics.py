"""Celery's metrics at the collector, exact: counts, run time, queue wait, queue depth; and task logs with their span.

A prefork worker recycling its children after every task, on Redis (over gRPC) and on
RabbitMQ (over HTTP), consumes one queue; the application declares a second one that no
worker consumes, which is filled with a known number of messages.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, run_launcher

METRICS = SCENARIOS / "metrics"
BROKERS = {"redis": ("grpc", None), "rabbitmq": ("http/protobuf", "amqp://guest:guest@127.0.0.1:5672//")}
WAITING_IN_IDLE = 4
PRODUCE = f"""
import metric_tasks as t
for _ in range(5): t.ok.delay()
t.ok.apply_async(countdown=2)
for _ in range(3): t.boom.delay()
t.flaky.delay()
for _ in range({WAITING_IN_IDLE}): t.ok.apply_async(queue=t.IDLE)
"""


@pytest.fixture(params=list(BROKERS))
def run(request: pytest.FixtureRequest, redis_server: RedisServer, receiver: Receiver) -> Iterator[tuple[dict[str, str], str]]:
    protocol, broker = BROKERS[request.param]
    queue, idle = f"metrics-{uuid.uuid4().hex}", f"idle-{uuid.uuid4().hex}"
    env = clean_env(CELERY_BROKER_URL=broker or redis_server.url(8), TEST_QUEUE=queue, TEST_IDLE_QUEUE=idle, PYTHONPATH=str(METRICS),
                    OTEL_METRIC_EXPORT_INTERVAL="500", OTEL_CELERY_LAUNCH_QUEUE_DEPTH_INTERVAL="1000", OTEL_LOGS_EXPORTER="otlp",
                    **receiver.env(protocol))
    yield env, idle


def test_counts_durations_queue_wait_and_depth_are_exact(run: tuple[dict[str, str], str], receiver: Receiver) -> None:
    env, idle = run
    with Worker("metric_tasks", METRICS, {**env, "OTEL_SERVICE_NAME": "worker"}, worker_args=["--max-tasks-per-child", "1", "-Q", env["TEST_QUEUE"]]) as worker:
        producer = run_launcher(["--service-name", "producer", "--", "python", "-c", PRODUCE], env, cwd=METRICS)
        assert producer.returncode == 0, producer.stderr

        def depth() -> float | None:
            points = [p for p in receiver.points if p.metric == "celery.queue.depth" and p.attributes.get("messaging.destination.name") == idle]
            return points[-1].value if points else None

        try:
            receiver.wait_until(lambda: receiver.total("celery.task.outcomes") >= 12, timeout=40, what="every task finished")
        except AssertionError as error:
            depths = sorted({(p.attributes.get("messaging.destination.name"), p.value) for p in receiver.points if p.metric == "celery.queue.depth"})
            outcomes = sorted((p.attributes["celery.task.name"], p.attributes["celery.task.outcome"], p.value) for p in receiver.points
                              if p.metric == "celery.task.outcomes")
            raise AssertionError(f"{error}; outcomes {outcomes}; depths {depths}") from None
        assert worker.stop() == 0
    # a prefork worker's main process exports over gRPC only as it exits (it forks pool processes while it runs)
    assert depth() == WAITING_IN_IDLE
    total = receiver.total
    name = "celery.task.name"
    assert total("messaging.client.sent.messages", **{name: "metric_tasks.ok"}) == 5 + 1 + WAITING_IN_IDLE
    assert total("messaging.client.sent.messages", **{name: "metric_tasks.boom"}) == 3
    assert total("messaging.client.sent.messages", **{name: "metric_tasks.flaky"}) == 3  # published once, republished twice by retry
    assert total("messaging.client.consumed.messages", **{name: "metric_tasks.ok"}) == 6
    assert total("messaging.client.consumed.messages", **{name: "metric_tasks.flaky"}) == 3
    outcome = "celery.task.outcome"
    assert total("celery.task.outcomes", **{name: "metric_tasks.ok", outcome: "success"}) == 6
    assert total("celery.task.outcomes", **{name: "metric_tasks.boom", outcome: "failure"}) == 3
    assert total("celery.task.outcomes", **{name: "metric_tasks.flaky", outcome: "retry"}) == 2
    assert total("celery.task.outcomes", **{name: "metric_tasks.flaky", outcome: "success"}) == 1
    assert total("celery.task.outcomes") == 12
    assert total("messaging.process.duration") == 12
    assert total("messaging.process.duration", **{name: "metric_tasks.boom", outcome: "failure"}) == 3
    assert total("celery.task.queue.wait") == 12  # every run, the retried ones included
    waits = [p for p in receiver.points if p.metric == "celery.task.queue.wait" and p.attributes.get(name) == "metric_tasks.ok" and p.count]
    # bucket i holds values above bounds[i - 1]: the countdown=2 run waited 2 s or more, the others far less
    highest = [max(i for i, count in enumerate(p.bucket_counts) if count) for p in waits]
    assert waits[0].bounds[max(highest) - 1] >= 1.0
    assert sum(p.value for p in waits) >= 2.0
    assert all(p.attributes.get("messaging.destination.name") == env["TEST_QUEUE"] for p in waits)
    gauges = {p.metric for p in receiver.points if p.kind == "gauge"}
    assert {"celery.worker.pool.size", "celery.worker.pool.busy", "celery.worker.tasks.reserved", "celery.queue.depth"} <= gauges
    assert max(p.value for p in receiver.points if p.metric == "celery.worker.pool.size") == 2


def test_task_logs_reach_the_collector_with_the_run_spans_ids(run: tuple[dict[str, str], str], receiver: Receiver) -> None:
    env, _ = run
    with Worker("metric_tasks", METRICS, {**env, "OTEL_SERVICE_NAME": "worker"}, worker_args=["-Q", env["TEST_QUEUE"]]):
        producer = run_launcher(["--", "python", "-c", "import metric_tasks as t; t.chatty.delay(7)"], env, cwd=METRICS)
        assert producer.returncode == 0, producer.stderr
        receiver.wait_until(lambda: {"task logger line 7", "printed line 7"} <= {log.body for log in receiver.logs}
                            and receiver.named("run/metric_tasks.chatty"), what="the task's log records and run span")
    (run_span,) = receiver.named("run/metric_tasks.chatty")
    for body in ("task logger line 7", "printed line 7"):
        (record,) = [log for log in receiver.logs if log.body == body]
        assert (record.trace_id, record.span_id) == (run_span.trace_id, run_span.span_id)
        assert record.severity in ("INFO", "WARN")  # Celery logs print() as a warning
    assert not any(log.scope.startswith("opentelemetry") for log in receiver.logs)


@pytest.mark.parametrize("pool", ["gevent", "eventlet", "threads"])
def test_no_metric_is_lost_under_other_pools(pool: str, redis_server: RedisServer, receiver: Receiver) -> None:
    queue = f"metrics-{uuid.uuid4().hex}"
    env = clean_env(CELERY_BROKER_URL=redis_server.url(10), TEST_QUEUE=queue, TEST_IDLE_QUEUE=f"idle-{uuid.uuid4().hex}", PYTHONPATH=str(METRICS),
                    **receiver.env("grpc"))  # the default interval (60 s): everything arrives through the flush at SIGTERM
    with Worker("metric_tasks", METRICS, env, pool=pool, worker_args=["-Q", queue]) as worker:
        producer = run_launcher(["--", "python", "-c", "import metric_tasks as t\nfor _ in range(7): t.ok.delay()\nt.boom.delay()"], env, cwd=METRICS)
        assert producer.returncode == 0, producer.stderr
        receiver.wait_for(lambda spans: sum(span.name.startswith("run/") for span in spans) == 8)
        assert worker.stop() == 0
    assert receiver.total("celery.task.outcomes", **{"celery.task.outcome": "success"}) == 7
    assert receiver.total("celery.task.outcomes", **{"celery.task.outcome": "failure"}) == 1
    assert receiver.total("messaging.client.sent.messages") == 8
    assert receiver.total("celery.task.queue.wait") == 8


MANY_NAMES = """
import os, resource
from celery import Celery
app = Celery("many", broker=os.environ["CELERY_BROKER_URL"])
app.conf.task_ignore_result = True
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for n in range(3000):
    app.send_task(f"warm.{n}")
before = rss()
for n in range(30000):
    app.send_task(f"task.{n}")
print(rss() - before)
"""


def test_distinct_task_names_beyond_the_limit_fold_into_one_series(redis_server: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis_server.url(9), OTEL_METRIC_EXPORT_INTERVAL="60000", OTEL_SERVICE_NAME="many-names",
                    **receiver.env("grpc"))
    result = run_launcher(["--", "python", "-c", MANY_NAMES], env, timeout=120)
    assert result.returncode == 0, result.stderr
    bare = subprocess.run([sys.executable, "-c", MANY_NAMES], env=env, capture_output=True, text=True, timeout=120)
    grown = int(result.stdout.split()[-1]) - int(bare.stdout.split()[-1])
    assert grown < 8 * 1024, f"memory grew {grown} KiB more than bare over 30,000 more names"
    redis_server.flush()
    assert result.stderr.count("more than 2000 series") == 1, result.stderr
    receiver.wait_until(lambda: receiver.total("messaging.client.sent.messages") == 33000, what="every publish counted")
    assert receiver.total("messaging.client.sent.messages", **{"otel.metric.overflow": True}) == 31000


def test_the_instrumentations_duplicate_runtime_histogram_is_off_unless_asked_for(redis: RedisServer, receiver: Receiver) -> None:
    for asked in (False, True):
        receiver.clear()
        env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_METRIC_EXPORT_INTERVAL="60000", OTEL_CELERY_LAUNCH_FLOWER_RUNTIME=str(asked).lower(),
                        **receiver.env("grpc"))
        with Worker("tasks", SCENARIOS / "plain", env, pool="solo") as worker:
            producer = run_launcher(["--", "python", "-c", "from tasks import record\nrecord.delay('/tmp', 1)"], env, cwd=SCENARIOS / "plain")
            assert producer.returncode == 0, producer.stderr
            worker.output.wait_for("succeeded")
            assert worker.stop() == 0
        receiver.wait_until(lambda: receiver.total("messaging.process.duration") == 1, what="the run time, once")
        assert (receiver.total("flower.task.runtime.seconds") > 0) is asked
