"""Spans handed to the sidecar the moment they end: no queue, no thread, nothing left to flush at exit."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from otel_celery_launch import wire
from otel_celery_launch.bootstrap.export.channel import Channel


def encode_span(span: ReadableSpan) -> tuple[Any, ...]:
    """The fields OTLP carries, as plain values (read back by :func:`otel_celery_launch.sidecar.rebuild.span`).

    Paid by every span, in the program's process: attributes are copied at once, and each
    instrumentation scope is made into a tuple once.
    """
    context, parent, status = span.context, span.parent, span.status
    events, links = span.events, span.links
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
        _plain(span.attributes),
        [(event.name, event.timestamp, _plain(event.attributes)) for event in events] if events else [],
        [(link.context.trace_id, link.context.span_id, int(link.context.trace_flags), _plain(link.attributes)) for link in links] if links else [],
        (status.status_code.value, status.description or ""),
        _scope(span.instrumentation_scope),
        span.dropped_attributes,
        span.dropped_events,
        span.dropped_links,
    )


def _plain(attributes: Any) -> dict[str, Any]:
    """A dict of the attributes. The span's are a read-only view of the SDK's mapping, whose ``copy``
    copies its plain dict at once; read item by item, each would be a call (and a lock)."""
    if not attributes:
        return {}
    copy = getattr(attributes, "copy", None)
    copied = copy() if copy is not None else attributes
    return copied if type(copied) is dict else dict(copied)


_scopes: dict[int, tuple[Any, tuple[str, str, str]]] = {}


def _scope(scope: Any) -> tuple[str, str, str]:
    if scope is None:
        return ("", "", "")
    known = _scopes.get(id(scope))
    if known is None or known[0] is not scope:
        known = _scopes[id(scope)] = (scope, (scope.name, scope.version or "", scope.schema_url or ""))
    return known[1]


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
