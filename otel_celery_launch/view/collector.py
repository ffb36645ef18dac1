"""A local OTLP collector: gRPC and HTTP/protobuf, traces, metrics and logs, kept in memory (bounded).

For ``otel-celery-launch view`` and the demo: a developer sees all three signals on one
machine without installing a backend. It decodes with opentelemetry-proto and serves gRPC
with grpcio, both installed with the exporters.
"""

from __future__ import annotations

import importlib
import socket
import threading
import time
from typing import Any

from otel_celery_launch.view.http import OtlpHttpServer
from otel_celery_launch.view.model import COUNTED_KINDS, LogLine, Point, Span
from otel_celery_launch.view.received import Received

__all__ = ["CannotListen", "LocalCollector", "LogLine", "Span"]

GRPC_WORKERS = 4
MOST_GRPC_CALLS = 16  # calls running or queued for a worker; more are refused with RESOURCE_EXHAUSTED
MOST_TEXT = 4096  # characters kept of a name or a log body: what a person reads, and memory bounded by count as well


class CannotListen(Exception):
    """A port the collector cannot listen on, with the protocol it was for."""

    def __init__(self, protocol: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen for OTLP/{protocol} on {host}:{port}: {reason}")
        self.protocol = protocol


def _text(value: Any) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _service(resource: Any) -> str:
    return next((_text(kv.value)[:MOST_TEXT] for kv in resource.attributes if kv.key == "service.name"), "?")


class LocalCollector:
    """Listens on 127.0.0.1 (or ``host``); port 0 picks a free one, None leaves that protocol off.

    ``span_attributes=False`` keeps spans without their attributes: a reader that prints none
    (the view) holds twice as many spans in the same memory.
    """

    def __init__(self, http_port: int | None = 0, grpc_port: int | None = None, host: str = "127.0.0.1",
                 received: Received | None = None, span_attributes: bool = True) -> None:
        self.received = received or Received()
        self.span_attributes = span_attributes
        self.arrived = threading.Condition()
        self._http: OtlpHttpServer | None = None
        self._grpc: Any = None
        self.http_port: int | None = None  # the ports listened on, once chosen
        self.grpc_port: int | None = None
        if http_port is not None:
            try:
                self._http = OtlpHttpServer((host, http_port), self.take, self._grpc_on_http)
            except OSError as error:
                raise CannotListen("HTTP", host, http_port, error.strerror or str(error)) from None
            self.http_port = self._http.port
            self.http_url = f"http://{host}:{self.http_port}"
        if grpc_port is not None:
            try:
                self._grpc, port = self._grpc_server(host, grpc_port)
            except CannotListen:
                if self._http is not None:
                    self._http.server_close()
                raise
            self.grpc_port = port
            self.grpc_url = f"http://{host}:{port}"
            if self._http is not None:
                self._http.grpc_port = port

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
        """One export request's body, as both transports deliver it: decoded here, filed under the lock."""
        if signal == "traces":
            spans = _spans(body, self.span_attributes)
            with self.arrived:
                self.received.add_spans(spans, time.monotonic())
                self.arrived.notify_all()
        elif signal == "logs":
            lines = _logs(body)
            with self.arrived:
                self.received.add_logs(lines, time.monotonic())
                self.arrived.notify_all()
        elif signal == "metrics":
            points = _points(body)
            with self.arrived:
                self.received.add_points(points)
                self.arrived.notify_all()

    def _grpc_on_http(self) -> None:
        with self.arrived:
            self.received.grpc_on_http += 1

    def _grpc_server(self, host: str, port: int) -> tuple[Any, int]:
        """A gRPC server with bounded workers and calls, and the port it has; the port is tried first, as grpc logs its failure to stderr."""
        import grpc
        from concurrent import futures

        if port:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does: a port in TIME_WAIT is free
                try:
                    probe.bind((host, port))
                except OSError as error:
                    raise CannotListen("gRPC", host, port, error.strerror or str(error)) from None
        # no SO_REUSEPORT: a second view on the same port must fail, not take half the traffic
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS), options=[("grpc.so_reuseport", 0)],
                             maximum_concurrent_rpcs=MOST_GRPC_CALLS)
        self._add_grpc_services(server)
        try:
            bound = server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:  # taken between the try and now
            bound = 0
        if bound == 0:
            raise CannotListen("gRPC", host, port, "cannot bind")
        return server, bound

    def _add_grpc_services(self, server: Any) -> None:
        import grpc

        services = {
            "traces": ("opentelemetry.proto.collector.trace.v1.TraceService", "ExportTraceServiceResponse", "trace_service_pb2", "trace"),
            "metrics": ("opentelemetry.proto.collector.metrics.v1.MetricsService", "ExportMetricsServiceResponse", "metrics_service_pb2", "metrics"),
            "logs": ("opentelemetry.proto.collector.logs.v1.LogsService", "ExportLogsServiceResponse", "logs_service_pb2", "logs"),
        }
        handlers = []
        for signal, (service, response, module, package) in services.items():
            reply = getattr(importlib.import_module(f"opentelemetry.proto.collector.{package}.v1.{module}"), response)

            def export(body: bytes, _context: Any, signal: str = signal, reply: Any = reply) -> bytes:
                self.take(signal, body)
                return reply().SerializeToString()

            method = grpc.unary_unary_rpc_method_handler(export, request_deserializer=None, response_serializer=None)
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        server.add_generic_rpc_handlers(handlers)


def _spans(body: bytes, attributes: bool) -> list[Span]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = []
    for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
        service = _service(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            spans += [Span(s.name[:MOST_TEXT], s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind, service,
                           {kv.key: _text(kv.value) for kv in s.attributes} if attributes else {}, s.start_time_unix_nano)
                      for s in scope_spans.spans
                      if len(s.trace_id) == 16 and len(s.span_id) == 8 and len(s.parent_span_id) in (0, 8)]  # OTLP's ids, no other
    return spans


def _logs(body: bytes) -> list[LogLine]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    lines = []
    for resource_logs in ExportLogsServiceRequest.FromString(body).resource_logs:
        service = _service(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            lines += [LogLine(_text(r.body)[:MOST_TEXT], r.severity_text[:MOST_TEXT], r.trace_id.hex(), r.span_id.hex(),
                              scope_logs.scope.name[:MOST_TEXT], service, r.time_unix_nano)
                      for r in scope_logs.log_records if len(r.trace_id) in (0, 16) and len(r.span_id) in (0, 8)]
    return lines


def _points(body: bytes) -> list[Point]:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    points = []
    for resource_metrics in ExportMetricsServiceRequest.FromString(body).resource_metrics:
        service = _service(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data") or "?"
                data = getattr(metric, kind)
                delta = getattr(data, "aggregation_temporality", 0) == 1
                for point in data.data_points:
                    key = (service, metric.name, tuple(sorted((kv.key, _text(kv.value)) for kv in point.attributes)))
                    if kind in COUNTED_KINDS:
                        points.append(Point(key, kind, delta, point.sum, point.count))
                    else:
                        number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                        points.append(Point(key, kind, delta, number))
    return points
