"""The launcher's own voice inside the child: one logger, straight to the real stderr.

It does not go through the root logger, so neither Celery's logging setup nor the
application's can swallow or duplicate it. Its lines are written with one ``os.write``
and no lock: they are also written from eventlet's pool of real threads (exports), where a
lock that eventlet made green would leave the thread waiting on a hub that never runs.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("otel_celery_launch")


class _LockFreeHandler(logging.Handler):
    def __init__(self, descriptor: int) -> None:
        super().__init__()
        self._descriptor = descriptor

    def createLock(self) -> None:  # noqa: N802 (logging API)
        self.lock = None

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if self.filter(record):
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            os.write(self._descriptor, (self.format(record) + "\n").encode(errors="replace"))
        except OSError:  # stderr closed: nowhere to say it
            pass


def configure(level: str) -> None:
    handler = _LockFreeHandler(sys.__stderr__.fileno() if sys.__stderr__ is not None else 2)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


_warned: set[str] = set()


def telemetry_failed(stage: str, error: BaseException) -> None:
    """Fail open: the program keeps running and says so once per stage (each broken instrumentation is named); details go to debug."""
    level = logging.DEBUG if stage in _warned else logging.WARNING
    _warned.add(stage)
    logger.log(
        level,
        "otel-celery-launch: warning: %s failed (%s: %s); the program runs on with tracing incomplete",
        stage,
        type(error).__name__,
        error,
        exc_info=logger.isEnabledFor(logging.DEBUG),
    )


class _DropExpected(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def silence(logger_name: str, prefix: str) -> None:
    """Drop a library warning that the launcher makes expected (user code redoing its setup)."""
    logging.getLogger(logger_name).addFilter(_DropExpected(prefix))
