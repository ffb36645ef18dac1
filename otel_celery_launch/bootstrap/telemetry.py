"""The tracer provider and the global propagators, installed from the plan."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from otel_celery_launch.bootstrap.diagnostics import silence
from otel_celery_launch.handoff import Plan


def report_first_span(first_use: Callable[[], None]) -> Callable[[ModuleType], None]:
    """Armed right after ``opentelemetry.trace``'s body has run: a span started before the provider is set says so.

    A tracer obtained early is a proxy that starts non-recording spans until a provider is
    set; reporting the first span lets the provider be set up just before it. Imports nothing.
    Once a provider is set the proxy's own methods are put back: a tracer obtained early (the
    Celery instrumentation's) starts a span per task, and must not pay for the watch.
    """

    def arm(trace: ModuleType) -> None:
        proxy = trace.ProxyTracer
        for name in ("start_span", "start_as_current_span"):
            method = getattr(proxy, name)

            def reporting(self: Any, *args: Any, __method: Any = method, __name: str = name, **kwargs: Any) -> Any:
                first_use()
                if getattr(trace, "_TRACER_PROVIDER", None) is not None:
                    setattr(proxy, __name, __method)
                return __method(self, *args, **kwargs)

            setattr(proxy, name, functools.wraps(method)(reporting))

    return arm


def _sampler(plan: Plan):  # -> opentelemetry.sdk.trace.sampling.Sampler
    from opentelemetry.sdk.trace import sampling

    root = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(plan.sampler_ratio),
    }[plan.sampler.removeprefix("parentbased_")]
    return sampling.ParentBased(root) if plan.sampler.startswith("parentbased_") else root


def install_tracer_provider(plan: Plan) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    # Spans are handed to the sidecar as they end: nothing to flush at exit.
    provider = TracerProvider(resource=Resource.create(plan.resource), sampler=_sampler(plan), shutdown_on_exit=False)
    if plan.sidecar:
        from otel_celery_launch.bootstrap.export.ending import channel
        from otel_celery_launch.bootstrap.export.spans import HandOff

        provider.add_span_processor(HandOff(channel(plan)))
    trace.set_tracer_provider(provider)
    # Tutorial code sets its own provider too; ours stays, so that refusal is expected, not news.
    silence("opentelemetry.trace", "Overriding of current TracerProvider")


def install_propagators(plan: Plan) -> None:
    from opentelemetry.propagate import set_global_textmap
    from opentelemetry.propagators.composite import CompositePropagator

    set_global_textmap(CompositePropagator([_propagator(name) for name in plan.propagators]))


def _propagator(name: str):  # -> opentelemetry.propagators.textmap.TextMapPropagator
    if name == "tracecontext":
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        return TraceContextTextMapPropagator()
    if name == "baggage":
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        return W3CBaggagePropagator()
    from importlib.metadata import entry_points

    (entry_point,) = entry_points(group="opentelemetry_propagator", name=name)
    return entry_point.load()()

