"""What ``check`` prints: each resolved value, where it came from, secrets masked."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from otel_celery_launch.settings.load import LoadedSettings, redact
from otel_celery_launch.settings.model import FieldPath, leaves
from otel_celery_launch.settings.resolve import build_plan
from otel_celery_launch.settings.types import show_duration


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


def _rows(loaded: LoadedSettings) -> list[tuple[str, str, str]]:
    """(key, value as it may be shown, origin) for every key, one row per mapping entry."""
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
            shown = "{}" if leaf.shape == "mapping" else show_duration(value) if leaf.duration and value is not None else _shown(leaf.path, value)
            rows.append((leaf.dotted, shown, loaded.origin(leaf.path)))
    return rows


def _destination(loaded: LoadedSettings) -> str:
    if loaded.settings.disabled:
        return "telemetry is disabled: the command would run without the bootstrap"
    exporter = build_plan(loaded.settings).exporter
    if exporter.endpoint:
        security = "insecure" if exporter.insecure else "TLS"
        return f"spans go to {_shown(('exporter', 'endpoint'), exporter.endpoint)} ({exporter.protocol}, {security})"
    return f"spans go to {exporter.protocol}"


def _instrumentations(loaded: LoadedSettings) -> list[dict[str, str]]:
    """Each installed instrumentation: what it instruments, and whether the command would use it, or why not."""
    from otel_celery_launch.settings.instrumentations import installed_instrumentations

    wanted = loaded.settings.instrumentations
    found = []
    for item in installed_instrumentations():
        if loaded.settings.disabled:
            state = "off: telemetry is disabled"
        elif not wanted.uses(item.name):
            key = ("instrumentations", "disabled") if item.name in wanted.disabled or "*" in wanted.disabled else ("instrumentations", "enabled")
            state = f"off: {'switched off by' if key[1] == 'disabled' else 'not listed in'} {'.'.join(key)} ({loaded.origin(key)})"
        else:
            state = f"off: {item.problem}" if item.problem else "on"
        found.append({"name": item.name, "package": f"{item.package} {item.version}", "library": ", ".join(item.libraries) or "(standard library)", "state": state})
    return found


def render_check_json(loaded: LoadedSettings, warnings: list[str]) -> str:
    settings = [{"key": key, "value": value, "origin": origin} for key, value, origin in _rows(loaded)]
    report = {"config_file": loaded.config_file, "settings": settings, "destination": _destination(loaded),
              "instrumentations": _instrumentations(loaded), "warnings": warnings}
    return json.dumps(report, indent=2)


def render_check(loaded: LoadedSettings) -> str:
    rows = _rows(loaded)
    key_width = max(len(row[0]) for row in rows)
    value_width = min(40, max(len(row[1]) for row in rows))
    lines = [f"config file: {loaded.config_file or '(none)'}", ""]
    lines += [f"{key:<{key_width}}  {value:<{value_width}}  {origin}" for key, value, origin in rows]
    lines += ["", _destination(loaded), ""]
    found = _instrumentations(loaded)
    lines.append(f"instrumentations installed: {len(found)}" + ("" if found else " (pip install opentelemetry-instrumentation-<library>)"))
    widths = [max((len(item[column]) for item in found), default=0) for column in ("name", "package", "library")]
    lines += [
        f"  {item['name']:<{widths[0]}}  {item['package']:<{widths[1]}}  {item['library']:<{widths[2]}}  {item['state']}" for item in found
    ]
    return "\n".join(lines)
