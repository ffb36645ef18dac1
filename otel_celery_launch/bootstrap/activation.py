"""Set each integration up once its library is in use, at a moment when that is safe.

Setting up imports modules: the Celery instrumentation imports ``celery.canvas``,
``celery.app.task``, ``opentelemetry.trace`` and more. Python records a module in
``sys.modules`` only after its finders have run, and before its body has run, so a set-up
started at the wrong moment breaks the program it should only observe:

* started from a finder (``find_spec``), it imports the very module being found, which
  Python then executes a second time: two ``Signature`` classes, ``chain(...)`` a dict;
* started while a module's body is half run, it meets that module half made:
  ``from module import name`` fails, or binds what exists so far.

Why this module is safe: a set-up runs only when, on every thread (importlib's
``_find_and_load`` frames), no import is being found (its module not yet in
``sys.modules``: a finder is running, or it waits for its parent) and no library module
(one of the standard library or of an installed package: what a set-up may import) has its
body part way run; and never while gevent or eventlet monkey-patch. The program's own
modules may be part way run: a set-up never imports them (it runs inside ``import tasks``
when ``tasks.py`` creates its Celery app). Within those rules it runs at the first chance
after its library was imported:

1. right after the body of the library's module (the trigger) has run;
2. else right after the body of the next module to finish importing: while a set-up is
   pending, every module of its packages (and, while one is held back, every module) is
   loaded through :class:`_ReportingLoader`, which hands the module its real loader before
   the body runs and reports when the body is done;
3. or at the library's first use, reported by :func:`use` (Celery: the first app, publish
   or worker), if that moment is safe.

Each set-up runs once, on whichever thread gets there first. An optional ``arm`` step runs
right after the trigger's body, even inside another import: it must import nothing (it
only wraps what that module defines), which is what reporting first use needs.
"""

from __future__ import annotations

import os
import site
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import _bootstrap  # type: ignore[attr-defined]  # to know the frames of imports
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

_FIND_AND_LOAD = getattr(_bootstrap, "_find_and_load").__code__
_PATCHERS = ("gevent.monkey", "eventlet.patcher")
_PATCHING = ("patch", "green", "monkey_patch", "upgrade")  # their functions that patch or sweep live objects
_LIBRARIES = tuple(
    os.path.join(os.path.realpath(directory), "")
    for directory in {os.path.dirname(os.__file__), *getattr(site, "getsitepackages", list)(), site.getusersitepackages()}
)
_OURS = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "")


@dataclass(eq=False)
class Activation:
    trigger: str  # the module whose import means the library is in use
    packages: frozenset[str]  # top-level packages whose imports are watched until it has run
    install: Callable[[], None]
    arm: Callable[[ModuleType], None] | None = None
    state: str = "waiting"  # waiting -> due (trigger imported) -> running -> done


_activations: list[Activation] = []
_lock = threading.Lock()


def activate_when_imported(
    trigger: str, packages: Sequence[str], install: Callable[[], None], arm: Callable[[ModuleType], None] | None = None
) -> None:
    """Run ``install`` at the first safe moment after ``trigger`` has been imported."""
    _activations.append(Activation(trigger, frozenset(packages) | {trigger.partition(".")[0]}, install, arm))
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    module = sys.modules.get(trigger)
    if module is not None and not _half_made(trigger):
        _triggered(module)
        _settle()


def use(trigger: str) -> None:
    """The library imported as ``trigger`` is being used now: set it up, if that is safe."""
    if any(activation.trigger == trigger and activation.state == "due" for activation in _activations):
        _settle()


def _triggered(module: ModuleType) -> None:
    for activation in _activations:
        if activation.trigger == module.__name__:
            with _lock:
                if activation.state != "waiting":
                    continue
                activation.state = "due"
            if activation.arm is not None:
                activation.arm(module)


def _settle(finished: str | None = None) -> None:
    """Run every due set-up that is safe now; ``finished`` names a module whose body just ran."""
    if not any(activation.state == "due" for activation in _activations):
        return
    if not _safe_now(finished):
        return
    for activation in _activations:
        with _lock:
            if activation.state != "due":
                continue
            activation.state = "running"
        try:
            activation.install()
        finally:
            activation.state = "done"


def _safe_now(finished: str | None) -> bool:
    """No import being found, no library module half run (on any thread), no patching."""
    for frame in sys._current_frames().values():
        walking: FrameType | None = frame
        while walking is not None:
            if walking.f_code is _FIND_AND_LOAD:
                name = walking.f_locals.get("name")
                if isinstance(name, str) and name != finished and _half_made_library(name):
                    return False
            elif walking.f_globals.get("__name__", "").startswith(_PATCHERS) and walking.f_code.co_name.lstrip("_").startswith(_PATCHING):
                return False
            walking = walking.f_back
    return True


def _half_made_library(name: str) -> bool:
    module = sys.modules.get(name)
    if module is None:  # being found: a finder is running, or its parent is being imported
        return True
    if not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return False
    path = getattr(module, "__file__", None)
    if path is None:  # built in, frozen, or a namespace package
        return True
    path = os.path.realpath(path)
    return path.startswith(_LIBRARIES) and not path.startswith(_OURS)


def _half_made(name: str) -> bool:
    """Not yet in sys.modules (still being found, or waiting for its parent), or its body is running."""
    module = sys.modules.get(name)
    return module is None or bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _watched(fullname: str) -> bool:
    """Modules of pending packages; every module while a set-up is held back."""
    top = fullname.partition(".")[0]
    return any(
        activation.state == "due" or (activation.state == "waiting" and top in activation.packages) for activation in _activations
    )


class _ReportingLoader:
    """Stands in for a module's loader until its body runs, then reports that the body has run."""

    def __init__(self, spec: ModuleSpec) -> None:
        self.spec = spec
        self.loader = spec.loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def get_code(self, fullname: str) -> Any:
        """runpy runs the code itself (``python -m``): step aside, there is no import to report."""
        self.spec.loader = self.loader
        return self.loader.get_code(fullname)  # type: ignore[union-attr]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the module never sees the stand-in
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)  # type: ignore[union-attr]
        _triggered(module)
        _settle(finished=module.__name__)


class _Finder:
    """A meta path finder that finds nothing itself: it gives watched modules a reporting loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if not _watched(fullname):
            return None
        finders = sys.meta_path
        after = finders[finders.index(self) + 1 :] if self in finders else finders
        for finder in after:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ReportingLoader(spec)
        return spec


_finder = _Finder()
