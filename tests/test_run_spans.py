"""The launcher's shorter path for task run spans makes the same spans as the Celery instrumentation's own handlers.

Two launched prefork workers on Redis, each on its own queue: one with the defaults (the
shorter path), one that keeps the instrumentation's handlers (``metrics.flower_runtime``, which
they measure). The same producer publishes the same tasks to each: a success, a failure, a
failure the task declares (``throws``), retries, time limits, and one task run eagerly in the
producer. Every run span is compared whole: name, kind, scope, parent, attributes, status,
events and their attributes, baggage seen inside.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.otlp_receiver import ReceivedSpan, Receiver
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, run_launcher
from tests.test_celery_semantics import PRODUCE

SEMANTICS = SCENARIOS / "semantics"
PATHS = {"shorter": {}, "instrumentation's": {"OTEL_CELERY_LAUNCH_FLOWER_RUNTIME": "true"}}
BODY = "s.add.delay(2, 3); s.fails.delay(); s.expected.delay(); s.flaky.delay(); s.limited.delay(); s.add.apply((4, 5))"
RUNS = {"add": 2, "fails": 1, "expected": 1, "flaky": 3, "limited": 1}
VARYING = {"messaging.message.id", "messaging.message_id", "messaging.conversation_id", "celery.reply_to", "celery.eta", "celery.hostname"}  # ids, times, the worker


@pytest.fixture(scope="module")
def workers(redis_server: RedisServer, _receiver: Receiver) -> Iterator[dict[str, dict[str, str]]]:
    envs = {}
    for path, extra in PATHS.items():
        envs[path] = clean_env(CELERY_BROKER_URL=redis_server.url(5), CELERY_RESULT_BACKEND=redis_server.url(6), TEST_QUEUE=f"runs-{uuid.uuid4().hex}",
                               PYTHONPATH=str(SEMANTICS), OTEL_SERVICE_NAME=path, **_receiver.env("grpc"), **extra)
    with Worker("semantics", SEMANTICS, envs["shorter"], quiet=True), Worker("semantics", SEMANTICS, envs["instrumentation's"], quiet=True):
        yield envs


def runs_of_one_trace(receiver: Receiver, env: dict[str, str]) -> list[ReceivedSpan]:
    result = run_launcher(["--", "python", "-c", PRODUCE.format(body=BODY)], env, cwd=SEMANTICS)
    assert result.returncode == 0, result.stderr
    trace_id = result.stdout.strip()

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = Counter(span.name for span in spans if span.trace_id == trace_id)
        return all(names[f"run/semantics.{task}"] >= count for task, count in RUNS.items())

    spans = [span for span in receiver.wait_for(complete, timeout=60) if span.trace_id == trace_id]
    by_id = {span.span_id: span for span in spans}
    return [span for span in spans if span.name.startswith("run/")], by_id


def described(run: ReceivedSpan, by_id: dict[str, ReceivedSpan], queue: str) -> tuple[object, ...]:
    """All a user sees of a run span, with what legitimately differs between the two workers made equal."""
    parent = by_id.get(run.parent_span_id)
    attributes = {key: str(value).replace(queue, "QUEUE") for key, value in run.attributes.items()
                  if not key.startswith("resource:") and key not in VARYING}
    return (run.name, run.kind, run.scope, parent.name if parent else None, sorted(attributes.items()), run.status_code, run.status_message,
            run.events, [sorted((key, str(value)) for key, value in event.items() if key != "exception.stacktrace") for event in run.event_attributes],
            sorted(key for key in run.attributes if key in VARYING))


def test_run_spans_are_the_instrumentations_own(workers: dict[str, dict[str, str]], receiver: Receiver) -> None:
    seen = {}
    for path, env in workers.items():
        runs, by_id = runs_of_one_trace(receiver, env)
        seen[path] = sorted(map(repr, (described(run, by_id, env["TEST_QUEUE"]) for run in runs)))
    assert len(seen["shorter"]) == sum(RUNS.values())
    assert seen["shorter"] == seen["instrumentation's"]
    described_runs = {run.split(",")[0]: run for run in seen["shorter"]}
    assert "RuntimeError" in described_runs["('run/semantics.fails'"] and "celery.retry.reason" in described_runs["('run/semantics.flaky'"]


WHICH_HANDLERS = """
from celery import Celery, signals
Celery("probe")
print(sorted(getattr(receiver, "__name__", "?") for _, receiver in signals.task_prerun.receivers))
"""


@pytest.mark.parametrize(("path", "expected"), [("shorter", "run_started"), ("instrumentation's", "_trace_prerun")])
def test_each_worker_used_the_path_it_was_given(path: str, expected: str, workers: dict[str, dict[str, str]]) -> None:
    result = run_launcher(["--", "python", "-c", WHICH_HANDLERS], workers[path])
    assert result.returncode == 0, result.stderr
    handlers = result.stdout
    assert expected in handlers and ({"run_started", "_trace_prerun"} - {expected}).pop() not in handlers, handlers
    assert ("_started_run" in handlers) == (path == "instrumentation's"), handlers  # the shorter path records the run metrics itself


UNINSTRUMENTS = """
from celery import Celery, signals
from opentelemetry.instrumentation.celery import CeleryInstrumentor
Celery("probe")
def handlers():
    return sorted(name for _, receiver in signals.task_prerun.receivers if (name := getattr(receiver, "__name__", "?")) in ("run_started", "_trace_prerun", "_started_run"))
seen = [handlers()]
CeleryInstrumentor().uninstrument()
seen.append(handlers())
CeleryInstrumentor().instrument()
seen.append(handlers())
print(seen)
"""


def test_a_program_that_uninstruments_celery_gets_no_run_spans_and_instruments_again_with_the_packages_handlers(workers: dict[str, dict[str, str]]) -> None:
    """The run metrics, recorded by the shorter path's receivers, go on by themselves once it is gone."""
    result = run_launcher(["--", "python", "-c", UNINSTRUMENTS], workers["shorter"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[['run_started'], ['_started_run'], ['_started_run', '_trace_prerun']]"


def test_a_run_span_ends_even_when_the_instrumentations_mapping_of_a_header_fails(workers: dict[str, dict[str, str]], receiver: Receiver) -> None:
    """A producer's header ``declare="x"`` makes the instrumentation's mapping raise: the span still ends, and the context is restored."""
    env = workers["shorter"]
    result = run_launcher(["--", "python", "-c", PRODUCE.format(body="s.add.apply_async((1, 1), headers={'declare': 'x'}); s.add.delay(2, 2)")], env, cwd=SEMANTICS)
    assert result.returncode == 0, result.stderr
    trace_id = result.stdout.strip()
    spans = receiver.wait_for(lambda spans: sum(s.name == "run/semantics.add" and s.trace_id == trace_id for s in spans) == 2, timeout=30)
    assert all(s.attributes.get("test.baggage") for s in spans if s.name == "run/semantics.add" and s.trace_id == trace_id)
