"""What to install for the libraries present: one requirement per instrumentation, at a contrib release
the package index has for every one of them (the role ``opentelemetry-bootstrap -a requirements`` plays).

Apart from :mod:`~otel_celery_launch.settings.instrumentations` (what is installed and can run),
because only ``otel-celery-launch requirements`` needs it, and it asks the index through pip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, version

from otel_celery_launch.settings.instrumentations import _normal, _requirement_name

# Libraries present for the launcher's own work, not the program's: the gRPC exporter's
# transport, Celery's command line, the settings model (and what tortoise-orm's entry keys on).
OWN_MACHINERY = frozenset({"grpcio", "click", "pydantic"})


def matching_contrib_version() -> str | None:
    """The contrib release (0.66b1) made with the installed SDK: the semantic conventions it pins."""
    try:
        return version("opentelemetry-semantic-conventions")
    except PackageNotFoundError:
        return None


# The oldest contrib release the launcher works with (its own requirement on opentelemetry-instrumentation-celery)
OLDEST_CONTRIB = "0.51b0"
INDEX_TIMEOUT = 30.0  # seconds for pip to look the requirements up on the package index
SDK = "opentelemetry-sdk"


@dataclass(frozen=True)
class Requirements:
    lines: list[str]  # for pip install, one requirement each
    notes: list[str]  # what was chosen and why, for a person (stderr)


@dataclass(frozen=True)
class Verdict:
    """What the package index said of some exact requirements: all there, or the first it lacks and what it has of that."""

    ok: bool
    missing: str | None = None  # the name of the first requirement it cannot meet
    versions: tuple[str, ...] = ()  # the versions it has of that one
    unknown: str | None = None  # why it could not be asked


Probe = Callable[[list[str]], Verdict]


def requirements_for_installed_libraries(probe: Probe | None = None) -> Requirements:
    """What to install for the libraries present, at one contrib release that the package index has for each of them.

    That release is the one made with the installed SDK (the semantic conventions it pins)
    when the index has every instrumentation needed at it; else the newest older one where it
    has them all, and then the installed OpenTelemetry packages move with it: the contrib ones
    to that release, the core ones (SDK, API, exporters) to the release made with it, so that
    ``pip install $(otel-celery-launch requirements)`` installs a set that agrees. ``probe``
    asks the index (pip, by default); one that answers ``unknown`` keeps the installed SDK's release.
    """
    from opentelemetry.instrumentation.bootstrap_gen import libraries
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

    contrib = matching_contrib_version()
    pinned: list[str] = []  # instrumentations made with each contrib release: pinned to the chosen one
    unpinned: list[str] = []  # released on their own (openai-v2, ...): as bootstrap_gen names them
    for entry in libraries:
        if _requirement_name(entry["library"]) in OWN_MACHINERY:
            continue
        if get_dependency_conflicts([entry["library"]]) is not None:
            continue  # the library is not here, or not at a version the instrumentation supports
        package = _requirement_name(entry["instrumentation"])
        if "==" in entry["instrumentation"] and contrib:
            pinned += [package] if package not in pinned else []
        elif entry["instrumentation"] not in unpinned:
            unpinned.append(entry["instrumentation"])
    if contrib is None:
        return Requirements(unpinned, ["opentelemetry-semantic-conventions is not installed: no contrib release to pin the instrumentations to"])
    moving = [name for name in _installed_contrib_packages(contrib) if name not in pinned]  # would have to move too
    chosen, core, notes = _choose_contrib(contrib, pinned, moving, probe or _pip_probe)
    lines: list[str] = []
    if chosen == contrib:
        if _installed("opentelemetry-instrumentation") != contrib:
            lines.append(f"opentelemetry-instrumentation=={contrib}")
        return Requirements(lines + [f"{package}=={contrib}" for package in pinned] + unpinned, notes)
    lines.append(f"opentelemetry-instrumentation=={chosen}")
    lines += [f"{package}=={chosen}" for package in pinned + moving]
    lines += [f"{package}{core}" for package in _installed_core_packages()]
    return Requirements(lines + unpinned, notes)


def _choose_contrib(contrib: str, pinned: list[str], moving: list[str], probe: Probe) -> tuple[str, str, list[str]]:
    """The newest contrib release, no newer than the installed one, that the index has for every package; and the core requirement."""
    from packaging.version import InvalidVersion, Version

    sdk = _installed(SDK)
    made_with = f"contrib {contrib}, the release made with the installed {SDK} {sdk}"
    if not pinned:
        return contrib, "", [f"{made_with}; no instrumentation to add for the libraries installed here"]

    def older(versions: tuple[str, ...], than: str) -> list[Version]:
        found = []
        for text in versions:
            try:
                found.append(Version(text))
            except InvalidVersion:
                continue
        return [v for v in found if Version(OLDEST_CONTRIB) <= v < Version(than)]

    chosen, core_exact, lacking = contrib, True, []
    for _ in range(8):  # each round moves to an older release or drops the exact SDK
        names = pinned + (moving if chosen != contrib else [])
        asked = [f"{name}=={chosen}" for name in names] + ([f"{SDK}{_core_release(chosen)[1]}"] if chosen != contrib and core_exact else [])
        verdict = probe(asked)
        if verdict.unknown:
            return contrib, "", [f"{made_with}; the package index could not be asked whether it has them ({verdict.unknown}): "
                                 f"if pip finds no such version, install the {SDK} release the instrumentations were made with"]
        if verdict.ok:
            break
        if verdict.missing == SDK:
            core_exact = False
            continue
        lacking.append(f"{verdict.missing} {chosen}")
        candidates = older(verdict.versions, chosen)
        if not candidates:
            return contrib, "", [f"{made_with}; the package index has no {verdict.missing} from {OLDEST_CONTRIB} to {contrib}: "
                                 "pip will say it cannot find it"]
        chosen = str(max(candidates))
    else:
        return contrib, "", [f"{made_with}; no release that the package index has of them all was found"]
    if chosen == contrib:
        return contrib, "", [f"{made_with}; the package index has each instrumentation at it"]
    core, core_spec = _core_release(chosen, exact=core_exact)
    return chosen, core_spec, [
        f"contrib {chosen}: the package index lacks {', '.join(lacking)} ({contrib} is the release made with the installed {SDK} {sdk}), "
        f"and has every instrumentation needed at {chosen}",
        f"so the installed OpenTelemetry packages move with it: contrib {contrib} -> {chosen}, core {sdk} -> {core} "
        f"({SDK}, the API and the exporters)"]


def _core_release(contrib: str, exact: bool = True) -> tuple[str, str]:
    """The core release made with a contrib release (0.66b1 with 1.45.1: minor 21 apart, the same patch), and as a requirement.

    Not exact: any core release of that minor, of which the SDK's pin on the semantic
    conventions lets pip take the one made with the contrib release.
    """
    import re

    match = re.fullmatch(r"0\.(\d+)b(\d+)", contrib)
    if match is None or int(match.group(1)) < 21:
        return "the release made with it", ""
    minor, patch = int(match.group(1)) - 21, int(match.group(2))
    if exact:
        return f"1.{minor}.{patch}", f"==1.{minor}.{patch}"
    return f"1.{minor}.x", f">=1.{minor}.0,<1.{minor + 1}"


def _pip_probe(requirements: list[str]) -> Verdict:
    """Whether the package index, as pip is set up here to see it, has each exact requirement (one pip, without installing)."""
    import re
    import subprocess

    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
               "--disable-pip-version-check", *requirements]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INDEX_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Verdict(False, unknown=f"pip had no answer within {INDEX_TIMEOUT:g}s")
    except OSError as error:
        return Verdict(False, unknown=f"pip could not run: {error}")
    if done.returncode == 0:
        return Verdict(True)
    found = re.search(r"satisfies the requirement ([A-Za-z0-9_.\-]+)\S* \(from versions: ([^)]*)\)", done.stderr)
    if found is None:
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), f"pip exited with {done.returncode}")
        return Verdict(False, unknown=last.strip()[:200])
    versions = tuple(text.strip() for text in found.group(2).split(",") if text.strip() and text.strip() != "none")
    if not versions:  # none at all of a package that exists: the index was not reached
        return Verdict(False, unknown=f"it lists no release of {found.group(1)}")
    return Verdict(False, _normal(found.group(1)), versions)


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _opentelemetry_distributions() -> dict[str, Distribution]:
    from importlib.metadata import distributions

    found: dict[str, Distribution] = {}
    for dist in distributions():
        name = _normal(str(dist.metadata["Name"] or ""))
        if name.startswith("opentelemetry-") and name not in found:
            found[name] = dist
    return found


def _required_by_others(dists: dict[str, Distribution]) -> set[str]:
    from packaging.requirements import Requirement

    required = set()
    for dist in dists.values():
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except Exception:
                continue
            if requirement.marker is None:
                required.add(_normal(requirement.name))
    return required


def _installed_contrib_packages(contrib: str) -> list[str]:
    """Installed instrumentations and other contrib packages at that release that nothing else here requires (the distro)."""
    dists = _opentelemetry_distributions()
    required = _required_by_others(dists)
    return sorted(name for name, dist in dists.items()
                  if dist.version == contrib and name not in required and name != "opentelemetry-instrumentation")


def _installed_core_packages() -> list[str]:
    """The installed core packages, at the SDK's version: the SDK, the API, the exporters and what they share."""
    sdk = _installed("opentelemetry-sdk")
    return sorted(name for name, dist in _opentelemetry_distributions().items() if sdk is not None and dist.version == sdk)
