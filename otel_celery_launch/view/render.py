"""Text for a terminal: a trace as a tree with each log line under its span, and a metrics summary."""

from __future__ import annotations

from otel_celery_launch.view.collector import LogLine, MetricTotal, Span

_KINDS = {2: "server", 3: "client", 4: "producer", 5: "consumer"}


def render_trace(spans: list[Span], logs: list[LogLine] = ()) -> str:  # type: ignore[assignment]
    """Every root of the given spans (one trace, or several) with its descendants, oldest first."""
    by_parent: dict[str, list[Span]] = {}
    for span in sorted(spans, key=lambda span: span.start):
        by_parent.setdefault(span.parent_id, []).append(span)
    by_span: dict[str, list[LogLine]] = {}
    for line in sorted(logs, key=lambda line: line.time):
        by_span.setdefault(line.span_id, []).append(line)
    known = {span.span_id for span in spans}
    lines: list[str] = []
    for trace_id in dict.fromkeys(span.trace_id for span in sorted(spans, key=lambda span: span.start)):
        lines.append(f"trace {trace_id}")
        for root in (span for span in spans if span.trace_id == trace_id and span.parent_id not in known):
            lines += _branch(root, by_parent, by_span, "")
    return "\n".join(lines)


def _branch(span: Span, by_parent: dict[str, list[Span]], by_span: dict[str, list[LogLine]], indent: str) -> list[str]:
    kind = f" [{_KINDS[span.kind]}]" if span.kind in _KINDS else ""
    lines = [f"{indent}└─ {span.name}{kind}  ({span.service}, span {span.span_id})"]
    for line in by_span.get(span.span_id, []):
        lines.append(f"{indent}   · {line.severity or 'LOG'} {line.body}  ({line.logger})")
    for child in by_parent.get(span.span_id, []):
        lines += _branch(child, by_parent, by_span, indent + "   ")
    return lines


def render_metrics(metrics: dict[tuple[str, str, tuple[tuple[str, str], ...]], MetricTotal]) -> str:
    """One line per metric and attribute set: counters' totals, gauges' latest values, histograms' count and mean."""
    lines = []
    for (service, name, attributes), total in sorted(metrics.items()):
        labels = ", ".join(f"{key}={value}" for key, value in attributes)
        if total.kind == "histogram":
            mean = total.value / total.count if total.count else 0.0
            shown = f"count {total.count}, mean {mean:.4g}"
        else:
            shown = f"{total.value:g}"
        lines.append(f"  {name}{{{labels}}} {shown}  ({service})")
    return "\n".join(lines)
