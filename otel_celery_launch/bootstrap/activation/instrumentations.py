"""The installed instrumentations the launcher planned, each set up when its library is first imported.

The launcher already checked that each can run (library version, no version skew), so
nothing is checked or imported here until the program imports the library. Celery's is
set up with the launcher's own Celery hooks (:mod:`~otel_celery_launch.bootstrap.celery.hooks`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from importlib import import_module

from otel_celery_launch.bootstrap.activation.imports import activate_when_imported
from otel_celery_launch.bootstrap.diagnostics import silence
from otel_celery_launch.bootstrap.activation.broker_traffic import quiet_kombu_redis
from otel_celery_launch.handoff import InstrumentationPlan, Plan

CELERY = "celery"


def plans_celery(plan: Plan) -> bool:
    return any(item.name == CELERY for item in plan.instrumentations)


def activate_instrumentations(plan: Plan, guarded: Callable[[str, Callable[[], None]], Callable[..., None]]) -> None:
    """Register one activation per library module; whichever is imported first sets the instrumentation up, once.

    A standard-library module that every Python start imports (``threading``, ``logging``)
    cannot say when the program starts using it: its instrumentation waits for the tracer
    provider instead, that is for the program's first use of tracing.
    """
    if plan.instrumentations:
        # A program that instruments a library itself, as tutorials show, finds it done already: expected, not news.
        silence("opentelemetry.instrumentation.instrumentor", "Attempting to instrument while already instrumented")
        silence("opentelemetry.instrumentation.flask", "Attempting to instrument Flask app while already instrumented")
    for item in plan.instrumentations:
        if item.name == CELERY:
            continue
        install = guarded(f"instrumenting {item.name} ({item.target})", _once(functools.partial(_instrument, item)))
        for module in item.modules:
            trigger = "opentelemetry.trace" if module in sys.modules and module in sys.stdlib_module_names else module
            activate_when_imported(trigger, [module, "opentelemetry"], install, guards=item.guards)
    if any(item.name == "redis" for item in plan.instrumentations):
        activate_when_imported("kombu.transport.redis", ["kombu", "redis"], guarded("leaving the Redis broker's own commands untraced", quiet_kombu_redis))


def _instrument(item: InstrumentationPlan) -> None:
    module, _, attribute = item.target.partition(":")
    instrumentor = import_module(module)
    for name in attribute.split("."):
        instrumentor = getattr(instrumentor, name)
    instrumentor().instrument(skip_dep_check=True)  # type: ignore[operator]


def _once(step: Callable[[], None]) -> Callable[[], None]:
    done = False

    def once() -> None:
        nonlocal done
        if not done:
            done = True
            step()

    return once
