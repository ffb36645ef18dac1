"""``otel-celery-launch view``: a local collector that prints what arrives, for development.

Each trace is printed once, as a tree with its log lines under their spans: when whole and quiet
for ``settle`` seconds, or, with a parent still missing (its program holds spans for its batch
delay), quiet for ``wait_for_parent`` seconds, under a marker naming the missing parent. Spans of
a trace printed before come out as a continuation under the spans they hang from. Log lines
outside any span are printed as they come; every ``metrics_every`` seconds, if metrics arrived
since, the metrics received so far are summed up. Memory is bounded by the limits in :class:`Options`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from otel_celery_launch.view.collector import CannotListen, LocalCollector
from otel_celery_launch.view.received import Received
from otel_celery_launch.view.render import render_log, render_metrics, render_trace

TICK = 0.2  # seconds between two looks at what arrived
NOTE_EVERY = 1.0  # seconds between two notes about dropped spans, at least


@dataclass(frozen=True)
class Options:
    grpc_port: int = 4317
    http_port: int = 4318
    host: str = "127.0.0.1"
    settle: float = 1.5
    wait_for_parent: float = 7.0  # longer than the default batch delay, 5 s
    metrics_every: float = 10.0
    max_spans: int = 100_000  # spans and log lines waiting to be printed
    remember: int = 10_000  # printed traces whose late spans print as a continuation
    max_series: int = 10_000


def run_view(options: Options) -> int:
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:  # a terminal or pipe that cannot show a character gets its escape, not a traceback
        reconfigure(errors="backslashreplace")
    received = Received(options.max_spans, options.remember, options.max_series)
    try:
        collector = LocalCollector(options.http_port, options.grpc_port, options.host, received, span_attributes=False)
    except CannotListen as error:
        flag = f"--{error.protocol.lower()}-port"
        print(f"otel-celery-launch view: {error}; choose another port with {flag} N (0 picks a free one)", file=sys.stderr)
        return 1
    with collector:
        print(f"listening: OTLP/gRPC at {collector.grpc_url}, OTLP/HTTP at {collector.http_url}; Ctrl-C stops", flush=True)
        screen = _Screen(collector, options)
        try:
            while True:
                time.sleep(TICK)
                screen.show(time.monotonic())
        except KeyboardInterrupt:
            return 0


class _Screen:
    """What has been shown: the work of each tick is what arrived or fell due since the last."""

    def __init__(self, collector: LocalCollector, options: Options) -> None:
        self.collector = collector
        self.options = options
        self.next_metrics = time.monotonic() + options.metrics_every
        self.summarised = 0  # metric exports already summed up
        self.dropped = 0  # spans and log lines dropped, as last noted
        self.next_note = 0.0
        self.grpc_noted = False

    def show(self, now: float) -> None:
        options, received = self.options, self.collector.received
        with self.collector.arrived:
            loose = list(received.loose)
            received.loose.clear()
            due = received.traces.due(now, options.settle, options.wait_for_parent)
            summary = ""
            if now >= self.next_metrics:
                self.next_metrics = now + options.metrics_every
                if received.metric_exports > self.summarised:
                    self.summarised = received.metric_exports
                    summary = render_metrics(received.metrics.series)
                    if received.metrics.refused:
                        summary += f"\n  ({received.metrics.refused} points of further series not kept: over --max-series {options.max_series})"
            notes = self._notes(now, received)
        text = [render_log(line) for line in loose] + notes
        text += [render_trace(trace.spans, trace.logs, trace.printed) for trace in due]
        if summary:
            text.append(f"metrics so far:\n{summary}")
        if text:
            print("\n".join(text), flush=True)

    def _notes(self, now: float, received: Received) -> list[str]:
        notes = []
        if received.grpc_on_http and not self.grpc_noted:
            self.grpc_noted = True
            notes.append(f"note: a gRPC client sent to the HTTP port {self.collector.http_port}; "
                         f"use port {self.collector.grpc_port} or protocol http/protobuf")
        if received.dropped > self.dropped and now >= self.next_note:
            self.dropped, self.next_note = received.dropped, now + NOTE_EVERY
            notes.append(f"note: {received.dropped} spans and log lines dropped so far: more than --max-spans "
                         f"{self.options.max_spans} were waiting to be printed (the longest-waiting traces go first)")
        return notes
