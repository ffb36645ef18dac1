"""Spans handed to the sidecar the moment they end: no queue, no thread, nothing left to flush at exit."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_celery_launch import wire
from otel_celery_launch.bootstrap.export.channel import Channel


def encode_span(span: ReadableSpan) -> tuple[Any, ...]:
    """The fields OTLP carries, as plain values (read back by :func:`otel_celery_launch.sidecar.rebuild.span`)."""
    context, parent, scope, status = span.context, span.parent, span.instrumentation_scope, span.status
    return (
        span.name,
        context.trace_id,
        context.span_id,
        int(context.trace_flags),
        context.trace_state.to_header() if context.trace_state else "",
        (parent.span_id, parent.is_remote, int(parent.trace_flags)) if parent is not None else None,
        span.kind.value,
        span.start_time,
        span.end_time,
        dict(span.attributes or {}),
        [(event.name, event.timestamp, dict(event.attributes or {})) for event in span.events],
        [(link.context.trace_id, link.context.span_id, int(link.context.trace_flags), dict(link.attributes or {})) for link in span.links],
        (status.status_code.value, status.description or ""),
        (scope.name, scope.version or "", scope.schema_url or "") if scope is not None else ("", "", ""),
        span.dropped_attributes,
        span.dropped_events,
        span.dropped_links,
    )


class HandOff(SpanProcessor):
    """A span processor: each sampled span goes to the sidecar as it ends, in one datagram."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        self._channel.send(wire.SPANS, [encode_span(span)])

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every ended span was handed over already
