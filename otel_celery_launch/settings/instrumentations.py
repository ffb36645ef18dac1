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
from dataclasses import dataclass
from functools import cache
from importlib.metadata import Distribution, PackageNotFoundError, distribution, entry_points, version

GROUP = "opentelemetry_instrumentor"
PREFIX = "opentelemetry-instrumentation-"


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
