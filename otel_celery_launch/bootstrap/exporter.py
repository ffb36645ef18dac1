"""The exporter the plan names, imported only when a process first needs it.

Importing an exporter costs 90-130 ms and gRPC channels are not fork-safe, so
:mod:`~otel_celery_launch.bootstrap.delivery` builds one per process, after any fork. A
prefork worker's main process imports the module ahead, so that its children, forked and
recycled many times, do not each pay for the import.
"""

from __future__ import annotations

import importlib
import logging
import sys
from urllib.parse import urlsplit
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_celery_launch.bootstrap.diagnostics import silence
from otel_celery_launch.handoff import ExporterPlan
from otel_celery_launch.masking import MASK

# The loggers through which the OTLP exporters report failed exports and retries.
EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.grpc.exporter", "opentelemetry.exporter.otlp.proto.http.trace_exporter")

_MODULES = {
    "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter",
}


def import_ahead(plan: ExporterPlan) -> None:
    """Import, and nothing more: no channel, no thread, so forking stays safe."""
    if plan.protocol in _MODULES:
        importlib.import_module(_MODULES[plan.protocol])


def build_exporter(plan: ExporterPlan) -> SpanExporter:
    # The SDK parses OTEL_EXPORTER_OTLP_HEADERS again and would print an entry it cannot
    # parse, secret and all; the launcher has parsed and validated it already.
    silence("opentelemetry.util.re", "Header format invalid")
    if plan.protocol == "grpc":
        import grpc

        if _green("gevent"):  # else a call to a hung collector freezes the whole event loop
            from grpc.experimental.gevent import init_gevent

            init_gevent()
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        credentials = None
        if plan.certificate and not plan.insecure:
            with open(plan.certificate, "rb") as pem:
                credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
        eventlet = _green("eventlet")
        exporter = GrpcExporter(
            endpoint=plan.endpoint,
            insecure=plan.insecure,
            credentials=credentials,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=grpc.Compression.Gzip if plan.compression == "gzip" else grpc.Compression.NoCompression,
            # One try per export (only DATA_LOSS is retried): the launcher's loop retries, and a
            # process that exits cuts that loop's wait and tries once more, where the SDK's own
            # retries would sleep through the exit timeout (and, under eventlet, on a green event
            # inside a real thread, which shutdown cannot wake).
            retryable_error_codes=(grpc.StatusCode.DATA_LOSS,),
        )
        return _OnRealThread(exporter) if eventlet else exporter
    if plan.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        query = urlsplit(plan.endpoint or "").query
        if query:  # urllib3 logs each request line at debug level, query and all
            logging.getLogger("urllib3.connectionpool").addFilter(_Masking(query))

        return HttpExporter(
            endpoint=plan.endpoint,
            certificate_file=plan.certificate,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=Compression.Gzip if plan.compression == "gzip" else Compression.NoCompression,
        )
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


class _Masking(logging.Filter):
    """Replaces a secret in the arguments of the records it sees."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, str) and self.secret in arg for arg in record.args):
            record.args = tuple(arg.replace(self.secret, MASK) if isinstance(arg, str) else arg for arg in record.args)
        return True


def _green(library: str) -> bool:
    """Whether gevent or eventlet has patched the socket module of this process."""
    if library == "gevent":
        monkey = sys.modules.get("gevent.monkey")
        return monkey is not None and monkey.is_module_patched("socket")
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and patcher.is_monkey_patched("socket")


class _OnRealThread(SpanExporter):
    """Exports from a real OS thread: eventlet cannot make gRPC's blocking calls cooperative.

    (gRPC supports gevent, see above; the HTTP exporter's sockets are patched by both.)
    """

    def __init__(self, exporter: SpanExporter) -> None:
        from eventlet import tpool

        self._exporter = exporter
        self._execute = tpool.execute

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._execute(self._exporter.export, spans)

    def shutdown(self) -> None:
        self._execute(self._exporter.shutdown)
