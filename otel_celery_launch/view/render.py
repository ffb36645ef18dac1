"""Text for a terminal: a trace as a tree with each log line under its span, a loose log line, and a metrics summary.

Every string from the wire goes through :func:`clean`: a span name or a log body holds whatever a
program, or its users' input, put there, and control characters would reach the terminal as
commands (set the window title, clear the screen, move the cursor, hide text).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from otel_celery_launch.view.metrics import MetricTotal
from otel_celery_launch.view.model import LogLine, SeriesKey, Span

_KINDS = {2: "server", 3: "client", 4: "producer", 5: "consumer"}
DEEPEST_INDENT = 30  # levels drawn as indentation; deeper ones say their depth (the text of a deep chain grows linearly, not as its square)
_ESCAPES: dict[int, str] = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}  # C0, DEL, C1
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"})
_ESCAPES.update({code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A),  # bidi overrides and isolates
                                                        0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF)})  # bidi marks, line breaks, BOM


def clean(text: str) -> str:
    """``text`` with control characters and bidirectional overrides escaped (``\\x1b``, ``\\u202e``); other unicode kept."""
    return text.translate(_ESCAPES)


def render_trace(spans: Sequence[Span], logs: Sequence[LogLine] = (), printed: Collection[str] = frozenset()) -> str:
    """Each trace among the spans and log lines as a tree, oldest first, each log line under its span.

    Spans whose parent is not among them, and log lines whose span is not, hang under a marker
    line: the span was printed before (it is in ``printed``: this is a continuation), or it was
    not received.
    """
    by_trace: dict[str, tuple[list[Span], list[LogLine]]] = {}
    for span in sorted(spans, key=lambda span: span.start):
        by_trace.setdefault(span.trace_id, ([], []))[0].append(span)
    for line in sorted(logs, key=lambda line: line.time):
        by_trace.setdefault(line.trace_id, ([], []))[1].append(line)
    return "\n".join(text for trace_id, (spans_, logs_) in by_trace.items() for text in _trace(trace_id, spans_, logs_, printed))


def render_log(line: LogLine) -> str:
    """A log line from outside any span."""
    return f"log {clean(line.severity) or 'LOG'} {clean(line.body)}  ({clean(line.service)}, {clean(line.logger)})"


def render_metrics(series: dict[SeriesKey, MetricTotal]) -> str:
    """One line per metric and attribute set: counters' totals, gauges' latest values, histograms' count and mean."""
    lines = []
    for (service, name, attributes), total in sorted(series.items()):
        labels = ", ".join(f"{clean(key)}={clean(value)}" for key, value in attributes)
        if total.counted:
            mean = total.value / total.count if total.count else 0.0
            shown = f"count {total.count}, mean {mean:.4g}"
        else:
            shown = f"{total.value:g}"
        lines.append(f"  {clean(name)}{{{labels}}} {shown}  ({clean(service)})")
    return "\n".join(lines)


def _trace(trace_id: str, spans: list[Span], logs: list[LogLine], printed: Collection[str]) -> list[str]:
    ids = {span.span_id for span in spans}
    children: dict[str, list[Span]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    logged: dict[str, list[LogLine]] = {}
    for line in logs:
        logged.setdefault(line.span_id, []).append(line)
    lines = [f"trace {trace_id}" + (", continued: its other spans are printed above" if printed else "")]
    shown: set[str] = set()
    lines += _tree(children.get("", []), "", children, logged, shown)
    for anchor in dict.fromkeys([parent for parent in children if parent and parent not in ids] + [id_ for id_ in logged if id_ not in ids]):
        if anchor in printed:
            lines.append(f"└─ (span {anchor}, printed above)")
        else:
            lines.append(f"└─ ({'parent' if anchor in children else 'span'} {anchor} not received)")
        lines += _log_lines(logged.get(anchor, []), "   ")
        lines += _tree(children.get(anchor, []), "   ", children, logged, shown)
    looped = [span for span in spans if span.span_id not in shown]  # each an ancestor of itself: no root leads to them
    if looped:
        lines.append("└─ (spans whose parents form a loop)")
        lines += [line for span in looped for line in _tree([span], "   ", {}, logged, shown)]
    return lines


def _tree(tops: list[Span], indent: str, children: dict[str, list[Span]], logged: dict[str, list[LogLine]], shown: set[str]) -> list[str]:
    """Each of ``tops`` with its descendants below it, depth first (a loop, not recursion: traces can be deep)."""
    lines: list[str] = []
    stack = [(span, 0) for span in reversed(tops)]
    while stack:
        span, depth = stack.pop()
        shown.add(span.span_id)
        at = indent + "   " * min(depth, DEEPEST_INDENT) + (f"[depth {depth}] " if depth > DEEPEST_INDENT else "")
        kind = f" [{_KINDS[span.kind]}]" if span.kind in _KINDS else ""
        lines.append(f"{at}└─ {clean(span.name)}{kind}  ({clean(span.service)}, span {span.span_id})")
        lines += _log_lines(logged.get(span.span_id, []), at + "   ")
        stack += [(child, depth + 1) for child in reversed(children.get(span.span_id, [])) if child.span_id not in shown]
    return lines


def _log_lines(lines: list[LogLine], indent: str) -> list[str]:
    return [f"{indent}· {clean(line.severity) or 'LOG'} {clean(line.body)}  ({clean(line.logger)})" for line in lines]
