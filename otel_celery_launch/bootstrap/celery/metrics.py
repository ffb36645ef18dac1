"""Celery's metrics: tasks published, started and finished, run time, queue wait, the worker's pool and its queues.

Names follow the OpenTelemetry messaging conventions where they define one, ``celery.*``
otherwise (the README lists them). Counters and histograms are recorded where the event
happens (the publishing process, the pool process running the task) and exported as deltas,
so the collector's sums are exact however many processes a worker forks and recycles.
The publish time travels in the message (header ``PUBLISHED``), so queue wait is measured
across processes and machines (clocks permitting). The worker's state and its queues'
depth are observed by its main process only: one broker poll per queue per interval.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from otel_celery_launch.bootstrap.diagnostics import logger
from otel_celery_launch.bootstrap.export.tally import TALLY
from otel_celery_launch.handoff import Plan

PUBLISHED = "otel_celery_launch_published"  # message header: publish time, seconds since the epoch
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300)
TASK, QUEUE, OUTCOME, OPERATION = "celery.task.name", "messaging.destination.name", "celery.task.outcome", "messaging.operation.name"
_OUTCOMES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry", "REJECTED": "rejected", "IGNORED": "ignored"}


SENT = TALLY.counter("messaging.client.sent.messages", "{message}", "tasks published", (TASK, QUEUE, OPERATION))
CONSUMED = TALLY.counter("messaging.client.consumed.messages", "{message}", "tasks a worker started to run", (TASK, QUEUE, OPERATION))
OUTCOMES = TALLY.counter("celery.task.outcomes", "{task}", "tasks finished, by outcome: success, failure, retry, rejected, revoked, ignored",
                         (TASK, QUEUE, OUTCOME))
DURATION = TALLY.histogram("messaging.process.duration", "s", "time a task ran, by outcome", (TASK, QUEUE, OUTCOME), SECONDS_BUCKETS)
WAIT = TALLY.histogram("celery.task.queue.wait", "s", "time from publish to the start of the run", (TASK, QUEUE), SECONDS_BUCKETS)
_started: dict[str, tuple[float, str, str]] = {}  # task id: when it started, its name and queue


class RunReceivers(NamedTuple):
    """The run's ``task_prerun`` and ``task_postrun`` receivers: connected on their own, or called by the run span's."""

    started: Callable[..., None]
    finished: Callable[..., None]

    def connect(self) -> None:
        from celery import signals

        signals.task_prerun.connect(self.started, weak=False)
        signals.task_postrun.connect(self.finished, weak=False)


def record_celery_metrics(plan: Plan) -> RunReceivers:
    """Connect the signal receivers but the run's two, returned for the Celery hooks to connect, or to call
    from the run span's receivers; called with the Celery hooks, in every process that imports Celery.

    The meter provider (set up as ``opentelemetry.metrics`` is imported) collects the counts.
    """
    from celery import signals
    from opentelemetry.metrics import get_meter_provider

    get_meter_provider()  # imported, the provider is set up (see the bootstrap), and collects the tally with the SDK's metrics

    signals.before_task_publish.connect(_published, weak=False)
    signals.task_revoked.connect(_revoked, weak=False)
    signals.task_rejected.connect(_rejected, weak=False)
    signals.worker_ready.connect(lambda sender=None, **_: _observe_worker(sender, plan), weak=False)
    return RunReceivers(_started_run, _finished_run)


def _queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or "")


def _published(sender: Any = None, routing_key: str | None = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers[PUBLISHED] = time.time()
    TALLY.add(SENT, (str(sender), str(routing_key or ""), "publish"))


def _started_run(task_id: str | None = None, task: Any = None, request: Any = None, **_: Any) -> None:
    """``task_prerun``; ``request``: the task's, when the caller has it already."""
    if request is None:
        request = getattr(task, "request", None)
    name, queue = str(getattr(task, "name", "")), _queue_of(request)
    TALLY.add(CONSUMED, (name, queue, "process"))
    published = getattr(request, PUBLISHED, None)
    if isinstance(published, (int, float)):
        TALLY.record(WAIT, (name, queue), max(0.0, time.time() - published))
    if task_id:
        _started[task_id] = (time.perf_counter(), name, queue)


def _finished_run(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    if state is None and _revoked_while_running(task_id):
        return  # task_revoked counts it
    outcome = "failure" if state is None else _OUTCOMES.get(str(state), str(state).lower())  # None: killed (time limit)
    if started is None:
        TALLY.add(OUTCOMES, (str(getattr(task, "name", "")), _queue_of(getattr(task, "request", None)), outcome))
        return
    at, name, queue = started
    key = (name, queue, outcome)
    TALLY.add(OUTCOMES, key)
    TALLY.record(DURATION, key, time.perf_counter() - at)


def _revoked_while_running(task_id: str | None) -> bool:
    from celery.worker import state

    return task_id in state.revoked


def _revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    name = getattr(request, "task_name", None) or getattr(sender, "name", None) or getattr(request, "name", "")
    TALLY.add(OUTCOMES, (str(name), _queue_of(request), "revoked"))


def _rejected(message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    TALLY.add(OUTCOMES, (str(headers.get("task", "")), _queue_of(message), "rejected"))


def _observe_worker(consumer: Any, plan: Plan) -> None:
    """In the worker's main process: its pool, its reserved tasks, and the depth of its queues."""
    from celery.worker import state
    from opentelemetry.metrics import Observation

    from opentelemetry import metrics

    owner, meter = os.getpid(), metrics.get_meter("otel-celery-launch")
    where = {"celery.worker.hostname": str(getattr(consumer, "hostname", ""))}

    def observing(value: Any) -> Any:
        last: list[Any] = []

        def callback(_: Any) -> list[Observation]:
            if os.getpid() != owner:  # forked children inherit the callbacks
                return []
            try:
                last[:] = [value()]
            except Exception:  # the pool is gone (shutting down): its last value stands
                pass
            return [Observation(last[0], where)] if last else []

        return [callback]

    pool = consumer.pool
    meter.create_observable_gauge("celery.worker.pool.size", observing(lambda: pool.num_processes), "{process}", "processes (or threads, greenlets) of the pool")
    meter.create_observable_gauge("celery.worker.pool.busy", observing(lambda: len(state.active_requests)), "{task}", "tasks running now")
    meter.create_observable_gauge("celery.worker.tasks.reserved", observing(lambda: max(0, len(state.reserved_requests) - len(state.active_requests))),
                                  "{task}", "tasks received (prefetched) but not yet started")
    poller = QueueDepth(consumer, plan.metrics.queue_depth_interval)
    meter.create_observable_gauge("celery.queue.depth", [poller.observe], "{message}", "messages waiting in each queue the worker consumes or the app declares")
    threading.Thread(target=poller.run, name="otel-celery-launch-queue-depth", daemon=True).start()


class QueueDepth:
    """Polls the broker for the depth of each queue, at most once per interval, on its own connection."""

    def __init__(self, consumer: Any, interval: float) -> None:
        self._app = consumer.app
        self._owner = os.getpid()
        self._interval = interval
        consuming = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
        self._names = sorted({queue.name for queue in consuming} | set(self._app.amqp.queues))
        self.depths: dict[str, int] = {}

    def observe(self, _: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        if os.getpid() != self._owner:
            return []
        return [Observation(depth, {QUEUE: name}) for name, depth in sorted(self.depths.items())]

    def run(self) -> None:
        while True:
            try:
                with self._app.connection_for_read() as connection:
                    connection.ensure_connection(max_retries=1)
                    while True:
                        self._poll(connection)
                        time.sleep(self._interval)
            except Exception as error:  # the broker is away: the worker says so itself; try again later
                logger.debug("polling queue depths failed: %r", error)
                time.sleep(self._interval)

    def _poll(self, connection: Any) -> None:
        from kombu.transport.virtual import Channel as VirtualChannel

        channel = connection.channel()
        try:
            for name in self._names:
                try:
                    # a broker keeps queues (passive: never create one); Redis and other virtual
                    # transports keep lists that vanish when empty, and declaring there creates nothing
                    passive = not isinstance(channel, VirtualChannel)
                    self.depths[name] = int(channel.queue_declare(queue=name, passive=passive).message_count)
                except connection.channel_errors:  # not declared on the broker: nothing waits there
                    self.depths.pop(name, None)
                    channel = connection.channel()  # the broker closed the channel
        finally:
            channel.close()
