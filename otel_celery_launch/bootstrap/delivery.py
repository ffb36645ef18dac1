"""Getting spans to the collector without ever holding the user's work back.

The SDK's batch processor keeps a bounded queue and exports from its own thread; what it
lacks is taken care of here:

* the exporter is built per process, after any fork, when the process ends its first span
  (on the application's thread: at interpreter exit its import would fail);
* a batch the collector refused is retried in the background until the collector answers
  (for at most ``batch.export_timeout``, so that a caller of ``force_flush`` is not held
  forever), while the queue bounds memory, so a collector that restarts loses nothing;
* a process that exits tries once, for at most ``exit_timeout``, never waiting out
  retries (prefork children leave through ``os._exit``, and a hung collector must not hold
  a shutdown); while the collector lately let an exit time out it tries for
  ``PROBE_TIMEOUT`` only, so that exits stay cheap during the outage and short-lived
  children export again the moment it is back;
* every span that never reached the collector is counted and reported, at most once per
  interval for the whole worker (:class:`~.collector_state.CollectorState`).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_celery_launch.bootstrap.collector_state import CollectorState
from otel_celery_launch.bootstrap.diagnostics import telemetry_failed
from otel_celery_launch.bootstrap.exporter import EXPORTER_LOGGERS, build_exporter
from otel_celery_launch.bootstrap.failures import from_exporter_log
from otel_celery_launch.handoff import Plan

RETRY_BACKOFF = (0.5, 30.0)  # first and longest wait between two tries of a refused batch
PROBE_TIMEOUT = 0.25  # how long an exiting process tries a collector known to hang lately, in seconds
_QUEUE_LOGGER = "opentelemetry.sdk._shared_internal"
_installed: Delivery | None = None
_after_spans: list[Callable[[], None]] = []  # the exit flushes of metrics and logs


class ResilientExporter(SpanExporter):
    """The real exporter, built per process, behind a retry loop that yields to exit."""

    def __init__(self, plan: Plan, state: CollectorState, at_exit: Callable[[], None]) -> None:
        self._plan = plan.exporter
        self._give_up_after = plan.batch.export_timeout  # a caller of force_flush must not wait forever
        self.state = state
        self._at_exit = at_exit
        self._exporter: SpanExporter | None = None
        self._pid = 0
        self._this_process()
        for name in EXPORTER_LOGGERS:
            logging.getLogger(name).addFilter(self._exporter_said)
        logging.getLogger(_QUEUE_LOGGER).addFilter(self._queue_said)

    def _this_process(self) -> None:
        """After a fork the counts, the exit flag and the exporter all belong to the parent."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._exporter = None
            self._built = False
            self._building = threading.Lock()
            self._leaving = threading.Event()
            self.failed = threading.Event()  # the latest try failed, or the exporter said it is failing
            self.ended = self.delivered = self.lost = 0

    def prepare(self) -> SpanExporter | None:
        self._this_process()
        if self._built:
            return self._exporter
        with self._building:  # spans end on many threads; all must wait for the one exporter
            if not self._built:
                try:
                    self._exporter = build_exporter(self._plan)
                except Exception as error:  # fail open: the span's owner must never see this
                    telemetry_failed(f"creating the {self._plan.protocol} exporter", error)
                # Exit handlers run last-registered first, and the exporter's imports may have
                # registered some (eventlet's thread pool joins its threads): flush before them.
                atexit.unregister(self._at_exit)
                atexit.register(self._at_exit)
                self._built = True
        return self._exporter

    def span_ended(self) -> None:
        self.prepare()
        self.ended += 1

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        exporter = self.prepare()
        backoff, deadline = RETRY_BACKOFF[0], time.monotonic() + self._give_up_after
        while exporter is not None:
            self.failed.clear()
            if self._try(exporter, spans):
                self.delivered += len(spans)
                self.state.mark_up()
                return SpanExportResult.SUCCESS
            self.state.mark_down("failed the export")
            if self._leaving.is_set():  # one try, no retries, on the way out
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.lost += len(spans)
                self.state.drop(len(spans))
                break
            self._leaving.wait(min(backoff, remaining))
            backoff = min(backoff * 2, RETRY_BACKOFF[1])
        return SpanExportResult.FAILURE

    def _try(self, exporter: SpanExporter, spans: Sequence[ReadableSpan]) -> bool:
        try:
            delivered = exporter.export(spans) is SpanExportResult.SUCCESS
        except Exception:  # a channel closed under a try that was abandoned at exit
            delivered = False
        if not delivered:
            self.failed.set()
        return delivered

    @property
    def undelivered(self) -> int:
        self._this_process()
        return self.ended - self.delivered - self.lost

    def leave(self) -> None:
        """From now on a collector known to be down means drop, not retry."""
        self._this_process()
        self._leaving.set()

    def abandon(self, why: str, hung: bool) -> None:
        """The process is going: stop the real exporter's own retries and cut its connection."""
        if hung:
            self.state.mark_hung(why)
        else:
            self.state.mark_down(why)
        if self._exporter is not None:
            self._exporter.shutdown()

    def write_off(self) -> None:
        """Count what never reached the collector, once; without an exporter that was already said."""
        lost = self.undelivered
        self.lost += lost
        if self._exporter is not None:
            self.state.drop(lost)

    def shutdown(self) -> None:
        if self._exporter is not None and self._pid == os.getpid():
            self._exporter.shutdown()

    def _exporter_said(self, record: logging.LogRecord) -> bool:
        """The exporters report failures only by logging them: the earliest news of an outage, and its cause.

        Their lines are replaced by the launcher's own, which name the cause and never
        repeat what the collector answered.
        """
        message = str(record.msg)
        args = record.args if isinstance(record.args, tuple) else ()
        found = from_exporter_log(self._plan.protocol, urlsplit(self._plan.endpoint or "").path or "/", message, args)
        if found is None:
            return not message.startswith(("Shutdown in progress", "Exporter already shutdown", "OTLP client already shutdown"))
        signal, failure = found
        if signal not in ("traces", "spans"):
            return True  # metrics' or logs' (gRPC's exporters share the logger): theirs to report
        if failure.hung:
            self.state.mark_hung(failure.phrase)
        else:
            self.state.mark_down(failure.phrase)
        self.failed.set()
        return False

    def _queue_said(self, record: logging.LogRecord) -> bool:
        """The SDK warns once per span dropped from a full queue; count them instead."""
        if str(record.msg).startswith("Queue full") and "span" in str(record.args).lower():
            self.lost += 1
            self.state.drop(1)
            return False
        return True


class _CountEnded(SpanProcessor):
    """Counts the spans handed to the batch processor, and builds the exporter before its first export."""

    def __init__(self, exporter: ResilientExporter) -> None:
        self._exporter = exporter

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._exporter.span_ended()


def flush_before_exit() -> None:
    """For exits that skip atexit: prefork children leave through ``os._exit``. Spans first, then metrics and logs."""
    if _installed is not None:
        _installed.flush_before_exit()
    for flush in _after_spans:
        flush()


def exit_after_spans(flush: Callable[[], None]) -> None:
    """Metrics' and logs' exit flush: run after the spans', by the same exits (each flush runs once per process)."""
    _after_spans.append(flush)
    if _installed is None:  # no spans (yet): its own handler; one made later runs first, and this one finds it done
        atexit.register(flush)


def wait_for_one_try(done: threading.Event, failed: threading.Event, timeout: float) -> bool:
    """An exiting process waits for its flush until it is done, its try failed, or ``timeout``; whether it finished.

    On a failure the exporter's own retries would keep it waiting: the caller cuts them.
    """
    deadline = time.monotonic() + timeout
    while not done.wait(0.02) and not failed.is_set() and time.monotonic() < deadline:
        pass
    return done.wait(0.05)


def flush_at_exit(what: str, flush: Callable[[], None], failed: threading.Event, exit_timeout: float, cut: Callable[[], None]) -> None:
    """Metrics' and logs' exit flush, by the spans' rules: one try from a daemon thread, waited for
    until it ends or fails, at most ``exit_timeout`` (a probe while the collector is known hung);
    then ``cut`` stops the exporter's own retries or a hung try, since the process is going."""
    failed.clear()
    done = threading.Event()

    def run() -> None:
        try:
            flush()
        except Exception as error:
            telemetry_failed(f"flushing {what}", error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"otel-celery-launch-{what}-flush", daemon=True).start()
    if not wait_for_one_try(done, failed, min(PROBE_TIMEOUT, exit_timeout) if collector_hung() else exit_timeout):
        cut()


def collector_hung() -> bool:
    """Whether the collector let an exit time out lately (known from spans): other signals only probe it then."""
    return _installed is not None and _installed.exporter.state.hung


class Delivery:
    """The batch pipeline of one tracer provider, and its bounded flush on exit."""

    def __init__(self, provider: TracerProvider, plan: Plan) -> None:
        self._provider = provider
        self._exit_timeout = plan.batch.exit_timeout
        self._owner = os.getpid()
        state = CollectorState(plan.exporter.endpoint or "stdout", plan.batch.max_queue_size)
        self.exporter = ResilientExporter(plan, state, self._at_exit)
        provider.add_span_processor(_CountEnded(self.exporter))
        provider.add_span_processor(
            BatchSpanProcessor(
                self.exporter,
                max_queue_size=plan.batch.max_queue_size,
                schedule_delay_millis=plan.batch.schedule_delay * 1000,
                max_export_batch_size=plan.batch.max_export_batch_size,
                export_timeout_millis=plan.batch.export_timeout * 1000,
            )
        )
        atexit.register(self._at_exit)
        self._forks_watched = False
        self._flush_when_a_process_ends()
        os.register_at_fork(after_in_child=self._flush_when_a_process_ends)
        global _installed
        _installed = self

    def _flush_when_a_process_ends(self) -> None:
        """multiprocessing's processes (fork, forkserver, spawn; Pool and ProcessPoolExecutor
        workers) leave through ``os._exit`` too, after running its finalizers: flush in one.

        A forked process clears the finalizers it inherited and then runs the after-fork
        callbacks, so there the finalizer is registered from one of those.
        """
        util = sys.modules.get("multiprocessing.util")
        if util is None:  # the program uses no multiprocessing (yet): atexit is enough
            return
        util.Finalize(None, self.flush_before_exit, exitpriority=0)
        if not self._forks_watched:  # forked children inherit both the flag and the callback
            self._forks_watched = True
            util.register_after_fork(self, Delivery._flush_when_a_process_ends)

    def flush_before_exit(self) -> bool:
        """Deliver what this process holds within the exit timeout; count the rest as dropped.

        Returns whether the flush finished; if not, its thread is left behind, as a daemon.
        """
        exporter = self.exporter
        exporter.leave()
        if exporter.undelivered <= 0:
            return True
        probing = exporter.state.hung  # lately hung: a short try finds out whether it is back
        done = threading.Event()
        threading.Thread(target=self._flush, args=(done,), name="otel-celery-launch-flush", daemon=True).start()
        finished = wait_for_one_try(done, exporter.failed, min(self._exit_timeout, PROBE_TIMEOUT) if probing else self._exit_timeout)
        if not finished:
            hung = not exporter.failed.is_set() and not probing  # a probe that times out does not extend the knowledge
            exporter.abandon("refused the export" if exporter.failed.is_set() else f"gave no answer within the exit timeout of {self._exit_timeout:g}s", hung)
        exporter.write_off()
        return finished

    def _flush(self, done: threading.Event) -> None:
        try:
            self._provider.force_flush()
        except Exception as error:
            telemetry_failed("flushing spans", error)
        finally:
            done.set()

    def _at_exit(self) -> None:
        if self.flush_before_exit():  # the SDK's own shutdown would wait for a stuck export
            self._provider.shutdown()
        for flush in _after_spans:
            flush()
        if os.getpid() == self._owner:
            self.exporter.state.report_remaining()
