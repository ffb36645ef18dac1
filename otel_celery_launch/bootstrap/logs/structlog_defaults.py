"""structlog's defaults in the launcher's JSON look, for a program that configures structlog not at all.

Imported only once structlog is: by :func:`.setup.adopt_structlog_defaults`. A program that
configures structlog, even in part, gets structlog's own defaults back first, as bare; one that
resets them gets the launcher's again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from otel_celery_launch.bootstrap.export.logs import FIELDS
from otel_celery_launch.bootstrap.logs.ids import add_trace_ids


_RECORD_KEYS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_LEVELS = {"warn": "WARNING", "err": "ERROR", "fatal": "CRITICAL", "exception": "ERROR", "failure": "ERROR", "msg": "INFO", "log": "INFO"}


class _NamedPrintLogger(structlog.PrintLogger):
    """structlog's print logger, which keeps the name ``structlog.get_logger(name)`` gave."""

    def __init__(self, name: Any = None) -> None:
        super().__init__()
        self.name = name if isinstance(name, str) else None


def _print_logger(*args: Any) -> _NamedPrintLogger:
    return _NamedPrintLogger(*args[:1])


def _logger_name(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def _into_celery_logging(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Inside a Celery task, ``sys.stdout`` is Celery's logger: a printed line would be the text of a WARNING
    record. The event becomes a record of the logger of its name instead, at its level, with its keys, so
    Celery's handlers write it (to ``-f``'s file too) in the launcher's look, and log export sends it."""
    if type(sys.stdout).__name__ != "LoggingProxy":
        return event_dict
    fields = dict(event_dict)
    event, exc_info = str(fields.pop("event", "")), fields.pop("exc_info", None)
    name = getattr(logger, "name", None) or "structlog"
    level = logging.getLevelName(_LEVELS.get(method_name, method_name.upper()))
    target = logging.getLogger(name)
    if target.isEnabledFor(level if isinstance(level, int) else logging.INFO):
        if exc_info is True:
            exc_info = sys.exc_info()
        extra = {key: value for key, value in fields.items() if isinstance(key, str) and key not in _RECORD_KEYS}
        record = target.makeRecord(name, level if isinstance(level, int) else logging.INFO, "", 0, event, (), exc_info or None, extra=extra)
        setattr(record, FIELDS, fields)  # all of them, for the launcher's formatter; a format of the program's can name any in extra
        target.handle(record)
    raise structlog.DropEvent


def _event_first(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {"event": event_dict.pop("event", ""), **event_dict}


def json_defaults() -> tuple[list[Any], Any]:
    """structlog's default chain and logger factory, for a program that configures none, in the launcher's
    JSON look: one object per event with its text, the program's keys at top level, the level, the
    logger's name, the time and the ids, printed to stdout as structlog's defaults print."""
    chain = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.StackInfoRenderer(),
        structlog.dev.set_exc_info,
        _into_celery_logging,
        structlog.processors.add_log_level,
        _logger_name,
        structlog.processors.format_exc_info,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        _event_first,
        structlog.processors.JSONRenderer(),
    ]
    return chain, _print_logger
