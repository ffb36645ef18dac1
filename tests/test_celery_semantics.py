"""Retries, canvas, ETA, beat, nested publishes and failures stay in one trace, over Redis and RabbitMQ."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.otlp_receiver import ReceivedSpan, Receiver
from tests.processes import LAUNCHER, SCENARIOS, Output, RedisServer, Worker, clean_env, run_launcher

SEMANTICS = SCENARIOS / "semantics"
BROKERS = {"redis": None, "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//"}
BAGGAGE = repr([("tenant", "acme")])

PRODUCE = """
from celery import chain, chord, group
from opentelemetry import baggage, context, trace
import semantics as s

with trace.get_tracer("producer").start_as_current_span("request") as span:
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        {body}
    finally:
        context.detach(token)
    print(format(span.get_span_context().trace_id, "032x"))
"""


@pytest.fixture(scope="module", params=list(BROKERS))
def broker_env(request: pytest.FixtureRequest, redis_server: RedisServer, _receiver: Receiver) -> dict[str, str]:
    broker = BROKERS[request.param] or redis_server.url(3)
    return clean_env(CELERY_BROKER_URL=broker, CELERY_RESULT_BACKEND=redis_server.url(4), TEST_QUEUE=f"semantics-{uuid.uuid4().hex}",
                     PYTHONPATH=str(SEMANTICS), **_receiver.env("grpc"))


@pytest.fixture(scope="module")
def worker(broker_env: dict[str, str]) -> Iterator[Worker]:
    with Worker("semantics", SEMANTICS, {**broker_env, "OTEL_SERVICE_NAME": "worker"}, quiet=True) as running:
        yield running


def produce(env: dict[str, str], body: str) -> str:
    result = run_launcher(["--service-name", "producer", "--", "python", "-c", PRODUCE.format(body=body)], env, cwd=SEMANTICS)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def trace_of(receiver: Receiver, trace_id: str, runs: dict[str, int], timeout: float = 30) -> list[ReceivedSpan]:
    """Wait until the trace holds the expected number of run spans per task name."""

    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == trace_id]
        return all(sum(s.name == f"run/semantics.{name}" for s in mine) >= count for name, count in runs.items())

    return [s for s in receiver.wait_for(complete, timeout) if s.trace_id == trace_id]


def assert_caused_by_publishes(spans: list[ReceivedSpan], task: str) -> list[ReceivedSpan]:
    """Each run span of the task has, as parent, a publish span of that task in the same trace."""
    by_id = {span.span_id: span for span in spans}
    runs = [span for span in spans if span.name == f"run/semantics.{task}"]
    for run in runs:
        parent = by_id.get(run.parent_span_id)
        assert parent is not None and parent.name == f"apply_async/semantics.{task}", (run, sorted(by_id))
        assert parent.kind == ReceivedSpan.KIND_PRODUCER
        assert run.attributes.get("test.baggage") == BAGGAGE, "baggage crossed the broker"
    return runs


@pytest.mark.parametrize("task", ["flaky", "auto_flaky"])
def test_every_retry_attempt_has_its_own_run_span_in_the_trace(task: str, worker: Worker, broker_env: dict[str, str], receiver: Receiver) -> None:
    trace_id = produce(broker_env, f"s.{task}.delay()")
    spans = trace_of(receiver, trace_id, {task: 3})
    runs = assert_caused_by_publishes(spans, task)
    assert len(runs) == 3 and len({run.span_id for run in runs}) == 3
    assert sum(run.status_code == 2 for run in runs) == 0, "a retry is not an error"


def test_chain_group_and_chord_stay_in_the_producers_trace(worker: Worker, broker_env: dict[str, str], receiver: Receiver) -> None:
    body = "chain(s.add.s(1, 2), s.add.s(3)).delay(); group(s.add.s(1, 1), s.add.s(2, 2)).delay(); chord([s.add.s(5, 5), s.add.s(6, 6)])(s.total.s())"
    trace_id = produce(broker_env, body)
    spans = trace_of(receiver, trace_id, {"add": 6, "total": 1})
    assert len(assert_caused_by_publishes(spans, "add")) == 6
    assert len(assert_caused_by_publishes(spans, "total")) == 1


def test_countdown_and_eta_tasks_join_the_trace(worker: Worker, broker_env: dict[str, str], receiver: Receiver) -> None:
    body = "s.add.apply_async((1, 2), countdown=1); import datetime; s.add.apply_async((3, 4), eta=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1))"
    trace_id = produce(broker_env, body)
    assert len(assert_caused_by_publishes(trace_of(receiver, trace_id, {"add": 2}), "add")) == 2


def test_a_task_that_publishes_a_task_keeps_one_trace(worker: Worker, broker_env: dict[str, str], receiver: Receiver) -> None:
    spans = trace_of(receiver, produce(broker_env, "s.outer.delay()"), {"outer": 1, "inner": 1})
    (outer,) = assert_caused_by_publishes(spans, "outer")
    (inner,) = assert_caused_by_publishes(spans, "inner")
    publish_inner = next(span for span in spans if span.span_id == inner.parent_span_id)
    assert publish_inner.parent_span_id == outer.span_id, "published from inside the outer task's run span"


def test_a_failing_task_records_the_error_and_its_log_line_carries_the_ids(worker: Worker, broker_env: dict[str, str], receiver: Receiver) -> None:
    spans = trace_of(receiver, produce(broker_env, "s.fails.delay()"), {"fails": 1})
    (run,) = assert_caused_by_publishes(spans, "fails")
    assert run.status_code == 2 and "exception" in run.events
    line = worker.output.wait_for("raised unexpected: RuntimeError('boom')")
    record = json.loads(line)
    assert record["level"] == "error" and (record["trace_id"], record["span_id"]) == (run.trace_id, run.span_id)


def test_beat_under_the_launcher_starts_a_trace_per_scheduled_publish(worker: Worker, broker_env: dict[str, str], receiver: Receiver, tmp_path: Path) -> None:
    command = [LAUNCHER, "--service-name", "beat", "--batch-schedule-delay", "100ms", "--", "celery", "-A", "semantics", "beat",
               "-s", str(tmp_path / "schedule"), "-l", "info"]
    beat = subprocess.Popen(command, cwd=SEMANTICS, env=broker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(beat)
    def two_ticks_with_their_publishes(spans: list[ReceivedSpan]) -> bool:
        ids = {span.span_id for span in spans}
        return sum(s.name == "run/semantics.tick" and s.parent_span_id in ids for s in spans) >= 2

    try:
        spans = receiver.wait_for(two_ticks_with_their_publishes, timeout=30)
    finally:
        beat.terminate()
        beat.wait(10)
        output.finish()
    by_id = {span.span_id: span for span in spans}
    ticks = [span for span in spans if span.name == "run/semantics.tick" and span.parent_span_id in by_id]
    for tick in ticks:
        publish = by_id.get(tick.parent_span_id)
        assert publish is not None and publish.service == "beat" and publish.name == "apply_async/semantics.tick"
        assert publish.parent_span_id == "" and publish.trace_id == tick.trace_id, "each scheduled publish starts its trace"
    assert len({tick.trace_id for tick in ticks}) == len(ticks)


def test_a_publish_by_name_from_an_app_without_the_task_joins_the_trace(worker: Worker, broker_env: dict[str, str], receiver: Receiver) -> None:
    """A web app often sends tasks by name, without importing the worker's code."""
    body = "import os; from celery import Celery; Celery('web', broker=os.environ['CELERY_BROKER_URL']).send_task('semantics.add', (1, 2), queue=os.environ['TEST_QUEUE'])"
    spans = trace_of(receiver, produce(broker_env, body), {"add": 1})
    (run,) = assert_caused_by_publishes(spans, "add")
    assert next(span for span in spans if span.span_id == run.parent_span_id).service == "producer"
