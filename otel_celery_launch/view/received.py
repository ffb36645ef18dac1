"""What the local collector took, bounded: traces waiting to be printed, log lines outside spans, metric totals."""

from __future__ import annotations

from collections import deque

from otel_celery_launch.view.metrics import Totals
from otel_celery_launch.view.model import LogLine, Point, Span
from otel_celery_launch.view.traces import Traces


class Received:
    """Filled by the collector and read by the view (or the demo), both under ``LocalCollector.arrived``."""

    def __init__(self, most_spans: int = 100_000, remember: int = 10_000, most_series: int = 10_000) -> None:
        self.traces = Traces(most_spans, remember)
        self.metrics = Totals(most_series)
        self.loose: deque[LogLine] = deque(maxlen=most_spans)  # log lines outside spans, not yet printed
        self.dropped_loose = 0
        self.metric_exports = 0  # export requests of metrics taken so far
        self.grpc_on_http = 0  # gRPC connections to the HTTP port

    @property
    def spans(self) -> list[Span]:
        """Every span not yet printed: all of them, for a reader that prints none (the demo)."""
        return self.traces.waiting()

    @property
    def dropped(self) -> int:
        return self.traces.dropped + self.dropped_loose

    def add_spans(self, spans: list[Span], now: float) -> None:
        self.traces.add(spans, (), now)

    def add_logs(self, lines: list[LogLine], now: float) -> None:
        loose = [line for line in lines if line.loose]
        self.dropped_loose += max(0, len(self.loose) + len(loose) - self.traces.most)
        self.loose.extend(loose)
        self.traces.add((), [line for line in lines if not line.loose], now)

    def add_points(self, points: list[Point]) -> None:
        for point in points:
            self.metrics.add(point)
        self.metric_exports += 1
