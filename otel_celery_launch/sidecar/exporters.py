"""The OTLP exporter of each signal, as the plan names it: built only in the sidecar, which holds the credentials.

Nothing the exporters log is printed (see :mod:`.causes`), so their lines need no masking.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cache
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
        # One try per export (only DATA_LOSS is retried): the sidecar's pipeline retries, and
        # cuts its waits when the program ends, where the SDK's own retries would sleep on.
        one_try = _accepts(exporter_class, "retryable_error_codes")  # exporters 1.42 and later
        exporter = exporter_class(
            endpoint=plan.endpoint,
            insecure=plan.insecure,
            credentials=credentials,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=grpc.Compression.Gzip if plan.compression == "gzip" else grpc.Compression.NoCompression,
            **({"retryable_error_codes": (grpc.StatusCode.DATA_LOSS,)} if one_try else {}),
        )
        return exporter if one_try else _one_try(exporter)
    if plan.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http import Compression

        return _no_raising(signal, exporter_class(
            endpoint=signal_endpoint(plan, signal),
            certificate_file=plan.certificate,
            headers=plan.headers,
            timeout=plan.timeout,
            compression=Compression.Gzip if plan.compression == "gzip" else Compression.NoCompression,
        ))
    return exporter_class()


def _accepts(exporter_class: Any, keyword: str) -> bool:
    """Whether the exporter's constructor takes ``keyword`` (the exporters gained options over releases)."""
    try:
        return keyword in inspect.signature(exporter_class).parameters
    except (TypeError, ValueError):
        return False


def _one_try(exporter: Any) -> Any:
    """A gRPC exporter before 1.42, made to try each export once, as ``retryable_error_codes`` does later.

    Those retry a refused export within the call, for about a minute before 1.35 and up to
    exporter.timeout after, and the pipeline's batch would wait there past the exit timeout.
    Their stub (``_client``, which 1.41 replaces after an UNAVAILABLE) is wrapped before each
    export so that a failed call is final: its status is handed on under a stand-in that the
    exporter's retry test does not match, and it logs the failure as it logs a final one.
    """
    export = exporter.export

    def export_once(*args: Any, **kwargs: Any) -> Any:
        stub = getattr(exporter, "_client", None)
        if stub is not None and not isinstance(stub, _OneTryStub):
            exporter._client = _OneTryStub(stub)
        return export(*args, **kwargs)

    exporter.export = export_once
    return exporter


class _OneTryStub:
    def __init__(self, stub: Any) -> None:
        self._stub = stub

    def Export(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (the stub's method)
        import grpc

        try:
            return self._stub.Export(*args, **kwargs)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            if code is None or code == grpc.StatusCode.DATA_LOSS:
                raise
            raise _final_error_class()(error, code) from error


@dataclass(frozen=True)
class FinalStatus:
    """A gRPC status, by name, that no exporter retries on: it equals no ``grpc.StatusCode``."""

    name: str
    details: str

    def __str__(self) -> str:
        return f"StatusCode.{self.name}"


@cache
def _final_error_class() -> type[Exception]:
    import grpc  # only in a sidecar that exports over gRPC

    class FinalError(grpc.RpcError):
        def __init__(self, error: Any, code: Any) -> None:
            super().__init__(str(error))
            self._error = error
            details = error.details() if callable(getattr(error, "details", None)) else ""
            self._status = FinalStatus(str(getattr(code, "name", code)), str(details or ""))

        def code(self) -> FinalStatus:
            return self._status

        def details(self) -> str:
            return self._status.details

        def trailing_metadata(self) -> Any:
            found = getattr(self._error, "trailing_metadata", None)
            return (found() if callable(found) else None) or ()

    return FinalError


@dataclass(frozen=True)
class _Failed:
    name: str = "FAILURE"  # what the pipeline reads of an export's result


def _no_raising(signal: str, exporter: Any) -> Any:
    """An OTLP/HTTP exporter whose failed connection is a failed export, as from 1.41 on.

    Before 1.41 a refused or broken connection raised out of ``export`` (the pipeline would
    take the batch for one that cannot be encoded, and drop it); here it is logged as the
    later releases log it, and the batch is tried again. Before 1.35 a 5xx answer was retried
    within the call for about a minute: those try once (``_retryable``, theirs alone).
    """
    import logging

    import requests

    export = exporter.export
    logger = logging.getLogger(type(exporter).__module__)

    def export_caught(*args: Any, **kwargs: Any) -> Any:
        try:
            return export(*args, **kwargs)
        except requests.exceptions.RequestException as error:
            logger.error("Failed to export %s batch code: %s, reason: %s", signal, None, error)
            return _Failed()

    exporter.export = export_caught
    if callable(getattr(exporter, "_retryable", None)):
        exporter._retryable = lambda response: False
    return exporter
