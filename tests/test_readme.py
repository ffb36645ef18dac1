"""The README's configuration reference is the settings model's, key for key."""

from __future__ import annotations

from pathlib import Path

from otel_celery_launch.settings.reference import END, START, render_reference

README = Path(__file__).parent.parent / "README.md"


def test_the_configuration_reference_matches_the_model() -> None:
    text = README.read_text()
    written = text[text.index(START) + len(START) : text.index(END)].strip()
    assert written == render_reference(), "run: python -m otel_celery_launch.settings.reference, and paste it into README.md"
