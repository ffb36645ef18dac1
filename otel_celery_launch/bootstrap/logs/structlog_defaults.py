"""structlog's defaults in the launcher's JSON look, for a program that configures structlog not at all.

Imported only once structlog is: by :func:`.setup.adopt_structlog_defaults`.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from otel_celery_launch.bootstrap.logs.ids import add_trace_ids


class _Printer:
    """structlog's print logger, except inside a Celery task: Celery turns ``sys.stdout`` into a
    logger there, and the JSON line would become the text of a WARNING record."""

    def __init__(self, name: Any = None) -> None:
        self.name = name if isinstance(name, str) else None

    def msg(self, message: str) -> None:
        stream = sys.stdout
        if type(stream).__name__ == "LoggingProxy":
            stream = sys.__stdout__
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


def _logger_name(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def _event_first(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {"event": event_dict.pop("event", ""), **event_dict}


def json_defaults() -> tuple[list[Any], Any]:
    """structlog's default chain and logger factory, for a program that configures none, in the launcher's
    JSON look: one object per event with its text, the program's keys at top level, the level, the
    logger's name, the time and the ids, printed to stdout as structlog's defaults print."""
    chain = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _logger_name,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        structlog.processors.format_exc_info,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        _event_first,
        structlog.processors.JSONRenderer(),
    ]
    return chain, _Printer
