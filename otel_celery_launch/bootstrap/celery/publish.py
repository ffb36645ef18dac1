"""Around every publish (``Celery.send_task``): first use, the publishing app's task, a failed publish.

* The first publish is a first use of Celery: the instrumentation is set up then, if it
  was not yet (see :mod:`otel_celery_launch.bootstrap.activation.imports`).
* The instrumentation's publish handlers look the task up through ``current_app``, which
  may not be the app that publishes, may refuse (an app that must not auto-finalize), and
  then logs an error at every publish. The publishing app is known here: its task is
  handed to those handlers instead, found the way ``send_task`` itself finds it.
* The instrumentation starts the publish span in ``before_task_publish`` and ends it in
  ``after_task_publish``. When the broker is down the second signal never comes, and for
  a task the app does not know (``send_task("name")``) the second handler does nothing:
  the span would stay open and current, parent of everything the thread does next.

Imports nothing at import time: it is wrapped around ``send_task`` while ``celery.app`` is
still being imported.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

_publishing: ContextVar[tuple[str, Any] | None] = ContextVar("otel_celery_launch_publishing", default=None)


def watch_publishes(celery_class: type, first_use: Callable[[], None]) -> None:
    send_task = celery_class.send_task  # type: ignore[attr-defined]

    @functools.wraps(send_task)
    def send_task_watched(app: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        first_use()
        otel_context = sys.modules.get("opentelemetry.context")
        before = otel_context.get_current() if otel_context is not None else None
        task = kwargs.get("task_type") or _registered(app, name)
        token = _publishing.set((name, task))
        try:
            result = send_task(app, name, *args, **kwargs)
        except BaseException as error:
            if before is not None:
                _end(before, task, error)
            raise
        finally:
            _publishing.reset(token)
        if before is not None and task is None:  # the instrumentation ends only publishes of tasks it finds
            _end(before, None, None)
        return result

    celery_class.send_task = send_task_watched  # type: ignore[attr-defined]


def task_from_sender(lookup: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], Any]:
    """The instrumentation's task lookup, answered from the publishing app, never raising."""

    @functools.wraps(lookup)
    def task_of_the_publishing_app(kwargs: Mapping[str, Any]) -> Any:
        publishing = _publishing.get()
        if publishing is not None and publishing[0] == kwargs.get("sender"):
            return publishing[1]  # None for a task this app does not know: never ask current_app
        try:
            return lookup(kwargs)
        except Exception:  # current_app cannot answer: an anonymous task
            return None

    return task_of_the_publishing_app


def _registered(app: Any, name: str) -> Any:
    """The app's task by that name, looked up as ``send_task`` does: never finalizing the app."""
    try:
        return app._tasks[name]
    except Exception:
        return None


def _end(before: Any, task: Any, error: BaseException | None) -> None:
    """End the publish span still current after ``send_task``, and make ``before`` current again."""
    from opentelemetry import context, trace
    from opentelemetry.instrumentation.celery import utils
    from opentelemetry.trace import Status, StatusCode

    span = trace.get_current_span()
    if span is trace.get_current_span(before):
        return  # the publish never started, or was already ended
    task_id = getattr(span, "attributes", {}).get("messaging.message.id")
    if error is not None and task_id and (stored := utils.retrieve_context(task, task_id, is_publish=True)):
        # the instrumentation's own context manager: error status, end, detach
        stored[1].__exit__(type(error), error, error.__traceback__)
        utils.detach_context(task, task_id, is_publish=True)
        return
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: publish failed"))
    span.end()
    context.attach(before)
