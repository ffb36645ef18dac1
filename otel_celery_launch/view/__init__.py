"""``otel-celery-launch view``: a local collector that prints what arrives, for development.

Each trace is printed as a tree once no span of it has arrived for ``settle`` seconds, with
its log lines under the spans they belong to (again, whole, if more of its spans arrive later); log lines outside any span are printed as they come;
every ``metrics_every`` seconds, if metrics arrived since, the metrics received so far are summed up.
"""

from __future__ import annotations

import time

from otel_celery_launch.view.collector import LocalCollector
from otel_celery_launch.view.render import render_metrics, render_trace


def run_view(grpc_port: int, http_port: int, host: str, settle: float, metrics_every: float) -> int:
    try:
        collector = LocalCollector(http_port=http_port, grpc_port=grpc_port, host=host)
    except OSError as error:
        print(f"otel-celery-launch view: cannot listen: {error}")
        return 1
    with collector:
        print(f"listening: OTLP/gRPC at {collector.grpc_url}, OTLP/HTTP at {collector.http_url}; Ctrl-C stops", flush=True)
        printed: dict[str, int] = {}  # trace id -> spans it had when printed
        logs_shown = 0
        next_metrics = time.monotonic() + metrics_every
        summarised = 0  # metric exports already summed up
        try:
            while True:
                time.sleep(0.2)
                with collector.arrived:
                    received = collector.received
                    now = time.monotonic()
                    counts: dict[str, int] = {}
                    for span in received.spans:
                        counts[span.trace_id] = counts.get(span.trace_id, 0) + 1
                    done = {trace for trace, last in received.last_arrival.items()
                            if now - last >= settle and counts.get(trace, 0) > printed.get(trace, 0)}
                    spans = [span for span in received.spans if span.trace_id in done]
                    logs = [line for line in received.logs if line.span_id in {span.span_id for span in spans}]
                    loose = [line for line in received.logs[logs_shown:] if not line.span_id.strip("0")]
                    logs_shown = len(received.logs)
                    fresh = now >= next_metrics and received.metric_exports > summarised
                    summary = render_metrics(received.metrics) if fresh else ""
                    summarised = received.metric_exports if fresh else summarised
                for line in loose:
                    print(f"log {line.severity or 'LOG'} {line.body}  ({line.service}, {line.logger})", flush=True)
                if spans:
                    print(render_trace(spans, logs), flush=True)
                    printed.update({trace: counts[trace] for trace in done})
                if now >= next_metrics:
                    next_metrics = now + metrics_every
                    if summary:
                        print(f"metrics so far:\n{summary}", flush=True)
        except KeyboardInterrupt:
            return 0
