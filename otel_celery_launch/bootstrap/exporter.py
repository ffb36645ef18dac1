"""The exporter the plan names, for spans, metrics or logs, imported only when a process first needs it.

Importing an exporter costs 90-130 ms and gRPC channels are not fork-safe, so
:mod:`~otel_celery_launch.bootstrap.delivery` builds one per process, after any fork. A
prefork worker's main process imports the module ahead, so that its children, forked and
recycled many times, do not each pay for the import.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from otel_celery_launch.bootstrap.diagnostics import silence
from otel_celery_launch.handoff import TRACES_PATH, ExporterPlan
from otel_celery_launch.masking import MASK

# The loggers through which the OTLP exporters report failed exports and retries.
EXPORTER_LOGGERS = ("opentelemetry.exporter.otlp.proto.grpc.exporter", "opentelemetry.exporter.otlp.proto.http.trace_exporter")

# (module, class) of each OTLP exporter, by protocol and signal
_EXPORTERS = {
    ("grpc", "traces"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("grpc", "metrics"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ("grpc", "logs"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("http/protobuf", "traces"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("http/protobuf", "metrics"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ("http/protobuf", "logs"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
}
_CONSOLE = {
    "traces": ("opentelemetry.sdk.trace.export", "ConsoleSpanExporter"),
    "metrics": ("opentelemetry.sdk.metrics.export", "ConsoleMetricExporter"),
    "logs": ("opentelemetry.sdk._logs.export", "ConsoleLogExporter"),
}


def signal_endpoint(plan: ExporterPlan, signal: str) -> str | None:
    """Where metrics and logs go: the traces URL, with ``/v1/metrics`` or ``/v1/logs`` in place of
    ``/v1/traces`` for OTLP/HTTP (at the root of the host when the traces URL has another path)."""
    if plan.endpoint is None or plan.protocol != "http/protobuf" or signal == "traces":
        return plan.endpoint
    parts = urlsplit(plan.endpoint)
    path = parts.path
    base = path[: -len(TRACES_PATH)] if path.rstrip("/").endswith(TRACES_PATH) else ""
    return urlunsplit(parts._replace(path=base.rstrip("/") + f"/v1/{signal}"))


def import_ahead(plan: ExporterPlan, signals: Sequence[str] = ("traces",)) -> None:
    """Import, and nothing more: no channel, no thread, so forking stays safe."""
    for signal in signals:
        if (plan.protocol, signal) in _EXPORTERS:
            importlib.import_module(_EXPORTERS[plan.protocol, signal][0])


def build_exporter(plan: ExporterPlan, signal: str = "traces", **options: Any) -> Any:
    """The exporter of ``signal`` (traces, metrics, logs) the plan names; ``options`` go to the OTLP exporter."""
    # The SDK parses OTEL_EXPORTER_OTLP_HEADERS again and would print an entry it cannot
    # parse, secret and all; the launcher has parsed and validated it already.
    silence("opentelemetry.util.re", "Header format invalid")
    if plan.protocol == "grpc":
        import grpc

        if _green("gevent"):  # else a call to a hung collector freezes the whole event loop
            from grpc.experimental.gevent import init_gevent

            init_gevent()
        module, name = _EXPORTERS["grpc", signal]
        GrpcExporter = getattr(importlib.import_module(module), name)
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
            **options,
        )
        return _OnRealThread(exporter) if eventlet else exporter
    if plan.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression

        module, name = _EXPORTERS["http/protobuf", signal]
        HttpExporter = getattr(importlib.import_module(module), name)
        query = urlsplit(plan.endpoint or "").query
        if query:  # urllib3 logs each request line at debug level, query and all
            logging.getLogger("urllib3.connectionpool").addFilter(_Masking(query))

        return HttpExporter(
            endpoint=signal_endpoint(plan, signal),
            certificate_file=plan.certificate,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=Compression.Gzip if plan.compression == "gzip" else Compression.NoCompression,
            **options,
        )
    module, name = _CONSOLE[signal]
    return getattr(importlib.import_module(module), name)(**options)


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


class _OnRealThread:
    """Exports from a real OS thread: eventlet cannot make gRPC's blocking calls cooperative.

    (gRPC supports gevent, see above; the HTTP exporter's sockets are patched by both.)
    Each call gets its own daemon thread of the unpatched ``threading`` module, which the
    green caller polls: eventlet's own pool of threads is joined at exit, and a call stuck
    there (on a lock eventlet made green, in a thread whose hub never runs) held the exit.
    """

    def __init__(self, exporter: Any) -> None:
        from eventlet import patcher, sleep

        self._exporter = exporter
        self._threading = patcher.original("threading")
        self._sleep = sleep

    def __getattr__(self, name: str) -> Any:  # what the SDK reads of a metric exporter: temporality, aggregation
        return getattr(self._exporter, name)

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = function(*args, **kwargs)
            except BaseException as error:  # handed to the caller
                outcome["error"] = error

        thread = self._threading.Thread(target=run, name="otel-celery-launch-export", daemon=True)
        thread.start()
        while thread.is_alive():
            self._sleep(0.005)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def export(self, batch: Any, **options: Any) -> Any:
        return self._call(self._exporter.export, batch, **options)

    def shutdown(self, **options: Any) -> None:
        self._call(self._exporter.shutdown, **options)
