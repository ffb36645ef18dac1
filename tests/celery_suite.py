"""Celery's own test suite as a judge: the same tests, bare and under the launcher.

The sdist of the installed Celery version ships its tests (``t/unit``, ``t/integration``);
they are fetched from the package index, run against the installed Celery (never the
sdist's own copy of the package), and each test's outcome under the launcher is compared
with its outcome bare. Used by ``tests/test_celery_suite.py`` for a fast unit slice, and by
hand for the long integration run::

    .venv/bin/python -m tests.celery_suite --integration
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

from tests.otlp_receiver import Receiver
from tests.processes import LAUNCHER, SCENARIOS, clean_env

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "celery-suite"
UNIT_SLICE = ("t/unit/tasks/test_canvas.py", "t/unit/app", "t/unit/worker/test_native_delayed_delivery.py")
INTEGRATION = ("t/integration/test_canvas.py", "t/integration/test_tasks.py")
USER_ORDER = SCENARIOS / "user_order"
PYTEST_INI = "[pytest]\npython_classes = test_*\nxfail_strict = true\n"


def suite() -> Path:
    """``t/`` of the installed Celery's sdist, fetched once into .cache/."""
    release = version("celery")
    root = CACHE / f"celery-{release}"
    if (root / "t" / "unit").is_dir():
        return root
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--no-binary", ":all:", "-d", download, f"celery=={release}"], check=True)
        (sdist,) = Path(download).glob("celery-*.tar.gz")
        with tarfile.open(sdist) as archive:
            prefix = f"celery-{release}/t/"
            members = [m for m in archive.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
            for member in members:
                member.name = member.name[len(f"celery-{release}/"):]
            root.mkdir(parents=True, exist_ok=True)
            archive.extractall(root, members=members, filter="data")
    (root / "pytest.ini").write_text(PYTEST_INI)
    return root


def run(root: Path, paths: Sequence[str], *, launched: bool, user_order: bool, env: Mapping[str, str], junit: Path,
        timeout: float = 600) -> dict[str, str]:
    """Each test's outcome (passed, failed, error, skipped) from one pytest run."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(junit)]
    if any(path.startswith("t/integration") for path in paths):  # its conftest needs Celery's pytest plugin loaded
        command += ["-p", "celery.contrib.pytest"]
    if user_order:
        command += ["-p", "user_order"]
        env = {**env, "PYTHONPATH": str(USER_ORDER)}
    if launched:
        command = [LAUNCHER, "--", *command]
    subprocess.run([*command, *paths], cwd=root, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=timeout)
    return outcomes(junit)


def outcomes(junit: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        found[name] = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(kinds[0], "passed") if kinds else "passed"
    return found


def differences(bare: Mapping[str, str], launched: Mapping[str, str]) -> list[str]:
    return [f"{name}: bare {bare.get(name, 'absent')}, launched {launched.get(name, 'absent')}"
            for name in sorted(set(bare) | set(launched)) if bare.get(name) != launched.get(name)]


def compare(paths: Sequence[str], env: Mapping[str, str], workdir: Path, timeout: float = 600,
            user_orders: Sequence[bool] = (False, True)) -> dict[str, object]:
    """Bare against launched, plain and with the user's import order forced first."""
    root = suite()
    report: dict[str, object] = {}
    for user_order in user_orders:
        label = "user import order" if user_order else "plain"
        bare = run(root, paths, launched=False, user_order=user_order, env=env, junit=workdir / f"bare-{user_order}.xml", timeout=timeout)
        launched = run(root, paths, launched=True, user_order=user_order, env=env, junit=workdir / f"launched-{user_order}.xml", timeout=timeout)
        report[label] = {
            "bare": _counts(bare),
            "launched": _counts(launched),
            "differences": differences(bare, launched),
        }
    return report


def _counts(found: Mapping[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in found.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integration", action="store_true", help=f"run {', '.join(INTEGRATION)} (needs Redis and RabbitMQ; long)")
    parser.add_argument("--user-order", action="store_true", help="also with a user's import order forced first (twice as long)")
    parser.add_argument("paths", nargs="*", help="test paths inside the sdist, instead of the default set")
    options = parser.parse_args()
    paths = options.paths or (INTEGRATION if options.integration else UNIT_SLICE)
    receiver = Receiver().start()
    env = clean_env(TEST_BROKER="pyamqp://guest:guest@127.0.0.1:5672//", TEST_BACKEND="redis://127.0.0.1:6379/15",
                    **receiver.env("grpc"))
    try:
        with tempfile.TemporaryDirectory() as workdir:
            report = compare(paths, env, Path(workdir), timeout=3600, user_orders=(False, True) if options.user_order else (False,))
    finally:
        receiver.stop()
    for label, result in report.items():
        print(label, result)
    return 1 if any(result["differences"] for result in report.values()) else 0  # type: ignore[index]


if __name__ == "__main__":
    sys.exit(main())
