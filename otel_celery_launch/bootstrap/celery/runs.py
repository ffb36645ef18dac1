"""The span of each task run: the Celery instrumentation's own span, started and ended by a shorter path.

The instrumentation's ``task_prerun`` and ``task_postrun`` handlers cost more than the task
itself: a context manager per run, two context attaches, every request attribute set on the
span one call (and one lock) at a time, a run-time histogram. Here the same span is made with
the instrumentation's own parts, so its name, kind, parent, attributes and scope follow the
installed release: its tracer, its header getter, its mapping of request fields to attributes
(collected into a dict, then set in one call), and its store of running spans, so that its
``task_failure`` and ``task_retry`` handlers, left in place, find the span as they always do
and keep their own error and retry semantics. Its publish handlers are untouched too.

The launcher's own run metrics, when on, are recorded by the same two receivers (one call
each, not two more receivers per task), and go on by themselves if the program uninstruments.

Used only where the launcher itself instrumented Celery with no options: a program that
instrumented first (its own provider, span links) keeps the handlers it asked for, and so does
a plan that wants the instrumentation's ``flower.task.runtime.seconds`` (its handlers measure it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_celery_launch.bootstrap.celery.metrics import RunReceivers

_RUN_HANDLERS = ("_trace_prerun", "_trace_postrun")


class _Collected(dict):  # type: ignore[type-arg]
    """Stands in for the span while the instrumentation maps request fields to attributes."""

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        self[key] = value


def take_over_run_spans(instrumentor: Any, metrics: RunReceivers | None = None) -> bool:
    """Swap the instrumentation's run handlers for the shorter path; False (nothing changed) if its parts are not all there.

    ``metrics``: the launcher's run metrics, called from these instead of connected (taking the
    request too, looked up once).
    """
    from celery import signals
    from opentelemetry import context, trace
    from opentelemetry.instrumentation import celery as instrumentation
    from opentelemetry.instrumentation.celery import utils
    from opentelemetry.propagate import extract

    tracer = getattr(instrumentor, "_tracer", None)
    getter = getattr(instrumentation, "celery_getter", None)
    parts = ("attach_context", "retrieve_context", "detach_context", "set_attributes_from_context")
    if tracer is None or getter is None or getattr(instrumentor, "_use_span_links", False) \
            or not all(hasattr(utils, part) for part in parts) or not all(hasattr(instrumentor, name) for name in _RUN_HANDLERS):
        return False
    attach, detach, set_span_in_context, consumer = context.attach, context.detach, trace.set_span_in_context, trace.SpanKind.CONSUMER
    package: Any = utils  # its parts take a span where a dict stands in, and a store entry without a context manager
    attach_run, retrieve_run, detach_run, from_context = package.attach_context, package.retrieve_context, package.detach_context, package.set_attributes_from_context
    missing = logging.getLogger(instrumentation.__name__)

    def run_started(task: Any = None, task_id: str | None = None, **_: Any) -> None:
        request = None
        try:
            if task is not None and task_id is not None:
                request = task.request
                parent = extract(request, getter=getter) or None
                span = tracer.start_span(f"run/{task.name}", context=parent, kind=consumer)
                token = attach(set_span_in_context(span, parent))
                attach_run(task, task_id, span, None, token)  # where the failure and retry handlers look
        finally:  # counted whatever happened to the span, as by a receiver of their own
            if metrics is not None:
                metrics.started(task_id=task_id, task=task, request=request)

    def run_ended(**kwargs: Any) -> None:
        try:
            end_run(kwargs)
        finally:
            if metrics is not None:
                metrics.finished(task_id=kwargs.get("task_id"), task=kwargs.get("task"), state=kwargs.get("state"))

    def end_run(kwargs: dict[str, Any]) -> None:
        task, task_id = kwargs.get("task"), kwargs.get("task_id")
        if task is None or task_id is None:
            return
        stored = retrieve_run(task, task_id)
        if stored is None:
            missing.warning("no existing span found for task_id=%s", task_id)
            return
        span, _, token = stored
        try:
            if span.is_recording():
                attributes = _Collected({"celery.action": "run"})
                from_context(attributes, kwargs)
                from_context(attributes, task.request)  # raises on some headers a producer may send (declare="x")
                attributes["celery.task_name"] = task.name
                span.set_attributes(attributes)
        finally:  # the span ends and the context is restored whatever happened: Celery logs the error, as the package's
            span.end()
            detach_run(task, task_id)
            detach(token)

    def uninstrument(**kwargs: Any) -> None:
        """The program's ``uninstrument()`` ends these too (the metrics go on); an ``instrument()`` after it connects the package's own."""
        signals.task_prerun.disconnect(run_started)
        signals.task_postrun.disconnect(run_ended)
        if metrics is not None:
            metrics.connect()
        del instrumentor._uninstrument
        instrumentor._uninstrument(**kwargs)

    signals.task_prerun.disconnect(instrumentor._trace_prerun)
    signals.task_postrun.disconnect(instrumentor._trace_postrun)
    signals.task_prerun.connect(run_started, weak=False)
    signals.task_postrun.connect(run_ended, weak=False)
    instrumentor._uninstrument = uninstrument
    return True
