"""Metrics collected in each process and handed to the sidecar: every interval, and once as the process ends.

The SDK's measurements (the instrumentations' metrics, the worker's gauges) and the
launcher's own per-task counts (:mod:`.tally`) go out together.

Sums and histograms are deltas, so the counts of many processes (prefork children,
recycled or not) simply add up at the collector. A forked child inherits its parent's
measurements not yet collected: it collects once and throws that away, so it starts from
zero. The collection thread imports nothing: everything it touches was imported when the
reader was made, on the thread that set the SDK up.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricReader, MetricsData

from otel_celery_launch import wire
from otel_celery_launch.bootstrap.diagnostics import silence, telemetry_failed
from otel_celery_launch.bootstrap.export.channel import Channel
from otel_celery_launch.bootstrap.export.ending import before_ending, channel
from otel_celery_launch.bootstrap.export.tally import TALLY
from otel_celery_launch.handoff import Plan

_DELTA: dict[type, AggregationTemporality] = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
          ObservableCounter: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.CUMULATIVE}


def encode_metrics(data: MetricsData) -> list[tuple[Any, ...]]:
    """One item per metric: its scope, name, kind and points, as plain values."""
    items = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            where = (scope.name, scope.version or "", scope.schema_url or "")
            for metric in scope_metrics.metrics:
                kind = type(metric.data).__name__
                data_points: Any = metric.data.data_points
                points: list[tuple[Any, ...]]
                if kind == "Histogram":
                    points = [(dict(p.attributes or {}), p.start_time_unix_nano, p.time_unix_nano, p.count, p.sum, list(p.bucket_counts),
                               list(p.explicit_bounds), p.min, p.max) for p in data_points]
                elif kind in ("Sum", "Gauge"):
                    points = [(dict(p.attributes or {}), p.start_time_unix_nano or 0, p.time_unix_nano, p.value) for p in data_points]
                else:  # exponential histograms: not made by anything the launcher sets up
                    continue
                temporality = getattr(metric.data, "aggregation_temporality", None)
                items.append((where, metric.name, metric.description or "", metric.unit or "", kind,
                              temporality.value if temporality is not None else 0, bool(getattr(metric.data, "is_monotonic", False)), points))
    return items


class HandOffMetricReader(MetricReader):
    def __init__(self, channel: Channel, interval: float) -> None:
        super().__init__(preferred_temporality=_DELTA)
        self._channel = channel
        self._interval = interval
        self._start()
        os.register_at_fork(after_in_child=self._forked)

    def _start(self) -> None:
        self._discarding = False
        self._stop = threading.Event()
        threading.Thread(target=self._tick, name="otel-celery-launch-metrics", daemon=True).start()

    def _forked(self) -> None:
        self._start()
        self._discarding = True  # the parent's measurements are the parent's to send
        try:
            self.collect()
        except Exception:  # the SDK refuses before the reader is registered: nothing to forget then
            pass
        finally:
            self._discarding = False

    def _tick(self) -> None:
        while not self._stop.wait(self._interval):
            self._collect_now()

    def _collect_now(self) -> None:
        try:
            self.collect()  # the SDK hands what it has (if anything) to _receive_metrics
            tallied = TALLY.collect()
        except Exception as error:
            telemetry_failed("collecting metrics", error)
            return
        if tallied:
            self._channel.send(wire.METRICS, tallied)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_: Any) -> None:
        if not self._discarding:
            items = encode_metrics(metrics_data)
            if items:
                self._channel.send(wire.METRICS, items)

    def flush_before_exit(self) -> None:
        """Collect and hand over once more: for exits that skip atexit (prefork children) and at exit; once per process."""
        if not self._stop.is_set():
            self._stop.set()
            self._collect_now()

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        self._stop.set()


def install_meter_provider(plan: Plan) -> None:
    """The global meter provider, so Celery's metrics and those of every instrumentation go out."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

    reader = HandOffMetricReader(channel(plan), plan.metrics.export_interval)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=Resource.create(plan.resource), shutdown_on_exit=False))
    before_ending(reader.flush_before_exit)
    silence("opentelemetry.metrics._internal", "Overriding of current MeterProvider")  # the program's own: ours stays
