"""Celery's own unit tests give the same outcome under the launcher as bare (see tests/celery_suite.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.celery_suite import UNIT_SLICE, compare
from tests.otlp_receiver import Receiver
from tests.processes import clean_env


@pytest.mark.timeout(900)
def test_celerys_unit_tests_do_not_notice_the_launcher(tmp_path: Path, receiver: Receiver) -> None:
    report = compare(UNIT_SLICE, clean_env(**receiver.env("grpc")), tmp_path, timeout=280)
    for label, result in report.items():
        assert result["bare"]["passed"] > 1000, (label, result)  # type: ignore[index]
        assert result["differences"] == [], (label, result)  # type: ignore[index]
    assert receiver.spans, "the launched runs exported nothing"
