"""The trace, span and task ids of the work a log line belongs to.

Called for every log line, so it is kept cheap: no imports (a span can only be current if
the program imported OpenTelemetry, a task only if it imported Celery), and the hex
strings are formatted once per span context, not once per line. The span context's
validity decides, not ``is_recording()``: a span the sampler dropped still has ids that
other services log. Outside any span there are no ids, rather than zeros.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=512)
def _hex(trace_id: int, span_id: int) -> tuple[str, str]:
    return format(trace_id, "032x"), format(span_id, "016x")


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span, or None outside any.

    A log line may come while OpenTelemetry is half imported (on this thread or another):
    then there are no ids, rather than an error in the program's logging call.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
    except Exception:
        return None
    return _hex(context.trace_id, context.span_id) if context.is_valid else None


def current_task() -> tuple[str, str] | None:
    """``(task_id, task_name)`` of the Celery task running on this thread, or None (also while Celery is half imported)."""
    state = sys.modules.get("celery._state")
    if state is None:
        return None
    try:
        task = state.get_current_task()
        return (task.request.id, task.name) if task is not None else None
    except Exception:
        return None


def add_trace_ids(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id``/``span_id``, and ``task_id``/``task_name`` inside a task.

    Each pair is added only where the program set neither of its keys: its own values stay.
    Public: an application that configures structlog itself can put it in its own chain.
    """
    ids = current_ids()
    if ids is not None:
        add_missing(event_dict, ("trace_id", "span_id"), ids)
        task = current_task()
        if task is not None:
            add_missing(event_dict, ("task_id", "task_name"), task)
    return event_dict


def add_missing(fields: MutableMapping[str, Any], keys: tuple[str, str], values: tuple[str, str]) -> None:
    if keys[0] not in fields and keys[1] not in fields:
        fields[keys[0]], fields[keys[1]] = values


def install_record_ids() -> None:
    """Every stdlib record gets ``trace_id`` and ``span_id`` attributes ("" outside a span).

    Set when the logger makes the record, on the thread that logs, so a formatter of the
    application's own (``%(trace_id)s`` in a dictConfig format) can use them wherever and
    whenever it runs. Set after ``extra=`` is applied, and only where it set neither: a
    record factory would set them first, and ``extra={"trace_id": ...}`` would then raise.
    """
    make_record = logging.Logger.makeRecord

    @functools.wraps(make_record)
    def make_record_with_ids(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(self, *args, **kwargs)
        add_missing(record.__dict__, ("trace_id", "span_id"), current_ids() or ("", ""))
        return record

    logging.Logger.makeRecord = make_record_with_ids  # type: ignore[method-assign]
