"""Set each integration up once its library is in use, at a moment when that is safe.

Setting up imports modules: the Celery instrumentation imports ``celery.canvas``,
``celery.app.task``, ``opentelemetry.trace`` and more. Python records a module in
``sys.modules`` only after its finders have run, and before its body has run, so a set-up
started at the wrong moment breaks the program it should only observe:

* started from a finder (``find_spec``), it imports the very module being found, which
  Python then executes a second time: two ``Signature`` classes, ``chain(...)`` a dict;
* started while a module's body is half run, it meets that module half made:
  ``from module import name`` fails, or binds what exists so far.

Why this module is safe: a set-up runs only when, on this thread (importlib's
``_find_and_load`` frames), no import is being found (its module not yet in
``sys.modules``: a finder is running, or it waits for its parent) and no library module
(one of the standard library or of an installed package: what a set-up may import) has its
body part way run; and never while gevent or eventlet monkey-patch. The program's own
modules may be part way run: a set-up never imports them (it runs inside ``import tasks``
when ``tasks.py`` creates its Celery app). Other threads' imports are safe to meet (a
module being imported is locked until whole), unless this thread is itself inside an
import: then they count too, as the two threads' locks could deadlock. Within those rules it runs at the first chance
after its library was imported:

1. right after the body of the library's module (the trigger) has run;
2. else right after the body of the next module to finish importing: while a set-up is
   pending, every module of its packages (and, while one is held back, every module) is
   loaded through a copy of its loader (:func:`_reporting`), which hands the module its real
   loader before the body runs and reports when the body is done;
3. or at the library's first use, reported by :func:`use` (Celery: the first app, publish
   or worker; OpenTelemetry: the first span of a tracer got early), if that moment is safe.

Each set-up runs once, on whichever thread gets there first. An optional ``arm`` step runs
right after the trigger's body, even inside another import: it must import nothing (it
only wraps what that module defines), which is what reporting first use needs.
"""

from __future__ import annotations

import os
import site
import sys
import threading
import time
from _thread import get_ident as _os_thread  # taken before gevent or eventlet patch it: frames are keyed by OS thread
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import _bootstrap  # type: ignore[attr-defined]  # to know the frames of imports
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType
from typing import Any

FIRST_USE_WAIT = 1.0  # longest a first use waits for another thread's set-up of the same library, in seconds
OTHER_IMPORT_WAIT = 5.0  # longest a set-up waits for another thread's import of its packages (bounded: no deadlock lasts)
_FIND_AND_LOAD = getattr(_bootstrap, "_find_and_load").__code__
_PATCHERS = ("gevent.monkey", "eventlet.patcher")
_PATCHING = ("patch", "green", "monkey_patch", "upgrade")  # their functions that patch or sweep live objects
_LIBRARIES = tuple(
    os.path.join(os.path.realpath(directory), "")
    for directory in {os.path.dirname(os.__file__), *getattr(site, "getsitepackages", list)(), site.getusersitepackages()}
)
_OURS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))), "")  # otel_celery_launch/


@dataclass(eq=False)
class Activation:
    trigger: str  # the module whose import means the library is in use
    packages: frozenset[str]  # top-level packages whose imports are watched until it has run
    install: Callable[[], None]
    arm: Callable[[ModuleType], None] | None = None
    guards: frozenset[str] | None = None  # the top-level packages its set-up imports from; None: any library
    state: str = "waiting"  # waiting -> due (trigger imported) -> running -> done
    thread: int = 0  # the thread that runs the set-up
    importer: int = 0  # the thread whose import of the trigger made it due


_activations: list[Activation] = []
_lock = threading.Lock()


def activate_when_imported(
    trigger: str,
    packages: Sequence[str],
    install: Callable[[], None],
    arm: Callable[[ModuleType], None] | None = None,
    guards: Sequence[str] | None = None,
) -> None:
    """Run ``install`` at the first safe moment after ``trigger`` has been imported.

    ``guards``, when known, are all the top-level packages the set-up may import (an
    instrumentation's distribution and what it requires, from metadata): only a half-made
    module of those holds it back, so it runs before the importing module binds what it
    patches (``from flask import Flask`` in an application installed in site-packages).
    """
    _activations.append(Activation(trigger, frozenset(packages) | {trigger.partition(".")[0]}, install, arm,
                                   None if guards is None else frozenset(guards) | {trigger.partition(".")[0]}))
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    module = sys.modules.get(trigger)
    if module is not None and not _half_made(trigger):
        _triggered(module)
        _settle()


def use(trigger: str) -> None:
    """The library imported as ``trigger`` is being used now: set it up first, if that is safe.

    If another thread is setting it up, the use waits for that (at most FIRST_USE_WAIT).
    """
    deadline = time.monotonic() + FIRST_USE_WAIT
    for activation in _activations:
        if activation.trigger != trigger:
            continue
        while activation.state in ("due", "running") and activation.thread != threading.get_ident():
            if activation.state == "due":
                if _blocked(None, activation.guards):
                    return  # this thread's own import stands in the way: its end sets the library up
                _settle()
            elif time.monotonic() < deadline:
                time.sleep(0.005)
            else:
                return


def _triggered(module: ModuleType) -> None:
    for activation in _activations:
        if activation.trigger == module.__name__:
            with _lock:
                if activation.state != "waiting":
                    continue
                activation.state, activation.importer = "due", threading.get_ident()
            if activation.arm is not None:
                activation.arm(module)


def _settle(finished: str | None = None) -> None:
    """Run the due set-ups while that is safe; ``finished`` names a module whose body just ran.

    Safety is looked at again after each set-up: one may import a trigger, and leave
    another set-up due.
    """
    while True:
        for activation in _activations:
            if activation.state != "due" or not _clear(finished, activation):
                continue
            with _lock:
                if activation.state != "due":
                    continue
                activation.state, activation.thread = "running", threading.get_ident()
            try:
                activation.install()
            finally:
                activation.state = "done"
            break
        else:
            return


def _clear(finished: str | None, activation: Activation) -> bool:
    """Whether a set-up may run now. When only another thread's import of its packages is in
    the way of one with guards, the thread that imported the trigger waits for that import
    (at most OTHER_IMPORT_WAIT): deferring past it would let the importing module bind what
    the set-up patches. Other threads do not wait: two could wait for each other."""
    guards = activation.guards
    if guards is None or activation.importer != threading.get_ident():
        return not _blocked(finished, guards)
    deadline = time.monotonic() + OTHER_IMPORT_WAIT
    while _blocked(finished, guards):
        if _blocked(finished, guards, here_only=True) or time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _blocked(finished: str | None, guards: frozenset[str] | None = None, here_only: bool = False) -> bool:
    """Whether setting up now could meet a half-made module (of ``guards``, when given; else of any library).

    This thread's own imports are what matter: a module another thread is importing is
    locked, and an import of it from here waits until it is whole, unless this thread
    holds an import lock itself (it is inside an import), when the two could deadlock
    and Python hands one of them the half-made module.
    """
    here = elsewhere = importing_here = False
    me = _os_thread()
    for thread, frame in sys._current_frames().items():
        walking: FrameType | None = frame
        while walking is not None:
            if walking.f_code is _FIND_AND_LOAD:
                importing_here = importing_here or thread == me
                name = walking.f_locals.get("name")
                blocked = isinstance(name, str) and name != finished and (
                    _half_made_library(name) if guards is None else name.partition(".")[0] in guards and _half_made(name))
            else:
                blocked = walking.f_globals.get("__name__", "").startswith(_PATCHERS) and walking.f_code.co_name.lstrip("_").startswith(_PATCHING)
            if blocked and thread == me:
                here = True
            elif blocked:
                elsewhere = True
            walking = walking.f_back
    return here or (importing_here and elsewhere and not here_only)


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


_REAL = "_otel_celery_launch_real_loader"
_reporting_classes: dict[type, type] = {}


def _reporting(loader: Any) -> Any:
    """A copy of ``loader`` whose ``exec_module`` reports when the body has run.

    Of a subclass of the loader's own class (``isinstance`` checks still hold, and every
    other method is the loader's own), made per class; None for loaders that cannot be
    copied so (built-in and frozen modules, whose loader is a class).
    """
    kind = type(loader)
    try:
        reporting = _reporting_classes.get(kind)
        if reporting is None:
            namespace = {"exec_module": _exec_and_report, "__module__": kind.__module__, "__qualname__": kind.__qualname__}
            reporting = _reporting_classes.setdefault(kind, type(kind.__name__, (kind,), namespace))
        copy: Any = object.__new__(reporting)
        copy.__dict__.update(vars(loader))
    except TypeError:
        return None
    copy.__dict__[_REAL] = loader
    return copy


def _exec_and_report(self: Any, module: ModuleType) -> None:
    loader = self.__dict__[_REAL]
    module.__loader__ = loader  # the module keeps its real loader
    if module.__spec__ is not None:
        module.__spec__.loader = loader
    loader.exec_module(module)
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
            spec.loader = _reporting(spec.loader) or spec.loader
        return spec


_finder = _Finder()
