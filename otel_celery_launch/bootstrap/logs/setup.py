"""What the bootstrap changes in the process's logging: ids added, nothing of the program's taken.

Records and structlog events gain the ids of their span; the program's levels, handlers,
formats, warnings and structlog configuration stay its own. Only two things are restyled:
the handlers Celery makes for a worker, and Python's handler of last resort, which writes
the lines of a program that configures no logging.

Cheap on purpose: structlog (about 40 ms to import) is loaded only when the program imports
it, when Celery sets up its log handlers, or when the first line reaches the handler of
last resort.
"""

from __future__ import annotations

import functools
import logging
import sys

from typing import Any

from otel_celery_launch.bootstrap.logs.ids import add_trace_ids, install_record_ids
from otel_celery_launch.bootstrap.logs.style import show_warnings_in_format
from otel_celery_launch.handoff import LogsPlan


class _StyledLastResort(logging.StreamHandler):  # type: ignore[type-arg]
    """Python's handler of last resort, used while the program configures no logging, in our format.

    Like Python's own, it writes to ``sys.stderr`` as it is when the line is written, so a
    program that redirects stderr (``contextlib.redirect_stderr``) captures its lines.
    """

    def __init__(self, plan: LogsPlan) -> None:
        super().__init__()
        self.setLevel(plan.level.upper())
        self._plan = plan

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:  # logging.StreamHandler sets it; the current stderr is always used
        pass

    def emit(self, record: logging.LogRecord) -> None:
        """In the look of the stream it writes to now: a terminal, or a redirection."""
        from otel_celery_launch.bootstrap.logs.format import formatter

        self.formatter = formatter(self._plan, self.stream)
        super().emit(record)


def install_logging(plan: LogsPlan) -> None:
    install_record_ids()
    if plan.format != "off":
        logging.lastResort = _StyledLastResort(plan)
        show_warnings_in_format(plan)


def adopt_structlog_defaults(plan: LogsPlan, export: bool = False) -> None:
    """Called once structlog is imported: its defaults, until the program configures its own, add the ids,
    and where the launcher writes JSON, print each event as one JSON object (see :func:`.structlog_defaults.json_defaults`).

    The defaults are changed in place, so structlog still counts as not configured:
    ``is_configured`` and ``configure_once`` behave as they do bare, and ``configure`` (even of one
    key) puts structlog's own defaults back first. A program with its own chain can add
    :func:`add_trace_ids` to it.
    """
    import structlog
    from structlog import _config

    config = _config._CONFIG
    if add_trace_ids in config.default_processors:
        return
    builtin = (list(config.default_processors), config.logger_factory)
    _adopt(plan, export)
    configure, reset_defaults = _config.configure, _config.reset_defaults

    @functools.wraps(configure)
    def configure_from_structlogs_defaults(*args: Any, **kwargs: Any) -> None:
        config.default_processors[:], config.logger_factory = builtin  # type: ignore[index]
        configure(*args, **kwargs)

    @functools.wraps(reset_defaults)
    def reset_to_the_launchers_defaults() -> None:
        reset_defaults()
        _adopt(plan, export)

    _config.configure = structlog.configure = configure_from_structlogs_defaults
    _config.reset_defaults = structlog.reset_defaults = reset_to_the_launchers_defaults


def _adopt(plan: LogsPlan, export: bool) -> None:
    from structlog import _config

    from otel_celery_launch.bootstrap.logs.structlog_defaults import json_defaults
    from otel_celery_launch.bootstrap.logs.style import writes_json

    config = _config._CONFIG
    processors: Any = config.default_processors
    if writes_json(plan, sys.stdout):
        processors[:], config.logger_factory = json_defaults()  # attributes, not configure(): that would count as configured
    else:
        processors.insert(max(len(processors) - 1, 0), add_trace_ids)  # before the renderer
    if export:
        from otel_celery_launch.bootstrap.export.logs import export_structlog_event

        processors.insert(max(len(processors) - 1, 0), export_structlog_event)


def restyle_celery_handlers(plan: LogsPlan, logger: logging.Logger) -> None:
    """The handlers Celery made, in our format; the application's and a test framework's keep theirs."""
    from otel_celery_launch.bootstrap.logs.format import restyle

    restyle(logger, plan)
