"""Counters and histograms kept in the process as plain numbers, handed over as deltas at each collection.

The SDK's path costs several microseconds a measurement (attribute cleaning, hashing, a view
lookup): too much for the five measurements of every task. Here a measurement is one dict
lookup by a key the caller built (a tuple of attribute values) and an addition, under a lock
(the threads pool). Collection turns the series into the items the sidecar reads, as the
SDK's delta sums and explicit-bucket histograms would be, and starts again from zero. Each
metric keeps at most ``SERIES_LIMIT`` series; the rest are folded into one series with the
attribute ``otel.metric.overflow=true``, as the OpenTelemetry metrics specification says, with
one warning.
"""

from __future__ import annotations

import _thread
import os
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from otel_celery_launch.bootstrap.diagnostics import logger

SERIES_LIMIT = 2000  # per metric, as the SDK's default cardinality limit
OVERFLOW = ("otel.metric.overflow",)
SCOPE = ("otel-celery-launch", "", "")
_DELTA = 1  # AggregationTemporality.DELTA


class Metric:
    def __init__(self, name: str, unit: str, description: str, attributes: Sequence[str], buckets: Sequence[float] | None = None) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.attributes = tuple(attributes)
        self.buckets = tuple(buckets) if buckets is not None else None  # None: a counter
        self.series: dict[tuple[Any, ...], list[Any]] = {}


class Tally:
    def __init__(self) -> None:
        self._metrics: list[Metric] = []
        self._warned: set[str] = set()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """A forked child starts from zero: what the parent counted is the parent's to hand over."""
        self._lock = _thread.allocate_lock()
        self._since = time.time_ns()
        for metric in self._metrics:
            metric.series = {}

    def counter(self, name: str, unit: str, description: str, attributes: Sequence[str]) -> Metric:
        return self._add(Metric(name, unit, description, attributes))

    def histogram(self, name: str, unit: str, description: str, attributes: Sequence[str], buckets: Sequence[float]) -> Metric:
        return self._add(Metric(name, unit, description, attributes, buckets))

    def _add(self, metric: Metric) -> Metric:
        self._metrics.append(metric)
        return metric

    def add(self, metric: Metric, key: tuple[Any, ...], value: int = 1) -> None:
        """``key``: the values of the metric's attributes, in order."""
        with self._lock:
            series = metric.series.get(key) or self._new(metric, key)
            series[0] += value

    def record(self, metric: Metric, key: tuple[Any, ...], value: float) -> None:
        assert metric.buckets is not None
        with self._lock:
            series = metric.series.get(key) or self._new(metric, key)
            series[0] += 1
            series[1] += value
            series[2] = min(series[2], value)
            series[3] = max(series[3], value)
            series[4][bisect_left(metric.buckets, value)] += 1

    def _new(self, metric: Metric, key: tuple[Any, ...]) -> list[Any]:
        if len(metric.series) >= SERIES_LIMIT:
            key = OVERFLOW
            if key in metric.series:
                return metric.series[key]
            if metric.name not in self._warned:
                self._warned.add(metric.name)
                logger.warning("otel-celery-launch: warning: %s has more than %d series; the rest are counted in one with "
                               "otel.metric.overflow=true", metric.name, SERIES_LIMIT)
        fresh = [0] if metric.buckets is None else [0, 0.0, float("inf"), float("-inf"), [0] * (len(metric.buckets) + 1)]
        metric.series[key] = fresh
        return fresh

    def collect(self) -> list[tuple[Any, ...]]:
        """The series counted since the last collection, as items of :mod:`otel_celery_launch.wire`; and start again."""
        with self._lock:
            taken = [(metric, metric.series) for metric in self._metrics if metric.series]
            for metric, _ in taken:
                metric.series = {}
            since, self._since = self._since, time.time_ns()
        now = self._since
        items = []
        for metric, series in taken:
            points: list[tuple[Any, ...]] = []
            for key, values in series.items():
                attributes = {"otel.metric.overflow": True} if key == OVERFLOW else dict(zip(metric.attributes, key))
                if metric.buckets is None:
                    points.append((attributes, since, now, values[0]))
                else:
                    count, total, low, high, buckets = values
                    points.append((attributes, since, now, count, total, buckets, list(metric.buckets), low, high))
            kind = "Sum" if metric.buckets is None else "Histogram"
            items.append((SCOPE, metric.name, metric.description, metric.unit, kind, _DELTA, True, points))
        return items


TALLY = Tally()
