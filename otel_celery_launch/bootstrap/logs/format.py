"""The look of the lines the launcher formats: Celery's handlers, and the handler of last resort.

The handlers are restyled, not replaced: Celery keeps its logging set-up (``-l``, ``-f``,
stdout redirection) and we only give the handlers it made our formatter
(``after_setup_logger`` / ``after_setup_task_logger``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.stdlib import ProcessorFormatter

from otel_celery_launch.bootstrap.logs.ids import add_missing, current_task
from otel_celery_launch.bootstrap.export.logs import FIELDS
from otel_celery_launch.bootstrap.logs.style import writes_json
from otel_celery_launch.handoff import LogsPlan

_timestamp = structlog.processors.TimeStamper(fmt="iso", utc=True)


def _ids_from_record(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Stdlib records carry the ids of the moment they were made (see ids.install_record_ids).

    The program's own values (``extra=``) are shown as given; the task's ids are added
    only where the program set neither.
    """
    fields = getattr(event_dict.get("_record"), "__dict__", {})
    if fields.get("trace_id"):
        add_missing(event_dict, ("trace_id", "span_id"), (fields["trace_id"], fields.get("span_id", "")))
    if "task_id" in fields or "task_name" in fields:
        add_missing(event_dict, ("task_id", "task_name"), (fields.get("task_id", ""), fields.get("task_name", "")))
    elif fields.get("trace_id") and (task := current_task()) is not None:  # formatted on the logging thread
        add_missing(event_dict, ("task_id", "task_name"), task)
    return event_dict


def _fields_from_structlog(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog event that became a record inside a Celery task keeps its keys (see structlog_defaults)."""
    for key, value in getattr(event_dict.get("_record"), FIELDS, {}).items():
        event_dict.setdefault(key, value)
    return event_dict


class _Formatter(ProcessorFormatter):
    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()  # as logging.Formatter does: later handlers and tests read it
        return super().format(record)


def formatter(plan: LogsPlan, stream: Any) -> logging.Formatter:
    """The launcher's formatter for lines written to ``stream`` (made once per look)."""
    return _formatter(bool(getattr(stream, "isatty", lambda: False)()), not writes_json(plan, stream))


@functools.lru_cache(maxsize=4)
def _formatter(terminal: bool, console: bool) -> logging.Formatter:
    renderer: Any = structlog.dev.ConsoleRenderer(colors=terminal) if console else structlog.processors.JSONRenderer()
    finish: list[Any] = [ProcessorFormatter.remove_processors_meta]
    if not console:
        finish.append(structlog.processors.format_exc_info)
    return _Formatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _timestamp,
            _fields_from_structlog,
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
