"""Spans and log lines gathered into traces, each handed out once: when whole, or when its missing parents are given up on.

A program holds its spans for its batch delay (5 s by default), so a worker's span often arrives
before the producer's span it hangs under, or after it; a trace is therefore held until it is whole
and quiet for ``settle`` seconds, or, with a parent still missing or a published message whose
consumer span has not come, quiet for ``wait`` seconds. Arrivals are
indexed by trace id as they come, and each waiting trace sits in one of two queues in order of its
latest arrival, so finding what is due looks at the front of each queue only. The spans and log
lines waiting are capped (the longest-waiting traces are dropped, and counted); a handed-out trace
is remembered by its span ids only, in a bounded LRU, so that its late spans come out as a
continuation hanging under the spans already printed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from otel_celery_launch.view.model import LogLine, Span

PRODUCER = 4  # OTLP's SPAN_KIND_PRODUCER


@dataclass(slots=True)
class Trace:
    trace_id: str
    printed: frozenset[str]  # span ids handed out before: this is a continuation when not empty
    last: float = 0.0  # monotonic time of its latest arrival
    spans: list[Span] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # of its spans here
    missing: set[str] = field(default_factory=set)  # span ids referred to (as a parent, or by a log line) and not arrived
    producers: set[str] = field(default_factory=set)  # its spans that publish a message (a task's apply_async)
    parents: set[str] = field(default_factory=set)  # span ids its spans hang from

    @property
    def waits(self) -> bool:
        """A parent has not arrived, or a message published has no consumer span yet: more is on its way."""
        return bool(self.missing or self.producers - self.parents)

    @property
    def size(self) -> int:
        return len(self.spans) + len(self.logs)

    def refer(self, span_id: str) -> None:
        if span_id not in self.ids and span_id not in self.printed:
            self.missing.add(span_id)


class Traces:
    """Not thread-safe: the collector calls it under its lock."""

    def __init__(self, most: int, remember: int) -> None:
        self.most = most  # spans and log lines waiting, at most
        self.remember = remember  # handed-out traces remembered, at most (and at most ``most`` of their span ids)
        self.held = 0
        self.dropped = 0  # spans and log lines dropped over the cap
        self._whole: OrderedDict[str, Trace] = OrderedDict()
        self._incomplete: OrderedDict[str, Trace] = OrderedDict()
        self._printed: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._remembered = 0  # span ids in _printed

    def add(self, spans: Iterable[Span], lines: Iterable[LogLine], now: float) -> None:
        """One request's spans and log lines (loose ones excluded), filed under their traces."""
        touched: dict[str, Trace] = {}
        for span in spans:
            trace = self._file(touched, span.trace_id)
            if span.span_id in trace.ids or span.span_id in trace.printed:
                continue  # sent again (an exporter's retry)
            trace.spans.append(span)
            trace.ids.add(span.span_id)
            trace.missing.discard(span.span_id)
            if span.kind == PRODUCER:
                trace.producers.add(span.span_id)
            if span.parent_id:
                trace.parents.add(span.parent_id)
                trace.refer(span.parent_id)
            self.held += 1
        for line in lines:
            trace = self._file(touched, line.trace_id)
            trace.logs.append(line)
            trace.refer(line.span_id)
            self.held += 1
        for trace in touched.values():
            trace.last = now
            (self._incomplete if trace.waits else self._whole)[trace.trace_id] = trace
        while self.held > self.most:
            self._drop_oldest()

    def due(self, now: float, settle: float, wait: float) -> list[Trace]:
        """The traces to print now, in order of their latest arrival; they are forgotten but for their span ids."""
        due = self._quiet(self._whole, now - settle) + self._quiet(self._incomplete, now - wait)
        for trace in due:
            self.held -= trace.size
            self._remember(trace.trace_id, trace.printed | trace.ids)
        return sorted(due, key=lambda trace: trace.last)

    def waiting(self) -> list[Span]:
        return [span for queue in (self._whole, self._incomplete) for trace in queue.values() for span in trace.spans]

    def _file(self, touched: dict[str, Trace], trace_id: str) -> Trace:
        """The trace to add to, out of its queue until the request is filed (it goes back in at the end)."""
        trace = touched.get(trace_id)
        if trace is None:
            trace = touched[trace_id] = self._take(trace_id)
        return trace

    def _take(self, trace_id: str) -> Trace:
        trace = self._whole.pop(trace_id, None) or self._incomplete.pop(trace_id, None)
        if trace is not None:
            return trace
        printed = self._printed.pop(trace_id, frozenset())
        self._remembered -= len(printed)
        return Trace(trace_id, printed)

    @staticmethod
    def _quiet(queue: OrderedDict[str, Trace], since: float) -> list[Trace]:
        due = []
        while queue and queue[next(iter(queue))].last <= since:
            due.append(queue.popitem(last=False)[1])
        return due

    def _drop_oldest(self) -> None:
        queue = min((queue for queue in (self._whole, self._incomplete) if queue), key=lambda queue: queue[next(iter(queue))].last)
        trace = queue.popitem(last=False)[1]
        self.held -= trace.size
        self.dropped += trace.size

    def _remember(self, trace_id: str, span_ids: frozenset[str]) -> None:
        self._printed[trace_id] = span_ids
        self._remembered += len(span_ids)
        while len(self._printed) > self.remember or self._remembered > self.most:
            self._remembered -= len(self._printed.popitem(last=False)[1])
