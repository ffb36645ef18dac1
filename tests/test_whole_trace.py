"""One trace from a web request to the database: Flask under gunicorn, a prefork worker, PostgreSQL, Redis, HTTP.

Both servers run under the launcher with env-only settings, as a user would start them,
over gRPC and over HTTP. Every installed instrumentation is activated lazily in the
processes that import its library; nothing in the scenario's code mentions the launcher.
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.otlp_receiver import ReceivedSpan, Receiver
from tests.processes import LAUNCHER, SCENARIOS, Output, RedisServer, Worker, clean_env, free_port, poll

WHOLE_TRACE = SCENARIOS / "whole_trace"
DATABASE = "host=127.0.0.1 port=5432 dbname=test user=postgres"
KIND_SERVER, KIND_CLIENT = 2, 3


class Gunicorn:
    """``otel-celery-launch -- gunicorn -w 2 web:app``: a prefork web server in its own process group."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [LAUNCHER, "--", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}", "web:app"]
        self.process = subprocess.Popen(command, cwd=cwd, env={**env, "TEST_WEB": self.url}, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.output = Output(self.process)
        poll(self._answers, 30, "gunicorn to answer")

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.output.finish()
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return self.output.finish()


@dataclass
class Servers:
    web: Gunicorn
    worker: Worker


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"])
def servers(request: pytest.FixtureRequest, redis_server: RedisServer, _receiver: Receiver) -> Iterator[Servers]:
    env = clean_env(TEST_BROKER="amqp://guest:guest@127.0.0.1:5672//", TEST_QUEUE=f"whole-trace-{uuid.uuid4().hex}",
                    TEST_DATABASE=DATABASE, TEST_REDIS=redis_server.url(5), PYTHONPATH=str(WHOLE_TRACE),
                    **_receiver.env(request.param))
    web = Gunicorn({**env, "OTEL_SERVICE_NAME": "web"}, WHOLE_TRACE)
    try:
        with Worker("tasks", WHOLE_TRACE, {**env, "OTEL_SERVICE_NAME": "worker", "TEST_WEB": web.url}, quiet=True) as worker:
            yield Servers(web, worker)
    finally:
        web.stop()


def request_order(web: Gunicorn, order: int) -> tuple[str, str]:
    """A client request carrying its own span context and baggage; returns (trace id, client span id)."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    sent = urllib.request.Request(f"{web.url}/orders/{order}", method="POST",
                                  headers={"traceparent": f"00-{trace_id}-{span_id}-01", "baggage": "tenant=acme"})
    with urllib.request.urlopen(sent, timeout=10) as answer:
        assert answer.status == 200
    return trace_id, span_id


def one(spans: list[ReceivedSpan], description: str, test) -> ReceivedSpan:
    found = [span for span in spans if test(span)]
    assert len(found) == 1, f"expected one {description}, found {len(found)} in {[(s.service, s.name) for s in spans]}"
    return found[0]


def tree(spans: list[ReceivedSpan]) -> str:
    """The trace as an indented tree (service, kind, name), for failure messages and the closing note."""
    ids = {span.span_id for span in spans}
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted((s for s in spans if s.parent_span_id == parent), key=lambda s: s.name):
            lines.append(f"{'  ' * depth}{span.name}  [{span.service}, kind {span.kind}]")
            walk(span.span_id, depth + 1)

    for root in {span.parent_span_id for span in spans if span.parent_span_id not in ids}:
        lines.append(f"(parent {root or 'none'})")
        walk(root, 1)
    return "\n".join(lines)


def is_database(span: ReceivedSpan) -> bool:
    return span.attributes.get("db.system") == "postgresql" or span.attributes.get("db.system.name") == "postgresql"


def is_redis(span: ReceivedSpan) -> bool:
    return span.attributes.get("db.system") == "redis" or span.attributes.get("db.system.name") == "redis"


def test_a_web_request_is_one_trace_down_to_the_database(servers: Servers, receiver: Receiver) -> None:
    trace_id, client_span = request_order(servers.web, 41)

    def whole(spans: list[ReceivedSpan]) -> bool:
        mine = [span for span in spans if span.trace_id == trace_id]
        return sum(span.kind == KIND_SERVER for span in mine) >= 2 and any(span.name == "run/tasks.fetch" for span in mine) \
            and any(is_database(span) for span in mine) and any(is_redis(span) for span in mine)

    spans = [span for span in receiver.wait_for(whole, timeout=30) if span.trace_id == trace_id]
    order = one(spans, "server span of the request", lambda s: s.kind == KIND_SERVER and s.name.startswith("POST /orders"))
    publish = one(spans, "publish", lambda s: s.name == "apply_async/tasks.fetch")
    run = one(spans, "run", lambda s: s.name == "run/tasks.fetch")
    query = one(spans, "database query", is_database)
    command = one(spans, "Redis command", is_redis)
    call = one(spans, "outgoing HTTP call", lambda s: s.kind == KIND_CLIENT and s.name == "GET")
    ping = one(spans, "server span of the call", lambda s: s.kind == KIND_SERVER and s.name == "GET /ping")

    assert order.parent_span_id == client_span and order.service == "web"
    assert publish.parent_span_id == order.span_id and publish.service == "web"
    assert run.parent_span_id == publish.span_id and run.service == "worker"
    assert {query.parent_span_id, command.parent_span_id, call.parent_span_id} == {run.span_id}
    assert ping.parent_span_id == call.span_id and ping.service == "web"
    assert run.attributes["test.tenant"] == "acme"  # the request's baggage reached the task
    assert {query.service, command.service, call.service} == {"worker"}
    assert len(spans) == 7, tree(spans)
    print(tree(spans))
