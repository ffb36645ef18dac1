"""The package type-checks (mypy with the pydantic plugin, configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.processes import BIN_DIR

ROOT = Path(__file__).parent.parent


def test_the_package_type_checks() -> None:
    result = subprocess.run([str(BIN_DIR / "mypy"), "otel_celery_launch"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
