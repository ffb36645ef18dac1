"""One signal's way to the collector: a bounded queue, batches, and retries until the collector answers.

The queue drops its oldest items when full, and counts them. A batch the collector refused
is tried again, with a growing pause, for as long as the program runs: nobody waits for it
but the queue behind it. When the program ends (:meth:`Pipeline.leave`) every batch left
gets one more try, and what still fails is counted as dropped; the caller bounds the time.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from otel_celery_launch.sidecar.failures import Failure
from otel_celery_launch.sidecar.voice import Voice

RETRY_BACKOFF = (0.5, 30.0)  # first and longest pause between two tries of a refused batch


class Pipeline:
    def __init__(self, signal: str, make_exporter: Callable[[], Any], prepare: Callable[[list[Any]], Any], voice: Voice,
                 causes: Callable[[str], Failure], limit: int, batch_size: int, delay: float) -> None:
        self.signal = signal
        self._make_exporter = make_exporter
        self._prepare = prepare  # a batch of items -> what the exporter's export takes
        self._voice = voice
        self._cause = causes  # the cause of this signal's latest failed try
        self._limit, self._batch_size, self._delay = limit, batch_size, delay
        self._queue: deque[Any] = deque()
        self._ready = threading.Condition()
        self._leaving = threading.Event()
        self.exporter: Any = None
        self.in_flight = 0  # items of the batch being tried
        self.failing = threading.Event()  # the current try has failed already (the exporter said so, and retries within it)
        self.thread = threading.Thread(target=self._run, name=f"otel-celery-launch-{signal}", daemon=True)
        self.thread.start()

    def put(self, items: list[Any]) -> None:
        with self._ready:
            self._queue.extend(items)
            overflow = len(self._queue) - self._limit
            for _ in range(max(0, overflow)):
                self._queue.popleft()
            if len(self._queue) >= self._batch_size:
                self._ready.notify()
        if overflow > 0:
            self._voice.drop(self.signal, overflow)

    def leave(self) -> None:
        """The program has ended: try what is left once, then stop."""
        self._leaving.set()
        with self._ready:
            self._ready.notify()

    @property
    def left(self) -> int:
        return len(self._queue) + self.in_flight

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: len(self._queue) >= self._batch_size or self._leaving.is_set(), self._delay)
                batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
                self.in_flight = len(batch)
            if not batch:
                if self._leaving.is_set():
                    return
                continue
            self._deliver(batch)
            self.in_flight = 0

    def _deliver(self, batch: list[Any]) -> None:
        backoff = RETRY_BACKOFF[0]
        while True:
            outcome = self._try(batch)
            if outcome is None:  # the batch itself cannot be exported: trying again would not help
                self._voice.drop(self.signal, len(batch))
                return
            if outcome:
                self._voice.mark_up()
                return
            self._voice.mark_down(self._cause(self.signal).phrase)
            if self._leaving.is_set():
                self._voice.drop(self.signal, len(batch))
                return
            self._leaving.wait(backoff)
            backoff = min(backoff * 2, RETRY_BACKOFF[1])

    def _try(self, batch: list[Any]) -> bool | None:
        """Whether the collector took the batch; None if the exporter could not even encode it."""
        self.failing.clear()
        self._cause(self.signal)  # forget an older try's cause
        try:
            if self.exporter is None:
                self.exporter = self._make_exporter()
        except Exception as error:  # a certificate file gone: perhaps back later
            self._voice.failed(f"creating the {self.signal} exporter", error)
            return False
        try:
            result = self.exporter.export(self._prepare(batch))
        except Exception as error:  # the exporters report network failures by their result, not by raising
            self._voice.failed(f"exporting {self.signal}", error)
            return None
        return getattr(result, "name", "") == "SUCCESS"
