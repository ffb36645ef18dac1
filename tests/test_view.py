"""``otel-celery-launch view``: a worker's trace as a tree, its task's log line under the run span, and its metrics.

Also what makes the view trustworthy: a trace printed once, whole, though its producer holds its
spans for its batch delay; a missing parent marked; control characters from the wire escaped; a
taken port named in one line; bounded memory and connections; a gRPC client on the HTTP port told
where to go. OTLP is sent as a program's exporter would, protobuf over HTTP (or gRPC).
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otel_celery_launch.view.http import MOST_CONNECTIONS
from tests.processes import LAUNCHER, Output, RedisServer, Worker, clean_env, poll, run_launcher

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


class _View:
    """A running ``otel-celery-launch view`` on free ports, its output, and its URLs."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.output = Output(process)
        listening = self.output.wait_for("listening:")
        self.grpc_url, self.http_url = re.findall(r"at (http://[^,;]+)", listening)
        self.grpc_port, self.http_port = (int(url.rsplit(":", 1)[1]) for url in (self.grpc_url, self.http_url))

    def post(self, signal_: str, body: bytes) -> int:
        request = urllib.request.Request(f"{self.http_url}/v1/{signal_}", data=body, headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)


@contextmanager
def _view(*args: str) -> Iterator[_View]:
    process = subprocess.Popen([LAUNCHER, "view", "--grpc-port", "0", "--http-port", "0", *args],
                               env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield _View(process)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def _resource(service: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])


def _spans(service: str, spans: Sequence[tuple[str, str, str, str]]) -> bytes:
    """(name, trace id, span id, parent id or "") each, as one export request."""
    proto = [Span(name=name, trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span), parent_span_id=bytes.fromhex(parent),
                  start_time_unix_nano=index + 1) for index, (name, trace, span, parent) in enumerate(spans)]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(resource=_resource(service), scope_spans=[ScopeSpans(spans=proto)])]).SerializeToString()


def _logs(service: str, logger: str, lines: Sequence[tuple[str, str, str]]) -> bytes:
    """(body, trace id, span id) each, ids empty for a line outside spans."""
    records = [LogRecord(body=AnyValue(string_value=body), severity_text="INFO", trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span))
               for body, trace, span in lines]
    scope = ScopeLogs(log_records=records)
    scope.scope.name = logger
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=_resource(service), scope_logs=[scope])]).SerializeToString()


def _counter(service: str, name: str, values: Sequence[str]) -> bytes:
    """A delta counter with one point of 1 per value of its attribute ``what``."""
    points = [NumberDataPoint(as_int=1, attributes=[KeyValue(key="what", value=AnyValue(string_value=value))]) for value in values]
    metric = Metric(name=name, sum=Sum(data_points=points, aggregation_temporality=1, is_monotonic=True))
    request = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(resource=_resource(service), scope_metrics=[ScopeMetrics(metrics=[metric])])])
    return request.SerializeToString()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def test_view_prints_a_trace_once_whole_though_the_producer_holds_its_spans(tmp_path: Path, redis: RedisServer) -> None:
    """The worker exports its run span at once; the producer, at its default 5 s batch delay: one tree, no orphan first."""
    (tmp_path / "viewed.py").write_text(TASKS)
    with _view("--settle", "1") as view:
        env = clean_env(CELERY_BROKER_URL=redis.url(9), OTEL_EXPORTER_OTLP_ENDPOINT=view.grpc_url)
        with Worker("viewed", tmp_path, {**env, "OTEL_SERVICE_NAME": "worker", "OTEL_BSP_SCHEDULE_DELAY": "100"}, pool="solo") as worker:
            # the producer lives on (reading stdin) so that its spans leave at its batch delay, not at its exit
            producer = subprocess.Popen([LAUNCHER, "--service-name", "web", "--", "python", "-c", "import sys, viewed; viewed.greet.delay('ada'); sys.stdin.read()"],
                                        cwd=tmp_path, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                worker.output.wait_for("succeeded in")
                publish_line = view.output.wait_for("└─ apply_async/viewed.greet [producer]  (web,")
            finally:
                producer.communicate("", timeout=30)
    lines = view.output.finish().splitlines()
    runs = [index for index, line in enumerate(lines) if "run/viewed.greet" in line]
    publish = lines.index(publish_line)
    assert runs == [publish + 1] and _indent(lines[publish + 1]) > _indent(lines[publish]), "\n".join(lines)
    assert lines[publish - 1].startswith("trace ") and sum(line.startswith("trace ") for line in lines) == 1, "\n".join(lines)
    assert not any("not received" in line for line in lines), "\n".join(lines)


def test_view_waits_for_the_consumer_of_a_published_task(tmp_path: Path, redis: RedisServer) -> None:
    """The other order: the producer's spans leave at its exit, the worker's run span at its 5 s batch delay; still one tree."""
    (tmp_path / "viewed.py").write_text(TASKS)
    with _view("--settle", "1") as view:
        env = clean_env(CELERY_BROKER_URL=redis.url(9), OTEL_EXPORTER_OTLP_ENDPOINT=view.grpc_url)
        with Worker("viewed", tmp_path, {**env, "OTEL_SERVICE_NAME": "worker"}, pool="solo"):
            producer = run_launcher(["--service-name", "web", "--", "python", "-c", "import viewed; viewed.greet.delay('ada')"], env, cwd=tmp_path)
            assert producer.returncode == 0, producer.stderr
            run_line = view.output.wait_for("run/viewed.greet [consumer]  (worker,", timeout=30)
    lines = view.output.finish().splitlines()
    run = lines.index(run_line)
    assert "apply_async/viewed.greet [producer]  (web," in lines[run - 1] and _indent(lines[run]) > _indent(lines[run - 1]), "\n".join(lines)
    assert sum(line.startswith("trace ") for line in lines) == 1 and not any("continued" in line for line in lines), "\n".join(lines)


def test_view_marks_a_missing_parent_and_prints_late_spans_as_a_continuation() -> None:
    trace, orphan, parent = "ab" * 16, "11" * 8, "22" * 8
    with _view("--settle", "0.5", "--wait-for-parent", "1") as view:
        assert view.post("traces", _spans("worker", [("run/tasks.orphan", trace, orphan, parent)])) == 200
        marker = view.output.wait_for(f"(parent {parent} not received)")
        assert view.post("traces", _spans("worker", [("late child", trace, "33" * 8, orphan)])) == 200
        view.output.wait_for("late child")
    lines = view.output.finish().splitlines()
    first = lines.index(marker)
    assert lines[first - 1] == f"trace {trace}" and lines[first] == f"└─ (parent {parent} not received)", "\n".join(lines)
    assert lines[first + 1] == f"   └─ run/tasks.orphan  (worker, span {orphan})", "\n".join(lines)
    assert lines[first + 2:first + 5] == [f"trace {trace}, continued: its other spans are printed above", f"└─ (span {orphan}, printed above)",
                                          f"   └─ late child  (worker, span {'33' * 8})"], "\n".join(lines)
    assert sum("run/tasks.orphan" in line for line in lines) == 1


def test_view_escapes_control_characters_from_the_wire() -> None:
    trace, span = "cd" * 16, "44" * 8
    with _view("--settle", "0.5", "--metrics-every", "0.5") as view:
        assert view.post("logs", _logs("web", "app\x1b[31m", [("\x1b[8mhidden\x1b[0m", trace, span), ("loose \x9b2J", "", ""),
                                                                     ("café ✓ 日本", "", "")])) == 200
        assert view.post("traces", _spans("web\x1b[2J", [("\x1b]0;pwned\x07", trace, span, "")])) == 200
        assert view.post("metrics", _counter("web", "jobs\x1b[1A", ["\u202eevil", "ok"])) == 200
        view.output.wait_for("jobs\\x1b[1A{what=ok}")
        view.output.wait_for("hidden")
    text = view.output.finish()
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in text, ascii(text)
    assert "└─ \\x1b]0;pwned\\x07  (web\\x1b[2J, span 4444444444444444)" in text, text
    assert "   · INFO \\x1b[8mhidden\\x1b[0m  (app\\x1b[31m)" in text, text
    assert "log INFO loose \\x9b2J  (web, app\\x1b[31m)" in text, text
    assert "jobs\\x1b[1A{what=\\u202eevil} 1  (web)" in text, text
    assert "log INFO café ✓ 日本  (web, app\\x1b[31m)" in text, text  # other unicode is kept


@pytest.mark.parametrize("flag, protocol", [("--grpc-port", "gRPC"), ("--http-port", "HTTP")])
def test_view_names_a_taken_port_in_one_line(flag: str, protocol: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--http-port" if flag == "--grpc-port" else "--grpc-port"
        result = run_launcher(["view", flag, str(port), other, "0"], clean_env(), timeout=30)
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 1 and len(said.splitlines()) == 1, said
    assert f"OTLP/{protocol} on 127.0.0.1:{port}" in said and f"{flag} N (0 picks a free one)" in said and "Traceback" not in said, said


def test_view_holds_at_most_max_spans_and_max_series_and_still_answers() -> None:
    parents = [f"{index:016x}" for index in range(200)]
    with _view("--max-spans", "50", "--max-series", "2", "--settle", "0.5", "--metrics-every", "0.5") as view:
        waiting = [(f"waits {index}", f"{index + 1:032x}", f"{index + 1:016x}", parent) for index, parent in enumerate(parents)]
        assert view.post("traces", _spans("worker", waiting)) == 200  # 200 traces, each waiting for its parent
        view.output.wait_for("note: 150 spans and log lines dropped so far: more than --max-spans 50 were waiting")
        assert view.post("metrics", _counter("worker", "jobs", ["a", "b", "c", "d", "e"])) == 200
        view.output.wait_for("(3 points of further series not kept: over --max-series 2)")
        assert view.post("traces", _spans("worker", [("still here", "ef" * 16, "55" * 8, "")])) == 200
        view.output.wait_for("└─ still here  (worker, span 5555555555555555)")
    assert not any("waits " in line for line in view.output.finish().splitlines())  # the 50 kept wait for --wait-for-parent (7 s)


def test_view_tells_a_grpc_client_that_it_reached_the_http_port() -> None:
    with _view() as view, grpc.insecure_channel(view.http_url.removeprefix("http://")) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as raised:
            export(_spans("web", [("sent to the wrong port", "ab" * 16, "11" * 8, "")]), timeout=10)
        view.output.wait_for(f"note: a gRPC client sent to the HTTP port {view.http_port}; use port {view.grpc_port} or protocol http/protobuf")
    error: grpc.Call = raised.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED  # not UNAVAILABLE: the port answered
    assert error.details() == f"this is the OTLP/HTTP port {view.http_port}; send gRPC to port {view.grpc_port}, or use protocol http/protobuf"


def test_view_refuses_connections_beyond_its_cap_and_serves_again_once_they_close() -> None:
    with _view("--settle", "0.5") as view:
        address = ("127.0.0.1", view.http_port)
        idle = [socket.create_connection(address, timeout=10) for _ in range(MOST_CONNECTIONS)]
        try:
            with socket.create_connection(address, timeout=10) as extra:
                assert extra.recv(64).startswith(b"HTTP/1.0 503 ")
        finally:
            for connection in idle:
                connection.close()
        poll(lambda: _answers(view), 10, "the view to answer once the idle connections closed")
        view.output.wait_for("└─ served  (web, span 6666666666666666)")


def _answers(view: _View) -> bool:
    try:
        return view.post("traces", _spans("web", [("served", "ee" * 16, "66" * 8, "")])) == 200
    except OSError:  # refused while the closed connections' threads are still ending
        return False


def test_view_prints_a_deep_chain_in_linear_text_and_ignores_ids_otlp_does_not_have() -> None:
    trace = "cd" * 16
    chain = [(f"level {n}", trace, f"{n + 1:016x}", f"{n:016x}" if n else "") for n in range(3000)]
    odd = [("odd ids", "ef" * 8, "12" * 8, ""), ("odd span id", "ef" * 16, "12" * 1000, "")]
    with _view("--settle", "0.5") as view:
        assert view.post("traces", _spans("deep", chain + odd)) == 200
        view.output.wait_for("level 2999")
        assert view.post("traces", _spans("after", [("after", "aa" * 16, "bb" * 8, "")])) == 200
        view.output.wait_for("└─ after")
    lines = view.output.finish().splitlines()
    assert max(len(line) for line in lines) < 200, "indentation stops growing"
    assert any(line.lstrip().startswith("[depth 2999] └─ level 2999") for line in lines)
    assert not any("odd" in line for line in lines)
