"""The single voice of export: what the collector does and what was lost, said once per change or interval.

Every process of the program hands its telemetry to the one sidecar, so this is the only
place that knows the collector's state and every drop, and the only one that speaks of them.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from otel_celery_launch.masking import host_port

REPORT_INTERVAL = 60.0  # seconds between two reports of the same outage
_NOUNS = {"spans": ("span", "spans"), "metrics": ("metric", "metrics"), "logs": ("log record", "log records")}


def say(message: str, *args: object) -> None:
    """One line on the program's stderr, which the sidecar shares."""
    try:
        sys.stderr.write("otel-celery-launch: " + (message % args if args else message) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: nowhere to say it
        pass


class Voice:
    def __init__(self, endpoint: str, queue_limit: int) -> None:
        self._where = host_port(endpoint)
        self._queue_limit = queue_limit
        self._lock = threading.Lock()
        self._down = False
        self._dropped = dict.fromkeys(_NOUNS, 0)
        self._reported_at = 0.0
        self._said: set[str] = set()
        self._closed = False

    @property
    def down(self) -> bool:
        return self._down

    def mark_down(self, what: str) -> None:
        """``what`` completes "the collector at host:port ...": the cause, as :mod:`.failures` names it."""
        with self._lock:
            if not self._down:
                self._down = True
                self._report(f"the collector at {self._where} {what}")

    def mark_up(self) -> None:
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    say("warning: the collector at %s answers again; exporting resumed", self._where)

    def drop(self, signal: str, count: int) -> None:
        if count <= 0 or self._closed:
            return
        with self._lock:
            self._dropped[signal] += count
            if time.monotonic() - self._reported_at >= REPORT_INTERVAL:
                self._report(self._state())

    def close(self, left: dict[str, int], what: str) -> None:
        """At the end: ``left`` (what never got through, by signal) and the drops no interval has reported yet;
        nothing is counted after this (a try still running is abandoned)."""
        with self._lock:
            for signal, count in left.items():
                self._dropped[signal] += count
            if any(self._dropped.values()):
                self._report(f"the collector at {self._where} {what}" if self._down or left else self._state())
            self._closed = True

    def let_go(self, stdout: bool) -> None:
        """The command has ended, and processes it started live on: report what is pending, then let its
        stderr go (and its stdout, which the console exporter writes to)."""
        with self._lock:
            if any(self._dropped.values()):
                self._report(self._state())
        devnull = os.open(os.devnull, os.O_WRONLY)
        for descriptor in (1, 2) if stdout else (2,):
            os.dup2(devnull, descriptor)
        os.close(devnull)

    def failed(self, stage: str, error: BaseException) -> None:
        """A step of the sidecar itself failed: said once per stage; the program runs on."""
        if stage not in self._said:
            self._said.add(stage)
            say("warning: %s failed (%s); the program runs on with telemetry incomplete", stage, type(error).__name__)

    def _state(self) -> str:
        """Why items were dropped, as far as is known."""
        if self._down:
            return f"the collector at {self._where} is still failing"
        return f"the collector at {self._where} took telemetry slower than the program made it (a queue was full)"

    def _report(self, what: str) -> None:
        lost = "".join(f"; {count} {_NOUNS[signal][count != 1]} dropped" for signal, count in self._dropped.items() if count)
        self._dropped = dict.fromkeys(_NOUNS, 0)
        self._reported_at = time.monotonic()
        say("warning: %s%s; the sidecar keeps up to %d of each and retries; the work runs on", what, lost, self._queue_limit)
