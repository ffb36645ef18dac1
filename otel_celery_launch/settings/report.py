"""What ``check`` prints: each resolved value, where it came from, secrets masked."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from otel_celery_launch.settings.load import LoadedSettings, redact
from otel_celery_launch.settings.model import FieldPath, leaves
from otel_celery_launch.settings.resolve import build_plan


def _shown(path: FieldPath, value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return "****"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return redact(path, value).strip("'") if isinstance(value, str) else str(value)


def render_check(loaded: LoadedSettings) -> str:
    rows: list[tuple[str, str, str]] = []
    for leaf in leaves():
        value: Any = loaded.settings
        for key in leaf.path:
            value = getattr(value, key)
        if leaf.shape == "mapping" and value:
            rows += [
                (f"{leaf.dotted}.{key}", _shown(leaf.path + (key,), item), loaded.origin(leaf.path + (key,)))
                for key, item in value.items()
            ]
        else:
            rows.append((leaf.dotted, "{}" if leaf.shape == "mapping" else _shown(leaf.path, value), loaded.origin(leaf.path)))
    key_width = max(len(row[0]) for row in rows)
    value_width = min(40, max(len(row[1]) for row in rows))
    lines = [f"config file: {loaded.config_file or '(none)'}", ""]
    lines += [f"{key:<{key_width}}  {value:<{value_width}}  {origin}" for key, value, origin in rows]
    if loaded.settings.disabled:
        lines += ["", "telemetry is disabled: the command would run without the bootstrap"]
    else:
        exporter = build_plan(loaded.settings).exporter
        if exporter.endpoint:
            security = "insecure" if exporter.insecure else "TLS"
            lines += ["", f"spans go to {_shown(('exporter', 'endpoint'), exporter.endpoint)} ({exporter.protocol}, {security})"]
        else:
            lines += ["", f"spans go to {exporter.protocol}"]
    return "\n".join(lines)
