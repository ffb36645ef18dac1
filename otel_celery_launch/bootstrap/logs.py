"""What the bootstrap changes in the process's logging, before any of its code runs.

Cheap on purpose: structlog (about 40 ms to import) is loaded only when the program imports
it, when Celery sets up its log handlers, or when the first line reaches the handler of
last resort.
"""

from __future__ import annotations

import logging
import sys

from otel_celery_launch.bootstrap.log_ids import add_trace_ids, install_record_ids
from otel_celery_launch.handoff import LogsPlan


class _StyledLastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """Python's handler of last resort, used while the program configures no logging, in our format."""

    def __init__(self, plan: LogsPlan) -> None:
        super().__init__(sys.stderr)
        self.setLevel(plan.level.upper())
        self._plan = plan

    def emit(self, record: logging.LogRecord) -> None:
        if self.formatter is None:
            from otel_celery_launch.bootstrap.log_format import formatter

            self.setFormatter(formatter(self._plan, self.stream))
        super().emit(record)


class _LastResortUntilConfigured(logging.Handler):
    """Hands lines to the handler of last resort while the root logger has no handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers and logging.lastResort is not None:
            logging.lastResort.handle(record)


def install_logging(plan: LogsPlan) -> None:
    install_record_ids()
    if plan.format == "off":
        return
    logging.lastResort = _StyledLastResort(plan)
    # Python warnings become log lines too. Capturing them would give their logger a
    # NullHandler, so that, before the program configures logging, they would vanish.
    logging.getLogger("py.warnings").addHandler(_LastResortUntilConfigured())
    logging.captureWarnings(True)
    root = logging.getLogger()
    if not root.handlers and root.level == logging.WARNING:  # nobody chose a level yet
        root.setLevel(plan.level.upper())


def configure_structlog() -> None:
    """Called once structlog is imported (also by our own formatter): route it through logging."""
    import structlog
    from structlog.stdlib import ProcessorFormatter

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_ids,
            structlog.processors.StackInfoRenderer(),
            ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def restyle_celery_handlers(plan: LogsPlan, logger: logging.Logger) -> None:
    """The handlers Celery made, in our format; the application's and a test framework's keep theirs."""
    from otel_celery_launch.bootstrap.log_format import restyle

    restyle(logger, plan)
