"""Set each integration up once its library is in use, at a moment when that is safe.

Setting up imports modules: the Celery instrumentation imports ``celery.canvas``,
``celery.app.task``, ``opentelemetry.trace`` and more. Python records a module in
``sys.modules`` only after its finders have run, and before its body has run, so a set-up
started at the wrong moment breaks the program it should only observe:

* started from a finder (``find_spec``), it imports the very module being found, which
  Python then executes a second time: two ``Signature`` classes, ``chain(...)`` a dict;
* started while a module's body is half run, it meets that module half made:
  ``from module import name`` fails, or binds what exists so far.

Why this module is safe: a set-up never runs from a finder, and never while a module of
the packages it imports from is part way through its import on this thread (found on the
stack: importlib's ``_find_and_load`` frames), nor while gevent or eventlet monkey-patch.
Within those rules it runs at the first chance after its library was imported:

1. right after the body of the library's module (the trigger) has run;
2. else right after the body of the last module of those packages still importing has run:
   while a set-up is pending, every module of its packages is loaded through
   :class:`_ReportingLoader`, which hands the module its real loader before the body runs
   and reports when the body is done;
3. or at the library's first use, reported by :func:`use` (Celery: the first app, publish
   or worker), if that moment is safe.

Each set-up runs once, on whichever thread gets there first. An optional ``arm`` step runs
right after the trigger's body, even inside another import: it must import nothing (it
only wraps what that module defines), which is what reporting first use needs.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import _bootstrap  # type: ignore[attr-defined]  # to know the frames of imports
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

_FIND_AND_LOAD = getattr(_bootstrap, "_find_and_load").__code__
_FIND_AND_LOAD_UNLOCKED = getattr(_bootstrap, "_find_and_load_unlocked").__code__
_PATCHERS = ("gevent.monkey", "eventlet.patcher")


@dataclass(eq=False)
class Activation:
    trigger: str  # the module whose import means the library is in use
    packages: frozenset[str]  # top-level packages the set-up imports from
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
        if activation.trigger == module.__name__ and activation.state == "waiting":
            activation.state = "due"
            if activation.arm is not None:
                activation.arm(module)


def _settle(finished: str | None = None) -> None:
    """Run every due set-up that is safe now; ``finished`` names a module whose body just ran."""
    if not any(activation.state == "due" for activation in _activations):
        return
    busy = _importing(finished)
    if busy is None:  # monkey-patching
        return
    for activation in _activations:
        if not busy.isdisjoint(activation.packages):
            continue
        with _lock:
            if activation.state != "due":
                continue
            activation.state = "running"
        try:
            activation.install()
        finally:
            activation.state = "done"


def _importing(finished: str | None) -> set[str] | None:
    """Top-level packages of the modules being imported on this thread; None while patching."""
    busy: set[str] = set()
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code is _FIND_AND_LOAD:
            name = frame.f_locals.get("name")
            if isinstance(name, str) and name != finished and _half_made(name):
                busy.add(name.partition(".")[0])
        elif frame.f_globals.get("__name__", "").startswith(_PATCHERS):
            return None
        frame = frame.f_back
    return busy


def _half_made(name: str) -> bool:
    """Not yet in sys.modules (still being found, or waiting for its parent), or its body is running."""
    module = sys.modules.get(name)
    return module is None or bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _importing_now() -> bool:
    """Called by an import, not by ``importlib.util.find_spec`` (runpy): only an import runs the body."""
    try:
        caller = sys._getframe(3)  # find_spec <- importlib's _find_spec <- _find_and_load_unlocked
    except ValueError:  # called from near the top of a stack: not by an import
        return False
    return caller.f_code is _FIND_AND_LOAD_UNLOCKED


def _pending_packages() -> set[str]:
    return {package for activation in _activations if activation.state != "done" for package in activation.packages}


class _ReportingLoader:
    """Stands in for a module's loader until its body runs, then reports that the body has run."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return create(spec) if create is not None else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # the module never sees the stand-in
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _triggered(module)
        _settle(finished=module.__name__)


class _Finder:
    """A meta path finder that finds nothing itself: it gives modules of pending packages a reporting loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] not in _pending_packages() or not _importing_now():
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
            spec.loader = _ReportingLoader(spec.loader)
        return spec


_finder = _Finder()
