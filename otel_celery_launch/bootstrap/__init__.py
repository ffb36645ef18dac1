"""Bootstrap: what runs inside the launched process, before any user code.

Nothing heavy happens here. Log records get their trace ids (standard library only), and
each integration is registered with :mod:`~otel_celery_launch.bootstrap.activation.imports`, which
sets it up once the program imports its library, at a moment when that is safe: the SDK
when the program imports OpenTelemetry, the ids in structlog's default chain when it
imports structlog, the Celery instrumentation when it imports Celery, and every other
installed instrumentation the launcher planned when the program imports its library
(Flask, psycopg, redis, requests, ...). A process that imports none of them pays almost nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from otel_celery_launch.bootstrap import diagnostics
from otel_celery_launch.bootstrap.activation.imports import activate_when_imported, use
from otel_celery_launch.bootstrap.celery.hooks import instrument_celery, report_first_use
from otel_celery_launch.bootstrap.activation.instrumentations import activate_instrumentations
from otel_celery_launch.bootstrap.logs.setup import adopt_structlog_defaults, install_logging
from otel_celery_launch.bootstrap.telemetry import install_propagators, install_tracer_provider, report_first_span
from otel_celery_launch.handoff import Plan


def start() -> None:
    try:
        plan = Plan.from_env(os.environ)
    except Exception as error:  # a plan from another launcher version: run untraced, say why
        diagnostics.configure("info")
        diagnostics.telemetry_failed("reading the launcher's plan", error)
        return
    if plan is None or (plan.prefix and plan.prefix != sys.prefix):  # another interpreter: as bare
        return
    diagnostics.configure(plan.log_level)
    if plan.sidecar:  # before any monkey-patching: the connection's flusher keeps the real thread, lock and sleep
        import otel_celery_launch.bootstrap.export.channel  # noqa: F401
    try:
        install_logging(plan.logs)
    except Exception as error:
        diagnostics.telemetry_failed("setting up log correlation", error)
    if plan.sends_logs:
        _guarded("setting up log export", _install_log_export)(plan)
    if plan.logs.format != "off":
        activate_when_imported("structlog", ["structlog"], _guarded("adopting structlog's defaults", lambda: adopt_structlog_defaults(plan.logs, plan.sends_logs)))
    activate_when_imported(
        "opentelemetry.trace",
        ["opentelemetry"],
        _guarded("setting up the tracer provider", lambda: install_tracer_provider(plan)),
        arm=_guarded("watching for the first span", report_first_span(lambda: use("opentelemetry.trace"))),
    )
    if plan.sends_metrics:
        activate_when_imported("opentelemetry.metrics", ["opentelemetry"], _guarded("setting up the meter provider", lambda: _install_meter_provider(plan)))
    activate_when_imported(
        "opentelemetry.propagate", ["opentelemetry"], _guarded("setting up the propagators", lambda: install_propagators(plan))
    )
    activate_when_imported(
        "celery.app",
        ["celery", "opentelemetry"],
        _guarded("instrumenting Celery", lambda: instrument_celery(plan)),
        arm=_guarded("watching for Celery's first use", report_first_use(lambda: use("celery.app"))),
    )
    activate_instrumentations(plan, _guarded)


def _install_log_export(plan: Plan) -> None:
    from otel_celery_launch.bootstrap.export.ending import channel
    from otel_celery_launch.bootstrap.export.logs import install_log_export

    install_log_export(channel(plan), plan.logs.task_data)


def _install_meter_provider(plan: Plan) -> None:
    from otel_celery_launch.bootstrap.export.metrics import install_meter_provider  # imports the SDK's metrics

    install_meter_provider(plan)


def _guarded(stage: str, step: Callable[..., None]) -> Callable[..., None]:
    """Fail open: a step that fails says so once, and the program runs on."""

    def guarded(*args: Any) -> None:
        try:
            step(*args)
        except Exception as error:
            diagnostics.telemetry_failed(stage, error)

    return guarded
