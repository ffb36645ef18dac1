"""The trace, span and task ids of the work a log line belongs to.

Called for every log line, so it is kept cheap: no imports (a span can only be current if
the program imported OpenTelemetry, a task only if it imported Celery), and the hex
strings are formatted once per span context, not once per line. The span context's
validity decides, not ``is_recording()``: a span the sampler dropped still has ids that
other services log. Outside any span there are no ids, rather than zeros.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=512)
def _hex(trace_id: int, span_id: int) -> tuple[str, str]:
    return format(trace_id, "032x"), format(span_id, "016x")


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the current span, or None outside any."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    return _hex(context.trace_id, context.span_id) if context.is_valid else None


def current_task() -> tuple[str, str] | None:
    """``(task_id, task_name)`` of the Celery task running on this thread, or None."""
    state = sys.modules.get("celery._state")
    task = state.get_current_task() if state is not None else None
    return (task.request.id, task.name) if task is not None else None


def add_trace_ids(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id``/``span_id``, and ``task_id``/``task_name`` inside a task.

    Public: an application that configures structlog itself can put it in its own chain.
    """
    ids = current_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
        task = current_task()
        if task is not None:
            event_dict["task_id"], event_dict["task_name"] = task
    return event_dict


def install_record_factory() -> None:
    """Every stdlib record gets ``trace_id`` and ``span_id`` attributes ("" outside a span).

    Set when the record is made, on the thread that logs, so a formatter of the
    application's own (``%(trace_id)s`` in a dictConfig format) can use them wherever and
    whenever it runs.
    """
    make_record = logging.getLogRecordFactory()

    def record_with_ids(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.trace_id, record.span_id = current_ids() or ("", "")
        return record

    logging.setLogRecordFactory(record_with_ids)
