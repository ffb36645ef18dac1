"""The configuration reference in the README, generated from the model so it cannot drift.

A test compares the README with :func:`render_reference`; to refresh it, run
``python -m otel_celery_launch.settings.reference`` and paste the table.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from otel_celery_launch.settings.model import Leaf, leaves
from otel_celery_launch.settings.sources import env_names, flag_name
from otel_celery_launch.settings.types import parse_duration

START, END = "<!-- reference:start -->", "<!-- reference:end -->"


def _default(leaf: Leaf) -> str:
    info = leaf.info
    value: Any = info.default_factory() if info.default is PydanticUndefined else info.default  # type: ignore[call-arg,misc]
    if value is None or value in ({}, []):
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{', '.join(value)}`"
    if any(getattr(check, "func", None) is parse_duration for check in info.metadata):
        return f"`{value:g}s`"
    return f"`{value}`"


def render_reference() -> str:
    rows = ["| key | environment | flag | default | meaning |", "|---|---|---|---|---|"]
    for leaf in leaves():
        env = "<br>".join(f"`{name}`" for name in env_names(leaf.path))
        rows.append(f"| `{leaf.dotted}` | {env} | `{flag_name(leaf)}` | {_default(leaf)} | {leaf.info.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(render_reference())
