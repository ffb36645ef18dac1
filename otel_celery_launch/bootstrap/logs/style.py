"""Which look a stream gets (JSON lines or console text), and Python's warnings in that look.

Standard library only: it is used at start-up, before structlog is imported.
"""

from __future__ import annotations

import json
import sys
import warnings
from datetime import datetime, timezone
from typing import Any

from otel_celery_launch.handoff import LogsPlan


def writes_json(plan: LogsPlan, stream: Any) -> bool:
    """JSON lines, unless the plan says console, or says auto and the stream is a terminal."""
    if plan.format in ("json", "console"):
        return plan.format == "json"
    return plan.format == "auto" and not bool(getattr(stream, "isatty", lambda: False)())


def show_warnings_in_format(plan: LogsPlan) -> None:
    """Python prints a warning as two lines of text on stderr (Celery's SecurityWarning as several):
    where the launcher writes JSON, each warning becomes one JSON object instead, on the same
    current ``sys.stderr``. A program that shows warnings its own way (``logging.captureWarnings``,
    ``catch_warnings``, a ``file=`` or a ``formatwarning`` of its own) replaces or bypasses this, as it
    would Python's."""
    show, format_warning = warnings.showwarning, warnings.formatwarning

    def show_in_format(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
        stream = sys.stderr if file is None and warnings.formatwarning is format_warning else None
        if stream is None or not writes_json(plan, stream):
            show(message, category, filename, lineno, file, line)
            return
        fields = {"event": str(message), "level": "warning", "logger": "py.warnings", "category": category.__name__,
                  "filename": filename, "lineno": lineno, "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
        try:
            stream.write(json.dumps(fields) + "\n")
        except (OSError, ValueError):  # stderr closed, as Python's own ignores
            pass

    warnings.showwarning = show_in_format
