"""A local OTLP collector: gRPC and HTTP/protobuf, traces, metrics and logs, kept in memory.

For ``otel-celery-launch view`` and the demo: a developer sees all three signals on one
machine without installing a backend. It decodes with opentelemetry-proto and serves gRPC
with grpcio, both installed with the exporters.
"""

from __future__ import annotations

import zlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


MOST_BYTES = 64 << 20  # largest export request taken, compressed or not


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    service: str
    attributes: dict[str, str]
    start: int = 0  # nanoseconds since the epoch


@dataclass(frozen=True)
class LogLine:
    body: str
    severity: str
    trace_id: str
    span_id: str
    logger: str
    service: str
    time: int = 0


@dataclass
class MetricTotal:
    """What arrived for one metric and attribute set: a sum of deltas, a gauge's last value, or a histogram's count and sum."""

    kind: str
    value: float = 0.0
    count: int = 0


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    metrics: dict[tuple[str, str, tuple[tuple[str, str], ...]], MetricTotal] = field(default_factory=dict)  # (service, name, attributes)
    last_arrival: dict[str, float] = field(default_factory=dict)  # trace id -> monotonic time of its latest span
    metric_exports: int = 0  # export requests of metrics taken so far


def _text(value: Any) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _service(resource: Any) -> str:
    return next((_text(kv.value) for kv in resource.attributes if kv.key == "service.name"), "?")


class LocalCollector:
    """Listens on 127.0.0.1 (or ``host``); port 0 picks a free one, None leaves that protocol off."""

    def __init__(self, http_port: int | None = 0, grpc_port: int | None = None, host: str = "127.0.0.1") -> None:
        self.received = Received()
        self.arrived = threading.Condition()
        self._http = None
        self._grpc = None
        if http_port is not None:
            self._http = ThreadingHTTPServer((host, http_port), self._http_handler())
            self._http.daemon_threads = True
            self.http_url = f"http://{host}:{self._http.server_address[1]}"
        if grpc_port is not None:
            import grpc
            from concurrent import futures

            # no SO_REUSEPORT: a second view on the same port must fail, not take half the traffic
            self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
            self._add_grpc_services(self._grpc)
            port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
            if port == 0:
                raise OSError(f"cannot listen for gRPC on {host}:{grpc_port}")
            self.grpc_url = f"http://{host}:{port}"

    def __enter__(self) -> LocalCollector:
        if self._http is not None:
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        if self._grpc is not None:
            self._grpc.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def wait_for_span(self, name: str, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: any(span.name == name for span in self.received.spans), timeout)

    def take(self, signal: str, body: bytes) -> None:
        """One export request's body, as both transports deliver it."""
        if signal == "traces":
            self._take_traces(body)
        elif signal == "metrics":
            self._take_metrics(body)
        elif signal == "logs":
            self._take_logs(body)

    def _take_traces(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        spans = []
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            service = _service(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                spans += [Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind, service,
                               {kv.key: _text(kv.value) for kv in s.attributes}, s.start_time_unix_nano) for s in scope_spans.spans]
        with self.arrived:
            self.received.spans += spans
            for span in spans:
                self.received.last_arrival[span.trace_id] = time.monotonic()
            self.arrived.notify_all()

    def _take_logs(self, body: bytes) -> None:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        lines = []
        for resource_logs in ExportLogsServiceRequest.FromString(body).resource_logs:
            service = _service(resource_logs.resource)
            for scope_logs in resource_logs.scope_logs:
                lines += [LogLine(_text(r.body), r.severity_text, r.trace_id.hex(), r.span_id.hex(), scope_logs.scope.name, service,
                                  r.time_unix_nano) for r in scope_logs.log_records]
        with self.arrived:
            self.received.logs += lines
            self.arrived.notify_all()

    def _take_metrics(self, body: bytes) -> None:
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        with self.arrived:
            for resource_metrics in ExportMetricsServiceRequest.FromString(body).resource_metrics:
                service = _service(resource_metrics.resource)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        kind = metric.WhichOneof("data") or "?"
                        data = getattr(metric, kind)
                        delta = getattr(data, "aggregation_temporality", 0) == 1
                        for point in data.data_points:
                            key = (service, metric.name, tuple(sorted((kv.key, _text(kv.value)) for kv in point.attributes)))
                            total = self.received.metrics.setdefault(key, MetricTotal(kind))
                            if kind == "histogram":
                                total.count = total.count + point.count if delta else point.count
                                total.value = total.value + point.sum if delta else point.sum
                            else:
                                number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                                total.value = total.value + number if delta and kind == "sum" else number
                                total.count += 1
            self.received.metric_exports += 1
            self.arrived.notify_all()

    def _http_handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self
        paths = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                signal = paths.get(self.path.partition("?")[0])
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    if not 0 <= length <= MOST_BYTES:
                        raise ValueError("body too large")
                    body = self.rfile.read(length)
                    if self.headers.get("Content-Encoding") == "gzip":
                        inflate = zlib.decompressobj(wbits=31)
                        body = inflate.decompress(body, MOST_BYTES)
                        if inflate.unconsumed_tail:
                            raise ValueError("body too large")
                    if signal is not None:
                        collector.take(signal, body)
                    status = 200 if signal is not None else 404
                except Exception:  # not OTLP protobuf, or too large: refuse it, as a collector would
                    status = 400
                    self.close_connection = True
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _add_grpc_services(self, server: Any) -> None:
        import grpc

        services = {
            "traces": ("opentelemetry.proto.collector.trace.v1.TraceService", "ExportTraceServiceResponse", "trace_service_pb2", "trace"),
            "metrics": ("opentelemetry.proto.collector.metrics.v1.MetricsService", "ExportMetricsServiceResponse", "metrics_service_pb2", "metrics"),
            "logs": ("opentelemetry.proto.collector.logs.v1.LogsService", "ExportLogsServiceResponse", "logs_service_pb2", "logs"),
        }
        import importlib

        handlers = []
        for signal, (service, response, module, package) in services.items():
            reply = getattr(importlib.import_module(f"opentelemetry.proto.collector.{package}.v1.{module}"), response)

            def export(body: bytes, _context: Any, signal: str = signal, reply: Any = reply) -> bytes:
                self.take(signal, body)
                return reply().SerializeToString()

            method = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=None)
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        server.add_generic_rpc_handlers(handlers)
