"""Whatever the order the program imports things in, every module runs once and spans arrive.

Each program imports ``probe`` first (it counts module executions), then the application in
one of the orders users write, then publishes a chain with no import in between, and prints
what the probe found. A worker of each pool runs the probe too, inside a task.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, run_launcher

APP = SCENARIOS / "import_orders"

ORDERS = {
    "app then canvas names": "import tasks\nfrom celery import chain, chord, group\n",
    "canvas names first": "from celery import chain, chord, group\nimport tasks\n",
    "nested package": "from shop.checkout import add, place_order\nimport tasks\n",
    "app imported inside another import": "import web\nimport tasks\n",
    "import tasks last": "import tasks\n",
    "own provider and instrumentation": "import own_provider\nimport tasks\n",
    "sdk first": "from opentelemetry.sdk.trace import TracerProvider\nimport tasks\n",
    "instrumentation first": "import opentelemetry.instrumentation.celery\nimport tasks\n",
}
PUBLISH = "result = (tasks.add.s(1, 2) | tasks.add.s(3)).delay()\n"
REPORT = "import json\nprint(json.dumps(probe.report(tasks.add)))\n"


def env_for(redis: RedisServer, receiver: Receiver, service: str, db: int) -> dict[str, str]:
    """Each worker fixture has its own pair of Redis databases, so no worker takes another's tasks."""
    return clean_env(CELERY_BROKER_URL=redis.url(db), CELERY_RESULT_BACKEND=redis.url(db + 1), PYTHONPATH=str(APP),
                     OTEL_SERVICE_NAME=service, **receiver.env("grpc"))


def assert_untouched(report: dict[str, object]) -> None:
    assert report["executed_twice"] == [], report
    assert report["stale"] == [], report
    assert report["signature_is_canvas_signature"] is True, report
    assert report["chain"] == "_chain", report
    assert report["celery_chain_is_canvas_chain"] is True, report
    assert report["provider"] == "TracerProvider", report
    assert report["instrumented"] is True, report


@pytest.fixture(scope="module")
def prefork_worker(redis_server: RedisServer, _receiver: Receiver) -> Iterator[Worker]:
    with Worker("tasks", APP, env_for(redis_server, _receiver, "worker", db=2)) as worker:
        yield worker


@pytest.fixture(scope="module", params=["prefork", "gevent", "eventlet"])
def pool(request: pytest.FixtureRequest, redis_server: RedisServer, _receiver: Receiver) -> Iterator[str]:
    with Worker("tasks", APP, env_for(redis_server, _receiver, f"worker-{request.param}", db=4), pool=request.param):
        yield request.param


@pytest.mark.parametrize("order", ORDERS)
def test_every_module_runs_once_and_the_chain_is_traced(order: str, prefork_worker: Worker, redis_server: RedisServer, receiver: Receiver) -> None:
    program = "import probe\n" + ORDERS[order] + PUBLISH + REPORT
    result = run_launcher(["--", "python", "-c", program], env_for(redis_server, receiver, "producer", db=2))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "the launcher adds no output"
    assert_untouched(json.loads(result.stdout))

    spans = receiver.wait_for(lambda spans: sum(s.name == "run/import_orders.add" for s in spans) == 2)
    (first_publish,) = [s for s in spans if s.name == "apply_async/import_orders.add" and s.service == "producer"]
    runs = [s for s in spans if s.name == "run/import_orders.add"]
    assert {run.trace_id for run in runs} == {first_publish.trace_id}
    assert any(run.parent_span_id == first_publish.span_id for run in runs)


def test_the_worker_side_is_untouched(pool: str, redis_server: RedisServer, receiver: Receiver) -> None:
    program = "import tasks, json\nprint(json.dumps(tasks.report.delay().get(timeout=30)))\n"
    result = run_launcher(["--", "python", "-c", program], env_for(redis_server, receiver, "producer", db=4))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["executed_twice"] == [] and report["stale"] == [], report
    assert report["chain"] == "_chain" and report["instrumented"] is True, report
    spans = receiver.wait_for(lambda spans: any(s.name == "run/import_orders.report" for s in spans))
    (run,) = [s for s in spans if s.name == "run/import_orders.report"]
    (publish,) = [s for s in spans if s.name == "apply_async/import_orders.report"]
    assert (run.service, run.parent_span_id) == (f"worker-{pool}", publish.span_id)
