"""The guide's worker and producer, unchanged, under the launcher with env-only settings."""

from __future__ import annotations

import re

import pytest

from tests.otlp_receiver import ReceivedSpan, Receiver
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, run_launcher

TUTORIAL = SCENARIOS / "tutorial"
EXPECTED_BAGGAGE = "Processing order_12345 with baggage: {'tenant_id': 'acme_corp', 'request_source': 'api_gateway'}"
RUN = "run/worker_tasks.process_payment"
PUBLISH = "apply_async/worker_tasks.process_payment"


def _env(receiver: Receiver, redis: RedisServer, protocol: str, service: str, **extra: str) -> dict[str, str]:
    return clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME=service, **receiver.env(protocol), **extra)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_trace_and_baggage_cross_the_broker(protocol: str, receiver: Receiver, redis: RedisServer) -> None:
    with Worker("worker_tasks", TUTORIAL, _env(receiver, redis, protocol, "payments-worker")) as worker:
        producer = run_launcher(["--", "python", "producer.py"], _env(receiver, redis, protocol, "checkout-api"), cwd=TUTORIAL)
        assert producer.returncode == 0, producer.stderr
        worker.output.wait_for(EXPECTED_BAGGAGE)
        spans = receiver.wait_for(lambda spans: any(s.name == RUN for s in spans) and any(s.name == "checkout" for s in spans))
    assert {span.protocol for span in spans} == {protocol}

    (checkout,) = receiver.named("checkout")
    (publish,) = receiver.named(PUBLISH)
    runs = receiver.named(RUN)
    assert len(runs) == 1, f"expected exactly one run span, got {len(runs)}"
    (run,) = runs
    assert (checkout.service, publish.service, run.service) == ("checkout-api", "checkout-api", "payments-worker")
    assert publish.kind == ReceivedSpan.KIND_PRODUCER and run.kind == ReceivedSpan.KIND_CONSUMER
    assert publish.trace_id == run.trace_id == checkout.trace_id
    assert publish.parent_span_id == checkout.span_id
    assert run.parent_span_id == publish.span_id
    # the user's own calls were expected, not alarming
    assert "Overriding of current TracerProvider" not in worker.output.finish() + producer.stderr
    assert "Attempting to instrument while already instrumented" not in worker.output.finish() + producer.stderr


def test_debug_shows_the_traceparent_on_the_wire(receiver: Receiver, redis: RedisServer) -> None:
    """The tutorial replaces the global propagator itself; the inject/extract events survive that."""
    env = dict(OTEL_LOG_LEVEL="debug")
    with Worker("worker_tasks", TUTORIAL, _env(receiver, redis, "grpc", "payments-worker", **env)) as worker:
        producer = run_launcher(["--", "python", "producer.py"], _env(receiver, redis, "grpc", "checkout-api", **env), cwd=TUTORIAL)
        assert producer.returncode == 0, producer.stderr
        extracted = worker.output.wait_for("[celery] Extracting trace context from headers traceparent=")
        spans = receiver.wait_for(lambda spans: any(s.name == RUN for s in spans))
    injected = re.search(r"\[celery\] Injecting trace context into headers traceparent=(\S+)", producer.stderr)
    assert injected, producer.stderr
    (publish,) = [span for span in spans if span.name == PUBLISH]
    version, trace_id, span_id, flags = injected.group(1).split("-")
    assert (version, trace_id, span_id) == ("00", publish.trace_id, publish.span_id)
    assert int(flags, 16) & 1, "sampled flag"
    assert extracted.endswith(f"traceparent={injected.group(1)}")


def test_workers_started_by_celery_multi_are_traced(tmp_path, receiver: Receiver, redis: RedisServer) -> None:
    """The hook rides on the environment, so processes the command spawns get it too."""
    env = _env(receiver, redis, "grpc", "multi-worker")
    files = [f"--pidfile={tmp_path}/%n.pid", f"--logfile={tmp_path}/%n%I.log"]
    start = run_launcher(["--", "celery", "multi", "start", "w1", "-A", "worker_tasks", "-P", "solo",
                          f"--workdir={TUTORIAL}", *files], env, cwd=TUTORIAL)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        producer = run_launcher(["--", "python", "producer.py"], _env(receiver, redis, "grpc", "checkout-api"), cwd=TUTORIAL)
        assert producer.returncode == 0, producer.stderr
        receiver.wait_for(lambda spans: any(s.name == RUN for s in spans))
    finally:
        stop = run_launcher(["--", "celery", "multi", "stopwait", "w1", *files], env, cwd=TUTORIAL)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    (run,) = receiver.named(RUN)
    (publish,) = receiver.named(PUBLISH)
    assert (run.service, run.parent_span_id, run.trace_id) == ("multi-worker", publish.span_id, publish.trace_id)
