"""A publish that fails must not leave its span open and current.

The Celery instrumentation starts the publish span in ``before_task_publish`` and ends it
in ``after_task_publish``. When the broker is down the second signal never comes: the
span stays open and current, and everything the thread does next, every log line and
every span, is parented to a publish that failed long ago.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry import context, trace
from opentelemetry.instrumentation.celery import utils
from opentelemetry.trace import Status, StatusCode


def end_failed_publishes() -> None:
    from celery.app.base import Celery

    send_task = Celery.send_task

    @functools.wraps(send_task)
    def send_task_ending_a_failed_publish(app: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        before = context.get_current()
        try:
            return send_task(app, name, *args, **kwargs)
        except BaseException as error:
            _end(name, before, error)
            raise

    Celery.send_task = send_task_ending_a_failed_publish  # type: ignore[method-assign]


def _end(task_name: str, before: context.Context, error: BaseException) -> None:
    span = trace.get_current_span()
    if span is trace.get_current_span(before):
        return  # the publish never started, or was already ended
    task = utils.retrieve_task_from_sender({"sender": task_name})
    task_id = getattr(span, "attributes", {}).get("messaging.message.id")
    if task_id and (stored := utils.retrieve_context(task, task_id, is_publish=True)):
        # the instrumentation's own context manager: error status, end, detach
        stored[1].__exit__(type(error), error, error.__traceback__)
        utils.detach_context(task, task_id, is_publish=True)
        return
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: publish failed"))
    span.end()
    context.attach(before)
