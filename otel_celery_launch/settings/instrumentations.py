"""The instrumentations installed here, and whether each can run, read from package metadata only.

Installed means an ``opentelemetry_instrumentor`` entry point, as the official launcher
finds them. Nothing is imported: the launcher decides here which ones the child activates
and which module's import activates each (its library's top-level modules), so the child
pays only for the libraries it imports. An instrumentation cannot run when its library is
missing or outside the versions it supports (its ``instruments`` extra), or when it was
built for other OpenTelemetry packages than those installed (a version skew: its pinned
``opentelemetry-*`` requirements are not met), which the guide names as the usual cause of
context that silently stops propagating.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import Distribution, PackageNotFoundError, distribution, entry_points, version

GROUP = "opentelemetry_instrumentor"
PREFIX = "opentelemetry-instrumentation-"
# Libraries present for the launcher's own work, not the program's: the gRPC exporter's
# transport, Celery's command line, the settings model (and what tortoise-orm's entry keys on).
OWN_MACHINERY = frozenset({"grpcio", "click", "pydantic"})


@dataclass(frozen=True)
class Instrumentation:
    name: str  # the entry point's name, which settings and OTEL_PYTHON_DISABLED_INSTRUMENTATIONS use
    target: str  # module:attribute of its instrumentor
    package: str  # its distribution, e.g. opentelemetry-instrumentation-flask
    version: str
    libraries: tuple[str, ...]  # what it instruments, as requirements (flask>=1.0)
    modules: tuple[str, ...]  # top-level modules whose import means the library is in use
    problem: str | None  # why it cannot run here; None when it can
    guards: tuple[str, ...] = ()  # top-level packages its set-up imports from: it and what it requires

    @property
    def skewed(self) -> bool:
        return self.problem is not None and self.problem.startswith("version skew")


@cache
def installed_instrumentations() -> tuple[Instrumentation, ...]:
    """Every installed instrumentation, by name; one entry per name (the first on sys.path)."""
    found: dict[str, Instrumentation] = {}
    for point in entry_points(group=GROUP):
        if point.name not in found and point.dist is not None:
            found[point.name] = _describe(point.name, f"{point.module}:{point.attr}", point.dist)
    return tuple(sorted(found.values(), key=lambda item: item.name))


@cache
def known_names() -> tuple[str, ...]:
    """Names an instrumentation may have without being installed: those opentelemetry-instrumentation knows of."""
    try:
        from opentelemetry.instrumentation.bootstrap_gen import default_instrumentations, libraries
    except ImportError:
        return ()
    packages = [entry["instrumentation"] for entry in libraries] + list(default_instrumentations)
    suffixes = {_requirement_name(text).removeprefix(PREFIX) for text in packages}
    return tuple(sorted(suffixes | {suffix.replace("-", "_") for suffix in suffixes}))


def _describe(name: str, target: str, dist: Distribution) -> Instrumentation:
    try:
        return _read(name, target, dist)
    except Exception as error:  # metadata that does not parse: off, and said why
        package = str(dist.metadata["Name"] or name)
        return Instrumentation(name, target, package, str(dist.version), (), (), f"unreadable package metadata ({type(error).__name__}: {error})")


def _read(name: str, target: str, dist: Distribution) -> Instrumentation:
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    package, own_version = dist.metadata["Name"], dist.version
    requires = dist.requires or []
    libraries = tuple(text.partition(";")[0].strip() for text in requires if "instruments" in text.partition(";")[2])
    problem = _skew(package, own_version, requires)
    if problem is None:
        conflict = get_dist_dependency_conflicts(dist)
        if conflict is not None:
            problem = _conflict(conflict)
    modules = tuple(module for library in libraries for module in _top_level_modules(_requirement_name(library)))
    if not libraries and name in sys.stdlib_module_names:  # instruments the standard library (urllib, sqlite3, ...)
        modules = (name,)
    if problem is None and not modules:
        problem = "no library to watch for: it names none, and its name is not a standard library module"
    guards = tuple(sorted(_closure_modules(package)))
    return Instrumentation(name, target, package, own_version, libraries, modules, problem, guards)


@cache
def _closure_modules(package: str) -> frozenset[str]:
    """The top-level modules of a distribution and of everything it requires (extras aside), from metadata.

    A module name is read from ``top_level.txt`` where there is one, else taken from the
    distribution's name (``opentelemetry-*`` share the ``opentelemetry`` namespace).
    """
    from packaging.requirements import Requirement

    found: set[str] = set()
    pending, seen = [package], set()
    while pending:
        name = _normal(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        listed = dist.read_text("top_level.txt")
        if listed:
            found.update(line.strip() for line in listed.splitlines() if line.strip() and "/" not in line)
        else:
            found.add("opentelemetry" if name.startswith("opentelemetry-") else name.replace("-", "_"))
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
                if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                    pending.append(requirement.name)
            except Exception:  # a requirement that does not parse: skipped here, reported by _read
                continue
    return frozenset(found)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _skew(package: str, own_version: str, requires: list[str]) -> str | None:
    """Its pinned OpenTelemetry requirements that the installed packages do not meet."""
    from packaging.requirements import Requirement

    unmet = []
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is not None or not requirement.name.startswith("opentelemetry-"):
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            unmet.append(f"{requirement} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement} ({requirement.name} {installed} is installed)")
    if not unmet:
        return None
    return f"version skew: {package} {own_version} needs {'; '.join(unmet)}"


def _conflict(conflict: object) -> str:
    found = getattr(conflict, "found", None) or ", ".join(getattr(conflict, "found_any", None) or ())
    required = getattr(conflict, "required", None) or " or ".join(map(str, getattr(conflict, "required_any", None) or ()))
    required = str(required).partition(";")[0].strip()  # without its marker (extra == "instruments")
    if found:
        return f"library version outside the supported range: needs {required}, {found} is installed"
    return f"library not installed: needs {required}"


def _requirement_name(text: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(text).name


def _top_level_modules(package: str) -> tuple[str, ...]:
    """The importable top-level names a distribution installs (top_level.txt, else its file list)."""
    try:
        dist = distribution(package)
    except PackageNotFoundError:
        return ()
    listed = dist.read_text("top_level.txt")
    if listed:
        return tuple(line.strip() for line in listed.splitlines() if line.strip() and "/" not in line)
    names = []
    for path in dist.files or ():
        parts = path.parts
        if len(parts) == 1 and parts[0].endswith(".py"):
            names.append(parts[0].removesuffix(".py"))
        elif len(parts) == 2 and parts[1] == "__init__.py":
            names.append(parts[0])
    return tuple(dict.fromkeys(names))


def by_name(name: str) -> Instrumentation | None:
    return next((item for item in installed_instrumentations() if item.name == name), None)


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
