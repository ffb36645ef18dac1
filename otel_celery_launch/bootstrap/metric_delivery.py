"""Getting metrics to the collector by the rules spans follow: per process, after fork, bounded at exit.

The SDK's periodic reader restarts its thread in a forked child, but the child inherits the
parent's measurements not yet exported, and would export them a second time. This reader
exports sums and histograms as deltas (a recycled prefork child's counts are then simply
added up at the collector, whatever the process), and in a forked child it collects once
and throws that away, so that the child starts from zero. The exporter is built per
process, on first export. A batch the collector refused is kept and sent with the next
(up to ``KEPT_BATCHES``), so a collector that restarts loses nothing. A process that exits
collects and tries once, for at most the exit timeout (the probe time while the collector is
known hung), from a daemon thread that a hung collector cannot keep alive.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult, MetricReader, MetricsData
from opentelemetry.sdk.resources import Resource

from otel_celery_launch.bootstrap.delivery import exit_after_spans
from otel_celery_launch.bootstrap.diagnostics import silence, telemetry_failed
from otel_celery_launch.bootstrap.exporter import build_exporter, signal_endpoint
from otel_celery_launch.bootstrap.signal_failures import report_failures
from otel_celery_launch.handoff import Plan

KEPT_BATCHES = 10  # refused exports kept for the next try, per process
_DELTA: dict[type, AggregationTemporality] = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
          ObservableCounter: AggregationTemporality.DELTA, UpDownCounter: AggregationTemporality.CUMULATIVE}
_installed: ProcessMetricReader | None = None


class ProcessMetricReader(MetricReader):
    def __init__(self, plan: Plan) -> None:
        super().__init__(preferred_temporality=_DELTA)
        self._plan = plan
        self._owner = os.getpid()
        self._start()
        os.register_at_fork(after_in_child=self._forked)

    def _start(self) -> None:
        self.failed = threading.Event()  # a try failed in this process (set by signal_failures)
        self._held = False  # exports wait for the exit (see hold_until_exit)
        self._pid = os.getpid()
        self._exporter: Any = None
        self._kept: list[MetricsData] = []
        self._discarding = False
        self._sending = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._tick, name="otel-celery-launch-metrics", daemon=True).start()

    def _forked(self) -> None:
        failed = self.failed
        self._start()
        self.failed = failed  # signal_failures sets this one
        self._discarding = True  # the parent's measurements are the parent's to export
        try:
            self.collect()
        except Exception:  # the SDK refuses before the reader is registered: nothing to forget then
            pass
        finally:
            self._discarding = False

    def hold_until_exit(self) -> None:
        """A process that forks pool processes must have no gRPC channel open when it forks (the
        children's exports then hang): with gRPC, it exports once, as it exits."""
        if self._plan.exporter.protocol == "grpc":
            self._held = True

    def _tick(self) -> None:
        while not self._stop.wait(self._plan.metrics.export_interval):
            if self._held and self._pid == os.getpid():
                continue
            try:
                self.collect()
            except Exception as error:
                telemetry_failed("collecting metrics", error)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_: Any) -> None:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        if self._discarding:
            return
        with self._sending, suppress_instrumentation():  # the exporter's own HTTP calls are not the program's
            self._kept = (self._kept + [metrics_data])[-KEPT_BATCHES:]
            exporter = self._exporter_here()
            while exporter is not None and self._kept:
                try:
                    sent = exporter.export(self._kept[0], timeout_millis=timeout_millis) is MetricExportResult.SUCCESS
                except Exception:
                    sent = False
                if not sent:
                    return
                self._kept.pop(0)

    def _exporter_here(self) -> Any:
        if self._exporter is None:
            try:
                self._exporter = build_exporter(self._plan.exporter, "metrics")
            except Exception as error:
                telemetry_failed(f"creating the {self._plan.exporter.protocol} metric exporter", error)
                self._exporter = False
        return self._exporter or None

    def flush_before_exit(self) -> None:
        """Collect and try once, bounded: for exits that skip atexit (prefork children) and at exit; once per process."""
        from otel_celery_launch.bootstrap.delivery import flush_at_exit

        if self._stop.is_set():
            return
        self._stop.set()
        exit_timeout = self._plan.batch.exit_timeout

        def cut() -> None:  # the exporter may be built by the flush itself
            if self._exporter:
                self._exporter.shutdown()

        flush_at_exit("metrics", lambda: self.collect(timeout_millis=exit_timeout * 1000), self.failed, exit_timeout, cut)

    def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
        self._stop.set()


def install_meter_provider(plan: Plan) -> None:
    """The global meter provider, so Celery's metrics and those of every instrumentation go out."""
    from opentelemetry import metrics

    global _installed
    if _installed is not None:
        return
    _installed = ProcessMetricReader(plan)
    _installed.failed = report_failures("metrics", plan.exporter, signal_endpoint(plan.exporter, "metrics"))
    metrics.set_meter_provider(MeterProvider(metric_readers=[_installed], resource=Resource.create(plan.resource), shutdown_on_exit=False))
    exit_after_spans(_installed.flush_before_exit)
    silence("opentelemetry.metrics._internal", "Overriding of current MeterProvider")  # the program's own: ours stays



def hold_until_exit() -> None:
    if _installed is not None:
        _installed.hold_until_exit()
