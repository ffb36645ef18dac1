"""Log records handed to the sidecar, beside the lines the program writes: only when ``logs.export`` is on.

Every record that reaches a logger's handlers (the program's, Celery's own, task loggers,
``print`` in a task, which Celery turns into records) and every event of structlog's default
chain also goes to the sidecar with its trace and span ids, severity and logger name. The
program's handlers, levels and formats are untouched. Records of the SDK and the launcher
itself are never sent, nor values that are not plain. A task's arguments and result never leave
the process unless ``logs.task_data`` says so: Celery's ``data`` extra, the same values in the
text of its "received", "succeeded" and "retry" lines (shown as ``<not exported>``), and its
pool's debug line that carries the whole message.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any

from otel_celery_launch import wire
from otel_celery_launch.bootstrap.export.channel import Channel

_OWN = ("opentelemetry", "otel_celery_launch")
_NOT_SENT = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "data", "taskName"}
_TASK_DATA = frozenset({"args", "kwargs", "argsrepr", "kwargsrepr", "return_value"})  # keys of Celery's log arguments
_WHOLE_MESSAGE = ("celery.pool", "TaskPool: Apply")  # a debug line with the message's headers and body
FIELDS = "otel_celery_launch_fields"  # a record's attribute: the keys of a structlog event that became the record
_SEVERITY = ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5), (1, 1))  # logging level -> OpenTelemetry severity number
_channel: Channel | None = None
_task_data = False


def severity(level: int) -> int:
    for floor, number in _SEVERITY:
        if level >= floor:
            return number + min(3, level - floor)
    return 0


def _plain(fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if isinstance(key, str) and key not in _NOT_SENT and isinstance(value, (str, bool, int, float))}


def _body(record: logging.LogRecord, task_data: bool) -> str:
    """The record's text; Celery's, whose arguments are a mapping, without the task's arguments and result."""
    if task_data or not isinstance(record.args, Mapping) or not _TASK_DATA.intersection(record.args):
        return record.getMessage()
    return str(record.msg) % {key: "<not exported>" if key in _TASK_DATA else value for key, value in record.args.items()}


def encode_record(record: logging.LogRecord, task_data: bool = False) -> tuple[Any, ...]:
    attributes = _plain(record.__dict__) | _plain(getattr(record, FIELDS, {}))
    if record.lineno:  # a structlog event has no place in the code
        attributes.update({"code.file.path": record.pathname, "code.function.name": record.funcName or "", "code.line.number": record.lineno})
    if record.exc_info and record.exc_info[0] is not None:
        kind, error, stack = record.exc_info
        attributes.update({"exception.type": kind.__name__, "exception.message": str(error),
                           "exception.stacktrace": "".join(traceback.format_exception(kind, error, stack))})
    trace = sys.modules.get("opentelemetry.trace")  # a span can be current only if the program imported it
    context = trace.get_current_span().get_span_context() if trace is not None else None
    ids = (context.trace_id, context.span_id, int(context.trace_flags)) if context is not None and context.is_valid else (0, 0, 0)
    level = "WARN" if record.levelname == "WARNING" else record.levelname  # OpenTelemetry's short name, as the SDK sends it
    return (int(record.created * 1e9), severity(record.levelno), level, _body(record, task_data), attributes, *ids, record.name)


def install_log_export(channel: Channel, task_data: bool = False) -> None:
    global _channel, _task_data
    if _channel is not None:
        return
    _channel, _task_data = channel, task_data
    call_handlers = logging.Logger.callHandlers

    def call_handlers_and_export(self: logging.Logger, record: logging.LogRecord) -> None:
        call_handlers(self, record)
        _export(record)

    logging.Logger.callHandlers = call_handlers_and_export  # type: ignore[method-assign]


def export_structlog_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A processor for structlog's default chain (which prints, bypassing logging): the event goes out too."""
    if _channel is not None and type(sys.stdout).__name__ != "LoggingProxy":  # in a task Celery logs the printed line
        level = logging.getLevelName(method_name.upper())
        fields = {key: value for key, value in event_dict.items() if key != "event"}
        record = logging.LogRecord(str(fields.pop("logger", "structlog")), level if isinstance(level, int) else logging.INFO,
                                   "", 0, str(event_dict.get("event", "")), None, None)
        record.__dict__.update({key: value for key, value in fields.items() if key not in record.__dict__})
        _export(record)
    return event_dict


def _export(record: logging.LogRecord) -> None:
    if _channel is None or record.name.partition(".")[0] in _OWN or threading.current_thread().name.startswith("otel-celery-launch"):
        return
    if not _task_data and record.name == _WHOLE_MESSAGE[0] and str(record.msg).startswith(_WHOLE_MESSAGE[1]):
        return
    try:
        item = encode_record(record, _task_data)
    except Exception:  # a record that cannot be read: the program's own line was written already
        return
    _channel.send(wire.LOGS, [item])
