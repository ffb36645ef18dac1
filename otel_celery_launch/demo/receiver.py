"""An embedded OTLP/HTTP receiver: the demo needs no collector."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    service: str
    attributes: dict[str, str]


class HttpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.arrived = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HttpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, name: str, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: any(span.name == name for span in self.spans), timeout)

    def _record(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = next((kv.value.string_value for kv in resource_spans.resource.attributes if kv.key == "service.name"), "?")
            for scope_spans in resource_spans.scope_spans:
                with self.arrived:
                    self.spans += [
                        Span(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind, service,
                             {kv.key: kv.value.string_value for kv in s.attributes})
                        for s in scope_spans.spans
                    ]
                    self.arrived.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                receiver._record(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler
