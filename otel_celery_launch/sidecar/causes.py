"""Why the latest try of each signal failed, from what the exporters log.

The exporters report a failed export only by logging it, with what the collector answered
(which may echo a header). In the sidecar every library's log line is taken here and none is
printed: failures are said by :mod:`.voice`, in the words of :mod:`.failures`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from urllib.parse import urlsplit

from otel_celery_launch.handoff import ExporterPlan
from otel_celery_launch.sidecar.exporters import signal_endpoint
from otel_celery_launch.sidecar.failures import Failure, from_exporter_log

_SIGNALS = {"traces": "spans", "spans": "spans", "metrics": "metrics", "logs": "logs"}


class Causes(logging.Handler):
    def __init__(self, plan: ExporterPlan, news: Callable[[str, Failure], None]) -> None:
        super().__init__(logging.DEBUG)
        self._news = news  # told at once: the exporters retry within a try, and the first failure is the earliest news
        self._protocol = plan.protocol
        self._paths = {signal: urlsplit(signal_endpoint(plan, signal) or "").path or "/" for signal in ("spans", "metrics", "logs")}
        self._latest: dict[str, Failure] = {}

    def install(self) -> None:
        """Every log record of the process comes here, and goes no further; Python's warnings are not shown."""
        root = logging.getLogger()
        root.handlers[:] = [self]
        root.setLevel(logging.WARNING)
        warnings.simplefilter("ignore")

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        message = str(record.msg)
        for signal, path in self._paths.items():
            found = from_exporter_log(self._protocol, path, message, args)
            if found is not None and _SIGNALS.get(str(found[0])) == signal:
                if signal not in self._latest:  # the first line of a try names the cause; a last "gave up" line does not
                    self._latest[signal] = found[1]
                    self._news(signal, found[1])
                return

    def take(self, signal: str) -> Failure:
        """The cause of ``signal``'s latest failed try, forgotten once taken (before the next try)."""
        return self._latest.pop(signal, None) or Failure("failed the export")
