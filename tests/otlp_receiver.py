"""An OTLP receiver for the tests: real gRPC and real HTTP/protobuf, recording every span, metric point and log record."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    service: str
    attributes: dict[str, object]
    status_code: int
    protocol: str
    headers: dict[str, str] = field(default_factory=dict, compare=False)
    events: tuple[str, ...] = ()
    scope: tuple[str, str, str] = field(default=("", "", ""), compare=False)  # name, version, schema URL
    status_message: str = field(default="", compare=False)
    event_attributes: tuple[dict[str, object], ...] = field(default=(), compare=False)

    KIND_PRODUCER = 4
    KIND_CONSUMER = 5


@dataclass(frozen=True)
class ReceivedPoint:
    """One data point of one metric in one export: a sum's or gauge's value, or a histogram's count and sum."""

    metric: str
    kind: str  # sum | gauge | histogram
    attributes: dict[str, object]
    value: float
    count: int
    service: str
    temporality: int  # 1 delta, 2 cumulative, 0 for gauges
    bounds: tuple[float, ...] = ()
    bucket_counts: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReceivedLog:
    body: str
    severity: str
    trace_id: str
    span_id: str
    scope: str
    attributes: dict[str, object]
    service: str


def _value(any_value) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Receiver:
    """Both servers on free loopback ports; ``wait_for`` polls the recorded spans."""

    def __init__(self, grpc_port: int = 0, http_port: int = 0) -> None:
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedPoint] = []
        self.logs: list[ReceivedLog] = []
        self.failing = False  # answer every export with "unavailable", as a restarting collector does
        self.rejecting: str | None = None  # "credentials" or "too large": answer every export so
        self.refused = 0
        self.delay = 0.0  # seconds every answer waits: a slow collector
        self._changed = threading.Condition()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_GrpcService(self), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_GrpcMetrics(self), self._grpc)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_GrpcLogs(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"127.0.0.1:{grpc_port}")
        self._http = ThreadingHTTPServer(("127.0.0.1", http_port), _http_handler(self))
        self._http.daemon_threads = True
        self.http_port = self._http.server_address[1]
        self._serving = False

    def start(self) -> Receiver:
        self._serving = True
        self._grpc.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None)
        if self._serving:  # shutdown() waits for serve_forever, which a receiver never started has not run
            self._http.shutdown()
        self._http.server_close()

    def env(self, protocol: str) -> dict[str, str]:
        """Environment for a launched process exporting here, quickly."""
        port = self.grpc_port if protocol == "grpc" else self.http_port
        return {
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }

    def clear(self) -> None:
        with self._changed:
            self.spans.clear()
            self.points.clear()
            self.logs.clear()
            self.failing = False
            self.rejecting = None
            self.refused = 0
            self.delay = 0.0

    def refuse(self) -> bool:
        """Whether to turn this export away (after the delay); counts the refusals so tests can wait on them."""
        if self.delay:
            time.sleep(self.delay)
        with self._changed:
            if self.failing:
                self.refused += 1
                self._changed.notify_all()
            return self.failing

    def record(self, request: trace_service_pb2.ExportTraceServiceRequest, protocol: str, headers: dict[str, str]) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            service=str(resource.get("service.name")),
                            attributes={**{f"resource:{k}": v for k, v in resource.items()}, **{kv.key: _value(kv.value) for kv in span.attributes}},
                            status_code=span.status.code,
                            protocol=protocol,
                            headers=headers,
                            events=tuple(event.name for event in span.events),
                            scope=(scope_spans.scope.name, scope_spans.scope.version, scope_spans.schema_url),
                            status_message=span.status.message,
                            event_attributes=tuple({kv.key: _value(kv.value) for kv in event.attributes} for event in span.events),
                        )
                    )
        with self._changed:
            self.spans.extend(received)
            self._changed.notify_all()

    def record_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        received = []
        for resource_metrics in request.resource_metrics:
            service = str(next((_value(kv.value) for kv in resource_metrics.resource.attributes if kv.key == "service.name"), None))
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    for point in data.data_points:
                        attributes = {kv.key: _value(kv.value) for kv in point.attributes}
                        temporality = getattr(data, "aggregation_temporality", 0)
                        if kind == "histogram":
                            received.append(ReceivedPoint(metric.name, kind, attributes, point.sum, point.count, service, temporality,
                                                          tuple(point.explicit_bounds), tuple(point.bucket_counts)))
                        else:
                            number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                            received.append(ReceivedPoint(metric.name, kind, attributes, number, 1, service, temporality))
        with self._changed:
            self.points.extend(received)
            self._changed.notify_all()

    def record_logs(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        received = []
        for resource_logs in request.resource_logs:
            service = str(next((_value(kv.value) for kv in resource_logs.resource.attributes if kv.key == "service.name"), None))
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    received.append(ReceivedLog(str(_value(record.body)), record.severity_text, record.trace_id.hex(), record.span_id.hex(),
                                                scope_logs.scope.name, {kv.key: _value(kv.value) for kv in record.attributes}, service))
        with self._changed:
            self.logs.extend(received)
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[], object], timeout: float = 20.0, what: str = "the condition") -> None:
        """Poll ``condition`` (which may read spans, points and logs) each time something arrives."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{what} never held within {timeout}s; metrics received: {sorted({p.metric for p in self.points})}")
                self._changed.wait(min(remaining, 0.5))

    def total(self, metric: str, **attributes: object) -> float:
        """A counter's sum over every export and process (deltas add up), or a histogram's count; matching attributes only."""
        with self._changed:
            points = [p for p in self.points if p.metric == metric and all(p.attributes.get(k) == v for k, v in attributes.items())]
            return sum(p.count if p.kind == "histogram" else p.value for p in points)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.spans):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    names = [(s.service, s.name) for s in self.spans]
                    raise AssertionError(f"spans never matched within {timeout}s; received: {names}")
                self._changed.wait(remaining)
            return list(self.spans)

    def named(self, name: str) -> list[ReceivedSpan]:
        with self._changed:
            return [span for span in self.spans if span.name == name]


class _GrpcService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        if self.receiver.refuse():
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector restarting")
        if self.receiver.rejecting:  # refuse() above has waited the delay
            code = grpc.StatusCode.UNAUTHENTICATED if self.receiver.rejecting == "credentials" else grpc.StatusCode.RESOURCE_EXHAUSTED
            context.abort(code, f"rejected: {dict(context.invocation_metadata())}")  # echoes the headers, as some do
        self.receiver.record(request, "grpc", dict(context.invocation_metadata()))
        return trace_service_pb2.ExportTraceServiceResponse()


class _GrpcMetrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        if self.receiver.refuse():
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector restarting")
        self.receiver.record_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _GrpcLogs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        if self.receiver.refuse():
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector restarting")
        self.receiver.record_logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


def _http_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            path = self.path.partition("?")[0]
            if path in ("/v1/metrics", "/v1/logs") and not receiver.refuse():
                if path == "/v1/metrics":
                    receiver.record_metrics(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
                    payload = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                else:
                    receiver.record_logs(logs_service_pb2.ExportLogsServiceRequest.FromString(body))
                    payload = logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if path != "/v1/traces" or receiver.refuse() or receiver.rejecting:
                status = 404 if path != "/v1/traces" else 503 if receiver.failing else 401 if receiver.rejecting == "credentials" else 413
                echo = json.dumps(dict(self.headers.items())).encode()  # as some collectors do: a secret in the body
                self.send_response(status)
                self.send_header("Content-Length", str(len(echo)))
                self.end_headers()
                self.wfile.write(echo)
                return
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.record(request, "http/protobuf", {k.lower(): v for k, v in self.headers.items()})
            payload = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class SilentCollector:
    """Accepts connections and never answers: a hung collector, for gRPC and HTTP alike.

    ``forward(port)`` brings it back: connections made from then on are relayed to a real
    receiver on ``port``, while those it held stay hung.
    """

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self._forward_to: int | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)
            if self._forward_to is not None:
                upstream = socket.create_connection(("127.0.0.1", self._forward_to))
                self._held.append(upstream)
                for source, target in ((connection, upstream), (upstream, connection)):
                    threading.Thread(target=_relay, args=(source, target), daemon=True).start()

    def forward(self, port: int) -> None:
        self._forward_to = port

    def env(self, protocol: str) -> dict[str, str]:
        return {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.port}"}

    def close(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


def _relay(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
