"""What all processes of one worker know about the collector, shared across fork.

A prefork child that finds the collector down must spare its siblings and the children
that replace it the same wait, and dropped spans must be reported once per interval for
the whole worker, not once per child. So the state lives in one shared page, made before
the first fork, and guarded by a POSIX record lock (which excludes other processes) plus
a thread lock (which excludes this process's other threads).
"""

from __future__ import annotations

import fcntl
import mmap
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from otel_celery_launch.bootstrap.diagnostics import logger
from otel_celery_launch.masking import host_port

REPORT_INTERVAL = 60.0  # seconds between two warnings about the same outage
HUNG_FOR = 5.0  # seconds that exiting processes only probe a collector that let one of them time out

# down_since (0: reachable), dropped since the last report, time of the last report,
# until when exiting processes skip a hung collector
_LAYOUT = struct.Struct("=dqdd")


class CollectorState:
    def __init__(self, endpoint: str, queue_limit: int) -> None:
        self._where = host_port(endpoint)
        self._queue_limit = queue_limit
        self._file = tempfile.TemporaryFile()
        self._file.truncate(_LAYOUT.size)
        self._page = mmap.mmap(self._file.fileno(), _LAYOUT.size)
        self._threads = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[list[float]]:
        with self._threads:
            fcntl.lockf(self._file, fcntl.LOCK_EX)
            try:
                fields = list(_LAYOUT.unpack_from(self._page))
                yield fields
                _LAYOUT.pack_into(self._page, 0, *fields)
            finally:
                fcntl.lockf(self._file, fcntl.LOCK_UN)

    @property
    def down(self) -> bool:
        return _LAYOUT.unpack_from(self._page)[0] > 0

    @property
    def hung(self) -> bool:
        """A collector that let an exit time out, lately: exits probe it briefly rather than each wait.

        The knowledge expires, so a process exiting later waits the full exit timeout
        again; a collector that refuses costs an exit nothing to try, so refusals alone
        never count.
        """
        return time.time() < _LAYOUT.unpack_from(self._page)[3]

    def mark_down(self, what: str) -> None:
        """``what`` completes "the collector at host:port ...": the cause, as :mod:`.failures` names it."""
        with self._locked() as fields:
            if fields[0]:
                return
            fields[0] = time.time()
            self._report(fields, f"the collector at {self._where} {what}")

    def mark_hung(self, what: str) -> None:
        self.mark_down(what)
        with self._locked() as fields:
            fields[3] = time.time() + HUNG_FOR

    def mark_up(self) -> None:
        if not self.down:  # the common case, without taking the lock
            return
        with self._locked() as fields:
            fields[3] = 0.0
            if fields[0]:
                fields[0] = 0.0
                logger.warning("otel-celery-launch: the collector at %s answers again; exporting resumed", self._where)

    def drop(self, count: int) -> None:
        if count <= 0:
            return
        with self._locked() as fields:
            fields[1] += count
            if time.time() - fields[2] >= REPORT_INTERVAL:
                self._report(fields, f"the collector at {self._where} is still failing")

    def report_remaining(self) -> None:
        """At the worker's final exit: the drops that an interval has not yet reported."""
        with self._locked() as fields:
            if fields[1]:
                self._report(fields, f"the collector at {self._where} was failing")

    def _report(self, fields: list[float], what: str) -> None:
        dropped, fields[1], fields[2] = int(fields[1]), 0, time.time()
        lost = f"; {dropped} span{'' if dropped == 1 else 's'} dropped" if dropped else ""
        logger.warning(
            "otel-celery-launch: warning: %s%s; each process keeps up to %d spans and retries; the work runs on",
            what,
            lost,
            self._queue_limit,
        )
