"""The lowest versions pyproject.toml allows pass the core of the suite, and ``requirements`` prints a set that installs together.

The lowest set is ``tests/constraints-lowest.txt``. A venv with it, ``.venv-lowest`` (the
launcher installed editable, so it runs this tree), is made once and kept while the
constraints, pyproject.toml, this file and the Python are unchanged. The core test files then
run inside it: ``tests/processes.py`` finds the launcher beside the interpreter that runs the
tests, so there every launcher, worker and sidecar is the lowest venv's.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from otel_celery_launch.settings.requirements import Probe, Verdict, matching_contrib_version, requirements_for_installed_libraries
from tests.processes import clean_env

ROOT = Path(__file__).parent.parent
VENV = ROOT / ".venv-lowest"
PYTHON = VENV / "bin" / "python"
CONSTRAINTS = ROOT / "tests" / "constraints-lowest.txt"
# what the core tests need beside the launcher, each pinned by the constraints
TOOLS = ["pytest", "pytest-timeout", "hypothesis", "redis", "requests", "flask", "psycopg[binary]", "gevent", "eventlet",
         "opentelemetry-proto", "opentelemetry-instrumentation-flask", "opentelemetry-instrumentation-psycopg",
         "opentelemetry-instrumentation-redis", "opentelemetry-instrumentation-requests"]
# settings, bad input, exec, span delivery across a Celery worker, the sidecar, logs, the demo, run spans
CORE = ["tests/test_settings.py", "tests/test_bad_input.py", "tests/test_exec.py", "tests/test_demo.py",
        "tests/test_span_delivery.py", "tests/test_sidecar.py", "tests/test_logs.py", "tests/test_run_spans.py"]
LEFT_OUT = [
    # ten workers recycling children, 10 to 18 s each: span delivery's prefork-recycling case covers it here
    "test_recycling_prefork_children_never_hang",
]


def _key() -> str:
    digest = hashlib.sha256()
    for part in (CONSTRAINTS.read_bytes(), (ROOT / "pyproject.toml").read_bytes(), Path(__file__).read_bytes(),
                 sys.version.encode(), str(ROOT).encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _build() -> float:
    """Make .venv-lowest unless it is there for these constraints already; the seconds it took (0 when kept)."""
    key = _key()
    stamp = VENV / "lowest-versions.key"
    lock = ROOT / ".cache" / "venv-lowest.lock"  # .cache/ is ignored by git
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # one build at a time, should two runs start together
        if stamp.exists() and stamp.read_text() == key and PYTHON.exists():
            return 0.0
        started = time.monotonic()
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
        (VENV / ".gitignore").write_text("*\n")  # never committed, whatever the project's .gitignore says
        install = subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(CONSTRAINTS),
                                  "-e", str(ROOT), *TOOLS], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert install.returncode == 0, install.stdout + install.stderr
        stamp.write_text(key)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def lowest() -> Iterator[Path]:
    took = _build()
    print(f"\n.venv-lowest: {'built in %.0fs' % took if took else 'kept'}")
    yield PYTHON


def _installed(python: Path, name: str) -> str:
    done = subprocess.run([str(python), "-c", f"from importlib.metadata import version; print(version({name!r}))"],
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


@pytest.mark.timeout(1500)
def test_the_lowest_allowed_versions_pass_the_core_tests(lowest: Path) -> None:
    pins = {Requirement(line).name.lower(): str(Requirement(line).specifier).removeprefix("==")
            for line in CONSTRAINTS.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for name in ("pydantic-settings", "celery", "opentelemetry-sdk", "opentelemetry-instrumentation-celery", "structlog"):
        assert _installed(lowest, name) == pins[name], name  # the venv is the lowest set, not something newer
    env = {key: value for key, value in clean_env().items() if key != "VIRTUAL_ENV"}
    started = time.monotonic()
    run = subprocess.run([str(lowest), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", " and ".join(f"not {name}" for name in LEFT_OUT),
                          *CORE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1400)
    print(f"core tests at the lowest versions: {time.monotonic() - started:.0f}s; {run.stdout.strip().splitlines()[-1:]}")
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert " passed" in run.stdout and " failed" not in run.stdout.splitlines()[-1]


def _installs_together(python: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    """pip's answer to installing ``lines`` over what ``python``'s venv has, without installing anything."""
    return subprocess.run([str(python), "-m", "pip", "install", "--dry-run", "--disable-pip-version-check", "-q", *lines],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(600)
def test_requirements_at_the_lowest_versions_install_together(lowest: Path) -> None:
    done = subprocess.run([str(lowest.parent / "otel-celery-launch"), "requirements"], env=clean_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert "opentelemetry-instrumentation-flask==0.51b0" in lines and "opentelemetry-instrumentation-celery==0.51b0" in lines, lines
    assert "contrib 0.51b0" in done.stderr
    dry = _installs_together(lowest, lines)
    assert dry.returncode == 0, dry.stderr


def _index_without(missing: str, has: tuple[str, ...]) -> Probe:
    """A package index that has every exact requirement asked, except ``missing``, of which it has only ``has``."""

    def probe(requirements: list[str]) -> Verdict:
        for line in requirements:
            requirement = Requirement(line)
            if requirement.name == missing and str(requirement.specifier).removeprefix("==") not in has:
                return Verdict(False, missing, has)
        return Verdict(True)

    return probe


@pytest.mark.timeout(300)
def test_requirements_move_every_package_to_a_release_the_index_has() -> None:
    """An index that lags for one instrumentation: all of them, and the SDK and exporters, go to the release it has of each."""
    assert matching_contrib_version() == "0.66b1", "the test's versions go with tests/constraints.txt: move them with it"
    chosen = requirements_for_installed_libraries(_index_without("opentelemetry-instrumentation-flask", ("0.51b0", "0.60b0", "0.66b0")))
    wanted = {Requirement(line).name: str(Requirement(line).specifier) for line in chosen.lines}
    assert wanted["opentelemetry-instrumentation-flask"] == "==0.66b0"
    assert wanted["opentelemetry-instrumentation-celery"] == "==0.66b0"
    assert wanted["opentelemetry-instrumentation"] == "==0.66b0"
    for core in ("opentelemetry-sdk", "opentelemetry-api", "opentelemetry-exporter-otlp-proto-grpc", "opentelemetry-exporter-otlp-proto-http"):
        assert wanted[core] == "==1.45.0", (core, wanted)
    assert "opentelemetry-instrumentation-flask 0.66b1" in chosen.notes[0] and "contrib 0.66b0" in chosen.notes[0], chosen.notes
    # and pip, asked for real, can install that set over this venv's (nothing is installed: a dry run)
    dry = _installs_together(Path(sys.executable), chosen.lines)
    assert dry.returncode == 0, dry.stderr


def test_requirements_keep_the_installed_release_when_the_index_cannot_be_asked() -> None:
    chosen = requirements_for_installed_libraries(lambda _: Verdict(False, unknown="no network"))
    contrib = matching_contrib_version()
    assert all(line.endswith(f"=={contrib}") for line in chosen.lines if line.startswith("opentelemetry-instrumentation-")), chosen.lines
    assert "no network" in chosen.notes[0]


def test_the_lowest_constraints_hold_the_lower_bounds_of_pyproject() -> None:
    """Each lower bound in pyproject.toml is what the lowest venv has: a raised bound must move the constraints with it."""
    import tomllib

    from packaging.version import Version

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {Requirement(line).name.lower(): Version(str(Requirement(line).specifier).removeprefix("=="))
            for line in CONSTRAINTS.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for text in declared:
        requirement = Requirement(text)
        lower = Version(next(spec.version for spec in requirement.specifier if spec.operator == ">="))
        pinned = pins[requirement.name.lower()]
        # the first release of the bound: structlog>=24 is 24.1.0, celery>=5.3 is 5.3.0
        assert pinned in requirement.specifier and pinned.release[: len(lower.release)] == lower.release, (text, str(pinned))
