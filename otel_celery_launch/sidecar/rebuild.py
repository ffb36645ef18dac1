"""The SDK's objects again, from the plain tuples the program's processes sent (see :mod:`otel_celery_launch.wire`).

Each function raises on an item that is not what a program process sends (the socket is
reachable by other local processes): the caller drops it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState


@functools.lru_cache(maxsize=256)  # one object per scope: the exporters group spans by it, comparing each to the last
def _scope(name: str, version: str, schema_url: str) -> InstrumentationScope:
    return InstrumentationScope(str(name), str(version) or None, str(schema_url) or None)


def _text(value: Any) -> str:
    """Text that protobuf can encode: a lone surrogate (from a file name, say) would fail the whole batch."""
    text = str(value)
    if text.isascii():  # known from the string's header, at no cost
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode(errors="replace").decode()
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def _attributes(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("attributes")
    return {_text(key): _clean(item) for key, item in value.items()}


def span(item: Sequence[Any], resource: Resource) -> ReadableSpan:
    (name, trace_id, span_id, flags, state, parent, kind, start, end, attributes, events, links, status, scope, *_dropped) = item
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags),
                          trace_state=TraceState.from_header([state]) if state else None)
    parent_context = SpanContext(trace_id, parent[0], is_remote=bool(parent[1]), trace_flags=TraceFlags(parent[2])) if parent else None
    return ReadableSpan(
        name=_text(name),
        context=context,
        parent=parent_context,
        resource=resource,
        attributes=_attributes(attributes),
        events=[Event(_text(event_name), _attributes(event_attributes), int(timestamp)) for event_name, timestamp, event_attributes in events],
        links=[Link(SpanContext(link_trace, link_span, is_remote=True, trace_flags=TraceFlags(link_flags)), _attributes(link_attributes))
               for link_trace, link_span, link_flags, link_attributes in links],
        kind=SpanKind(kind),
        status=Status(StatusCode(status[0]), _text(status[1]) or None),
        start_time=int(start),
        end_time=int(end),
        instrumentation_scope=_scope(*scope),
    )


def log_record(item: Sequence[Any], resource: Resource) -> Any:
    from opentelemetry._logs import SeverityNumber

    timestamp, severity_number, severity_text, body, attributes, trace_id, span_id, flags, logger_name = item
    fields: dict[str, Any] = dict(timestamp=int(timestamp), observed_timestamp=int(timestamp), trace_id=int(trace_id), span_id=int(span_id),
                  trace_flags=TraceFlags(flags), severity_text=_text(severity_text), severity_number=SeverityNumber(severity_number),
                  body=_text(body), attributes=_attributes(attributes))
    scope = InstrumentationScope(_text(logger_name))
    try:
        from opentelemetry.sdk._logs import ReadableLogRecord  # SDK 1.39 and later
    except ImportError:
        from opentelemetry.sdk._logs import LogData, LogRecord  # type: ignore[attr-defined]  # before SDK 1.39

        return LogData(LogRecord(resource=resource, **fields), scope)
    from opentelemetry._logs import LogRecord as ApiLogRecord

    return ReadableLogRecord(log_record=ApiLogRecord(**fields), resource=resource, instrumentation_scope=scope)


def metrics_data(items: Sequence[Sequence[Any]], resource: Resource) -> Any:
    """One export of the metrics that arrived, grouped by scope."""
    from opentelemetry.sdk.metrics.export import (AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, MetricsData,
                                                  NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum)

    by_scope: dict[tuple[str, str, str], list[Any]] = {}
    for where, name, description, unit, kind, temporality, monotonic, points in items:
        if kind == "Histogram":
            data: Any = Histogram(
                data_points=[HistogramDataPoint(_attributes(a), int(s), int(t), int(count), total, list(buckets), list(bounds), low, high)
                             for a, s, t, count, total, buckets, bounds, low, high in points],
                aggregation_temporality=AggregationTemporality(temporality))
        elif kind == "Sum":
            data = Sum(data_points=[NumberDataPoint(_attributes(a), int(s), int(t), value) for a, s, t, value in points],
                       aggregation_temporality=AggregationTemporality(temporality), is_monotonic=bool(monotonic))
        elif kind == "Gauge":
            data = Gauge(data_points=[NumberDataPoint(_attributes(a), int(s), int(t), value) for a, s, t, value in points])
        else:
            raise ValueError("metric kind")
        by_scope.setdefault(tuple(where), []).append(Metric(str(name), str(description), str(unit), data))
    scopes = [ScopeMetrics(_scope(*where), metrics, where[2]) for where, metrics in by_scope.items()]
    return MetricsData([ResourceMetrics(resource, scopes, resource.schema_url)])
