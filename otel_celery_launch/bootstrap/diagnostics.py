"""The launcher's own voice inside the child: one logger, straight to the real stderr.

It does not go through the root logger, so neither Celery's logging setup nor the
application's can swallow or duplicate it.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("otel_celery_launch")


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


_warned = False


def telemetry_failed(stage: str, error: BaseException) -> None:
    """Fail open: the program keeps running and says so once; details go to debug."""
    global _warned
    level = logging.DEBUG if _warned else logging.WARNING
    _warned = True
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
