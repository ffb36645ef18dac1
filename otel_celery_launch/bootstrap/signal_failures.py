"""Failed exports of metrics and logs: the exporters' own lines give way to one warning per signal.

The exporters report a failure only by logging it, with what the collector answered (which
may echo a header). As for spans, the launcher says instead, once per process that set the
signal up (a prefork worker's main process, not each child), what went wrong, in its words.
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit

from otel_celery_launch.bootstrap.diagnostics import logger
from otel_celery_launch.bootstrap.failures import from_exporter_log
from otel_celery_launch.handoff import ExporterPlan
from otel_celery_launch.masking import host_port

_GRPC = "opentelemetry.exporter.otlp.proto.grpc.exporter"  # shared by all signals
_HTTP = {"metrics": "opentelemetry.exporter.otlp.proto.http.metric_exporter", "logs": "opentelemetry.exporter.otlp.proto.http._log_exporter"}
_SAID_AS = {"metrics": ("metrics",), "logs": ("logs",)}
_SHUTTING_DOWN = ("Shutdown in progress", "Exporter already shutdown", "OTLP client already shutdown")


def report_failures(signal: str, plan: ExporterPlan, endpoint: str | None) -> threading.Event:
    """Returns an event set at each failed try in this process: an exit stops waiting on it (one try, no retries)."""
    owner = os.getpid()
    warned = False
    failed = threading.Event()
    path = urlsplit(endpoint or "").path or "/"

    def said(record: logging.LogRecord) -> bool:
        nonlocal warned
        args = record.args if isinstance(record.args, tuple) else ()
        message = str(record.msg)
        if record.name != _GRPC and message.startswith(_SHUTTING_DOWN):
            return False
        found = from_exporter_log(plan.protocol, path, message, args)
        if found is None or found[0] not in _SAID_AS[signal]:
            return True
        failed.set()
        if not warned and os.getpid() == owner:
            warned = True
            logger.warning("otel-celery-launch: warning: %s not exported: the collector at %s %s; they are sent with a later "
                           "export when it answers, and the work runs on", signal, host_port(endpoint or ""), found[1].phrase)
        return False

    for name in (_GRPC, _HTTP[signal]):
        logging.getLogger(name).addFilter(said)
    return failed
