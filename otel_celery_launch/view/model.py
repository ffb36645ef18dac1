"""What the local collector keeps of each span, log record and metric point: only what the view prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    service: str
    attributes: dict[str, str]
    start: int = 0  # nanoseconds since the epoch


@dataclass(frozen=True, slots=True)
class LogLine:
    body: str
    severity: str
    trace_id: str
    span_id: str
    logger: str
    service: str
    time: int = 0

    @property
    def loose(self) -> bool:
        """Logged outside any span: printed as it comes, not under a trace."""
        return not self.trace_id.strip("0") or not self.span_id.strip("0")


COUNTED_KINDS = ("histogram", "exponential_histogram", "summary")  # metric points with a count and a sum
SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]  # (service, metric name, sorted attributes)


@dataclass(frozen=True)
class Point:
    """One data point: a number (sum, gauge) or a count and sum (histograms, summaries)."""

    key: SeriesKey
    kind: str
    delta: bool
    value: float
    count: int = 1
