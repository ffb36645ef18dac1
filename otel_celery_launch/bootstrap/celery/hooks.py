"""Celery: report its first use, install the instrumentation, and the receivers that keep spans."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from otel_celery_launch.bootstrap.diagnostics import logger, silence
from otel_celery_launch.bootstrap.activation.instrumentations import plans_celery
from otel_celery_launch.bootstrap.celery.publish import task_from_sender, watch_publishes
from otel_celery_launch.handoff import Plan


def report_first_use(first_use: Callable[[], None]) -> Callable[[ModuleType], None]:
    """Armed right after ``celery.app``'s body has run: the first app, publish and worker say so.

    Imports nothing (``celery.app`` is still being imported); it only wraps what it defines.
    """

    def arm(celery_app: ModuleType) -> None:
        celery_class = celery_app.Celery
        init = celery_class.__init__

        @functools.wraps(init)
        def init_then_report(app: Any, *args: Any, **kwargs: Any) -> None:
            init(app, *args, **kwargs)
            first_use()

        celery_class.__init__ = init_then_report
        watch_publishes(celery_class, first_use)
        sys.modules["celery.signals"].worker_init.connect(lambda **_: first_use(), weak=False)

    return arm


def instrument_celery(plan: Plan) -> None:
    from celery import signals
    from opentelemetry.instrumentation.celery import CeleryInstrumentor, utils

    # Tutorial code calls instrument() itself, before or after ours; the second call does
    # nothing, so its warning is noise (said once: bootstrap.activation.instrumentations silences it too).
    silence("opentelemetry.instrumentation.instrumentor", "Attempting to instrument while already instrumented")
    run_metrics = None
    if plan.sends_metrics:
        from otel_celery_launch.bootstrap.celery.metrics import record_celery_metrics

        run_metrics = record_celery_metrics(plan)
    if plans_celery(plan):  # otherwise switched off, or unable to run here: the hooks below still keep other spans
        utils.retrieve_task_from_sender = task_from_sender(utils.retrieve_task_from_sender)  # type: ignore[assignment]
        # Its flower.task.runtime.seconds measures the run time a second time (messaging.process.duration): off unless asked for.
        from opentelemetry.metrics import NoOpMeterProvider

        instrumentor = CeleryInstrumentor()
        ours = not instrumentor.is_instrumented_by_opentelemetry  # a program that instrumented first keeps its options
        options = {} if plan.metrics.flower_runtime else {"meter_provider": NoOpMeterProvider()}
        instrumentor.instrument(skip_dep_check=True, **options)
        if ours and not plan.metrics.flower_runtime:
            from otel_celery_launch.bootstrap.celery.runs import take_over_run_spans

            if take_over_run_spans(instrumentor, run_metrics):
                run_metrics = None  # recorded by the run span's receivers
    if run_metrics is not None:
        run_metrics.connect()
    # Prefork children leave through os._exit, which skips atexit: hand the last telemetry over before that.
    signals.worker_process_shutdown.connect(_process_ending, weak=False)
    signals.worker_process_init.connect(_pool_process_started, weak=False)
    if plan.logs.format != "off":
        from otel_celery_launch.bootstrap.logs.setup import restyle_celery_handlers

        # Celery's own handlers only; taking over through setup_logging would lose -l, -f
        # and stdout redirection. The task logger needs its own: it does not propagate to root.
        def restyle(logger: logging.Logger, **_: Any) -> None:
            restyle_celery_handlers(plan.logs, logger)

        signals.after_setup_logger.connect(restyle, weak=False)
        signals.after_setup_task_logger.connect(restyle, weak=False)
    if logger.isEnabledFor(logging.DEBUG):  # connected after the instrumentation, so headers are filled in
        signals.before_task_publish.connect(_log_inject, weak=False)
        signals.task_prerun.connect(_log_extract, weak=False)


def _pool_process_started(**_: Any) -> None:
    from otel_celery_launch.bootstrap.export.ending import ends_handing_over

    ends_handing_over()


def _process_ending(**_: Any) -> None:
    from otel_celery_launch.bootstrap.export.ending import process_ending

    process_ending()


def _log_inject(headers: dict[str, Any] | None = None, **_: Any) -> None:
    logger.debug("[celery] Injecting trace context into headers traceparent=%s", (headers or {}).get("traceparent"))


def _log_extract(task: Any = None, **_: Any) -> None:
    traceparent = getattr(getattr(task, "request", None), "traceparent", None)
    logger.debug("[celery] Extracting trace context from headers traceparent=%s", traceparent)
