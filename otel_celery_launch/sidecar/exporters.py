"""The OTLP exporter of each signal, as the plan names it: built only in the sidecar, which holds the credentials.

Nothing the exporters log is printed (see :mod:`.causes`), so their lines need no masking.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from otel_celery_launch.handoff import TRACES_PATH, ExporterPlan

# (module, class) of each exporter, by protocol and signal
_EXPORTERS = {
    ("grpc", "spans"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("grpc", "metrics"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ("grpc", "logs"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("http/protobuf", "spans"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("http/protobuf", "metrics"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ("http/protobuf", "logs"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
    ("console", "spans"): ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
}


def signal_endpoint(plan: ExporterPlan, signal: str) -> str | None:
    """Where metrics and logs go: the traces URL, with ``/v1/metrics`` or ``/v1/logs`` in place of
    ``/v1/traces`` for OTLP/HTTP (at the root of the host when the traces URL has another path)."""
    if plan.endpoint is None or plan.protocol != "http/protobuf" or signal == "spans":
        return plan.endpoint
    parts = urlsplit(plan.endpoint)
    path = parts.path
    base = path[: -len(TRACES_PATH)] if path.rstrip("/").endswith(TRACES_PATH) else ""
    return urlunsplit(parts._replace(path=base.rstrip("/") + f"/v1/{signal}"))


def build_exporter(plan: ExporterPlan, signal: str) -> Any:
    """The exporter of ``signal`` (spans, metrics, logs) the plan names."""
    module, name = _EXPORTERS[plan.protocol, signal]
    exporter_class = getattr(importlib.import_module(module), name)
    if plan.protocol == "grpc":
        import grpc

        credentials = None
        if plan.certificate and not plan.insecure:
            with open(plan.certificate, "rb") as pem:
                credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
        return exporter_class(
            endpoint=plan.endpoint,
            insecure=plan.insecure,
            credentials=credentials,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=grpc.Compression.Gzip if plan.compression == "gzip" else grpc.Compression.NoCompression,
            # One try per export (only DATA_LOSS is retried): the sidecar's pipeline retries, and
            # cuts its waits when the program ends, where the SDK's own retries would sleep on.
            retryable_error_codes=(grpc.StatusCode.DATA_LOSS,),
        )
    if plan.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression

        return exporter_class(
            endpoint=signal_endpoint(plan, signal),
            certificate_file=plan.certificate,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=Compression.Gzip if plan.compression == "gzip" else Compression.NoCompression,
        )
    return exporter_class()
