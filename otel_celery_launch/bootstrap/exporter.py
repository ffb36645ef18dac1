"""The span exporter, built in the process that exports, after any fork.

gRPC channels are not fork-safe, and importing an exporter costs 90-130 ms, so nothing
is imported or connected until a process ends its first span. That happens on the
application's thread: at interpreter exit it would be too late, as the exporter's import
needs a thread pool that no longer takes work then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_celery_launch.bootstrap.diagnostics import telemetry_failed
from otel_celery_launch.handoff import ExporterPlan


def build_exporter(plan: ExporterPlan) -> SpanExporter:
    if plan.protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        credentials = None
        if plan.certificate and not plan.insecure:
            with open(plan.certificate, "rb") as pem:
                credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
        return GrpcExporter(
            endpoint=plan.endpoint,
            insecure=plan.insecure,
            credentials=credentials,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=grpc.Compression.Gzip if plan.compression == "gzip" else grpc.Compression.NoCompression,
        )
    if plan.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(
            endpoint=plan.endpoint,
            certificate_file=plan.certificate,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=Compression.Gzip if plan.compression == "gzip" else Compression.NoCompression,
        )
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


class DeferredExporter(SpanExporter):
    """Builds the real exporter on first use in each process; if that fails, drops spans quietly."""

    def __init__(self, plan: ExporterPlan) -> None:
        self._plan = plan
        self._exporter: SpanExporter | None = None
        self._pid = 0

    def prepare(self) -> SpanExporter | None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            try:
                self._exporter = build_exporter(self._plan)
            except Exception as error:  # fail open: the span's owner must never see this
                self._exporter = None
                telemetry_failed(f"creating the {self._plan.protocol} exporter", error)
        return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        exporter = self.prepare()
        return SpanExportResult.FAILURE if exporter is None else exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        exporter = self.prepare()
        return exporter is None or exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self._exporter is not None and self._pid == os.getpid():
            self._exporter.shutdown()


class PrepareExporter(SpanProcessor):
    """Placed before the batch processor so that the exporter exists before any export."""

    def __init__(self, exporter: DeferredExporter) -> None:
        self._exporter = exporter

    def on_end(self, span: ReadableSpan) -> None:
        self._exporter.prepare()
