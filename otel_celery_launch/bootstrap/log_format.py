"""One look for every log line of the process: structlog's and the standard library's.

structlog is routed through the standard library, so that one set of handlers (Celery's,
with its ``-l``, ``-f`` and stdout redirection, or the application's) writes every line.
The handlers are restyled, not replaced: Celery keeps its logging set-up and we only give
its handlers our formatter (``after_setup_logger`` / ``after_setup_task_logger``).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.stdlib import ProcessorFormatter

from otel_celery_launch.bootstrap.log_ids import add_missing, current_task
from otel_celery_launch.handoff import LogsPlan

_timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True)  # as in logs.configure_structlog


def _ids_from_record(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Stdlib records carry the ids of the moment they were made (see log_ids.install_record_ids)."""
    record = event_dict.get("_record")
    if getattr(record, "trace_id", ""):
        add_missing(event_dict, ("trace_id", "span_id"), (record.trace_id, record.span_id))  # type: ignore[union-attr]
        task = current_task()  # handlers that format on the logging thread: Celery's, and ours
        if task is not None and "task_id" not in record.__dict__ and "task_name" not in record.__dict__:  # type: ignore[union-attr]
            add_missing(event_dict, ("task_id", "task_name"), task)
    return event_dict


class _Formatter(ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()  # as logging.Formatter does: later handlers and tests read it
        return super().format(record)


def formatter(plan: LogsPlan, stream: Any) -> logging.Formatter:
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    console = plan.format == "console" or (plan.format == "auto" and terminal)
    renderer: Any = structlog.dev.ConsoleRenderer(colors=terminal) if console else structlog.processors.JSONRenderer()
    finish: list[Any] = [ProcessorFormatter.remove_processors_meta]
    if not console:
        finish.append(structlog.processors.format_exc_info)
    return _Formatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _timestamp,
            _ids_from_record,
        ],
        processors=[*finish, renderer],
    )


def restyle(logger: logging.Logger, plan: LogsPlan) -> None:
    """Only handlers with Celery's formatter: Celery made them (``setup_handlers``)."""
    from celery.utils.log import ColorFormatter

    for handler in logger.handlers:
        if isinstance(handler.formatter, ColorFormatter):
            handler.setFormatter(formatter(plan, getattr(handler, "stream", None)))
