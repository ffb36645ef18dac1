"""Log records to the collector, beside the lines the program writes: off unless ``logs.export`` is on.

Every record that reaches a logger's handlers (the program's, Celery's own, task loggers,
``print`` in a task, which Celery turns into records) and every event of structlog's default
chain is also handed to the SDK's logging handler, which sends it with its trace and span
ids, severity and logger name, through a batch processor bounded like the spans'. The
program's handlers, levels and formats are untouched. Records of the exporters, the SDK and
the launcher itself are never sent (an export that logs would feed itself), nor records
logged while an export runs. Set up with the tracer provider, at a moment that is safe.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

from otel_celery_launch.bootstrap.delivery import exit_after_spans
from otel_celery_launch.bootstrap.diagnostics import telemetry_failed
from otel_celery_launch.bootstrap.exporter import build_exporter, signal_endpoint
from otel_celery_launch.bootstrap.signal_failures import report_failures
from otel_celery_launch.handoff import Plan

_OWN = ("opentelemetry", "otel_celery_launch", "urllib3", "grpc", "requests")
_provider: Any = None
_handler: logging.Handler | None = None
_exit_timeout = 2.0  # the plan's batch.exit_timeout, once installed
_failed = threading.Event()  # a try failed in this process
_flushed_in = 0  # the process that flushed at exit already
_exporter: _PerProcessExporter | None = None


class _PerProcessExporter:
    """The log exporter, built in the process that exports (after any fork), on its first export."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._pid = 0
        self._exporter: Any = None

    def _here(self) -> Any:
        if self._pid != os.getpid():
            self._pid, self._exporter = os.getpid(), None
            try:
                self._exporter = build_exporter(self._plan.exporter, "logs")
            except Exception as error:
                telemetry_failed(f"creating the {self._plan.exporter.protocol} log exporter", error)
        return self._exporter

    def export(self, batch: Any) -> Any:
        from opentelemetry.instrumentation.utils import suppress_instrumentation
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        exporter = self._here()
        if exporter is None:
            return LogRecordExportResult.FAILURE
        try:
            with suppress_instrumentation():  # the exporter's own HTTP calls are not the program's
                return exporter.export(batch)
        except Exception:
            return LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        if self._exporter is not None and self._pid == os.getpid():
            self._exporter.shutdown()


def install_log_export(plan: Plan) -> None:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    global _provider, _handler, _exit_timeout, _failed, _exporter
    if _provider is not None:
        return
    _exit_timeout = plan.batch.exit_timeout
    _failed = report_failures("logs", plan.exporter, signal_endpoint(plan.exporter, "logs"))
    _provider = LoggerProvider(resource=Resource.create(plan.resource), shutdown_on_exit=False)
    _exporter = _PerProcessExporter(plan)
    _provider.add_log_record_processor(
        BatchLogRecordProcessor(
            _exporter,  # type: ignore[arg-type]
            schedule_delay_millis=plan.batch.schedule_delay * 1000,
            max_queue_size=plan.batch.max_queue_size,
            max_export_batch_size=plan.batch.max_export_batch_size,
            export_timeout_millis=plan.batch.export_timeout * 1000,
        )
    )
    _handler = LoggingHandler(level=logging.NOTSET, logger_provider=_provider)
    call_handlers = logging.Logger.callHandlers

    def call_handlers_and_export(self: logging.Logger, record: logging.LogRecord) -> None:
        call_handlers(self, record)
        _export(record)

    logging.Logger.callHandlers = call_handlers_and_export  # type: ignore[method-assign]
    exit_after_spans(flush_logs_before_exit)


def export_structlog_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A processor for structlog's default chain (which prints, bypassing logging): the event goes out too."""
    if _handler is not None and type(sys.stdout).__name__ != "LoggingProxy":  # in a task Celery logs the printed line
        level = logging.getLevelName(method_name.upper())
        fields = {key: value for key, value in event_dict.items() if key != "event"}
        record = logging.LogRecord(str(fields.pop("logger", "structlog")), level if isinstance(level, int) else logging.INFO,
                                   "", 0, str(event_dict.get("event", "")), None, None)
        record.__dict__.update({key: value for key, value in fields.items() if key not in record.__dict__})
        _export(record)
    return event_dict


def _export(record: logging.LogRecord) -> None:
    top = record.name.partition(".")[0]
    if _handler is None or top in _OWN or threading.current_thread().name.startswith(("Otel", "otel-celery-launch")):
        return
    try:
        _handler.handle(record)
    except Exception:  # a record the SDK cannot take: the program's own line was written already
        pass


def flush_logs_before_exit() -> None:
    """Bounded: prefork children leave through ``os._exit``; a hung collector must not hold the exit."""
    from otel_celery_launch.bootstrap.delivery import flush_at_exit

    global _flushed_in
    if _provider is None or _flushed_in == os.getpid():
        return
    _flushed_in = os.getpid()
    flush_at_exit("logs", _provider.force_flush, _failed, _exit_timeout, _exporter.shutdown)  # type: ignore[union-attr]  # made with the provider
