"""Metric points summed up per series, with a cap on the number of series so that a label with unbounded values cannot grow memory."""

from __future__ import annotations

from dataclasses import dataclass

from otel_celery_launch.view.model import COUNTED_KINDS, Point, SeriesKey


@dataclass
class MetricTotal:
    """What arrived for one series: a sum of deltas, a gauge's last value, or a histogram's count and sum."""

    kind: str
    value: float = 0.0
    count: int = 0

    @property
    def counted(self) -> bool:
        return self.kind in COUNTED_KINDS


class Totals:
    def __init__(self, most_series: int) -> None:
        self.series: dict[SeriesKey, MetricTotal] = {}
        self.most_series = most_series
        self.refused = 0  # points of series beyond the cap

    def add(self, point: Point) -> None:
        total = self.series.get(point.key)
        if total is None:
            if len(self.series) >= self.most_series:
                self.refused += 1
                return
            total = self.series[point.key] = MetricTotal(point.kind)
        if total.counted:
            total.count = total.count + point.count if point.delta else point.count
            total.value = total.value + point.value if point.delta else point.value
        else:
            total.value = total.value + point.value if point.delta and point.kind == "sum" else point.value
            total.count += 1
