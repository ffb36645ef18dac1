"""Bootstrap: what runs inside the launched process, before any user code.

Nothing heavy happens here. Log records get their trace ids (standard library only), and
hooks are registered so that the SDK is set up the moment the program imports
OpenTelemetry, structlog is configured the moment it is imported, and the Celery
instrumentation is installed the moment Celery's application module is; a process that
imports none of them pays almost nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from otel_celery_launch.bootstrap import diagnostics
from otel_celery_launch.bootstrap.celery_hooks import instrument_celery
from otel_celery_launch.bootstrap.import_hooks import after_import
from otel_celery_launch.bootstrap.logs import configure_structlog, install_logging
from otel_celery_launch.bootstrap.telemetry import install_propagators, install_tracer_provider
from otel_celery_launch.handoff import Plan


def start() -> None:
    try:
        plan = Plan.from_env(os.environ)
    except Exception as error:  # a plan from another launcher version: run untraced, say why
        diagnostics.configure("info")
        diagnostics.telemetry_failed("reading the launcher's plan", error)
        return
    if plan is None:
        return
    diagnostics.configure(plan.log_level)
    try:
        install_logging(plan.logs)
    except Exception as error:
        diagnostics.telemetry_failed("setting up log correlation", error)
    if plan.logs.format != "off":
        after_import("structlog", _guarded("configuring structlog", lambda _: configure_structlog(), plan))
    after_import("opentelemetry.trace", _guarded("setting up the tracer provider", install_tracer_provider, plan))
    after_import("opentelemetry.propagate", _guarded("setting up the propagators", install_propagators, plan))
    after_import("celery.app", _guarded("instrumenting Celery", instrument_celery, plan), settle=True)


def _guarded(stage: str, step: Callable[[Plan], None], plan: Plan) -> Callable[[ModuleType], None]:
    def hook(_: ModuleType) -> None:
        try:
            step(plan)
        except Exception as error:
            diagnostics.telemetry_failed(stage, error)

    return hook
