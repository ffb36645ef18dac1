"""Celery instrumentation and the signal receivers that keep spans and show the wire."""

from __future__ import annotations

import logging
from typing import Any

from otel_celery_launch.bootstrap.diagnostics import logger, silence
from otel_celery_launch.bootstrap.logs import restyle_celery_handlers
from otel_celery_launch.handoff import Plan


def instrument_celery(plan: Plan) -> None:
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    from otel_celery_launch.bootstrap.publish import end_failed_publishes

    # Tutorial code calls instrument() itself, before or after ours; the second call does
    # nothing, so its warning is noise.
    silence("opentelemetry.instrumentation.instrumentor", "Attempting to instrument while already instrumented")
    CeleryInstrumentor().instrument(skip_dep_check=True)
    end_failed_publishes()

    # Prefork children leave through os._exit, which skips atexit: flush before that.
    signals.worker_process_shutdown.connect(_flush_before_exit, weak=False)
    signals.worker_init.connect(lambda **_: _import_exporter_ahead(plan), weak=False)
    if plan.logs.format != "off":
        # Restyle the handlers Celery made; taking over through setup_logging would lose -l, -f
        # and stdout redirection. The task logger needs its own: it does not propagate to root.
        def restyle(logger: logging.Logger, **_: Any) -> None:
            restyle_celery_handlers(plan.logs, logger)

        signals.after_setup_logger.connect(restyle, weak=False)
        signals.after_setup_task_logger.connect(restyle, weak=False)
    if logger.isEnabledFor(logging.DEBUG):  # connected after the instrumentation, so headers are filled in
        signals.before_task_publish.connect(_log_inject, weak=False)
        signals.task_prerun.connect(_log_extract, weak=False)


def _flush_before_exit(**_: Any) -> None:
    from otel_celery_launch.bootstrap.delivery import flush_before_exit

    flush_before_exit()


def _import_exporter_ahead(plan: Plan) -> None:
    from otel_celery_launch.bootstrap.exporter import import_ahead

    try:
        import_ahead(plan.exporter)
    except Exception as error:  # the child will try again, and say so if it fails too
        logger.debug("importing the exporter ahead failed: %r", error)


def _log_inject(headers: dict[str, Any] | None = None, **_: Any) -> None:
    logger.debug("[celery] Injecting trace context into headers traceparent=%s", (headers or {}).get("traceparent"))


def _log_extract(task: Any = None, **_: Any) -> None:
    traceparent = getattr(getattr(task, "request", None), "traceparent", None)
    logger.debug("[celery] Extracting trace context from headers traceparent=%s", traceparent)
