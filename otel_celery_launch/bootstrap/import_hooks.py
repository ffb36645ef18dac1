"""Run a function right after a module is first imported, without importing it ourselves.

This is what keeps start-up cheap: the SDK is loaded when the program first imports
OpenTelemetry, and the Celery instrumentation when it first imports Celery, never before
(gevent and eventlet must patch the standard library before those imports happen).

Patching itself can import Celery: gevent and eventlet walk every live object to swap
locks, and touching Celery's ``current_app`` proxy imports ``celery.app``. A hook that
fires in the middle of patching is held back until the next import after it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

Hook = Callable[[ModuleType], None]


class _AfterImportFinder:
    """A meta path finder that finds nothing itself; it wraps the loader of watched modules."""

    def __init__(self) -> None:
        self.pending: dict[str, list[Hook]] = {}
        self.held_back: list[tuple[Hook, ModuleType]] = []

    def run(self, hook: Hook, module: ModuleType) -> None:
        if _patching():
            self.held_back.append((hook, module))
        else:
            hook(module)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if self.held_back and not _patching():
            held_back, self.held_back = self.held_back, []
            for hook, module in held_back:
                hook(module)
        if fullname not in self.pending:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        hooks = self.pending.pop(fullname)
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            for hook in hooks:
                self.run(hook, module)

        loader.exec_module = exec_module  # type: ignore[method-assign]  # this loader serves this module only
        return spec


def _patching() -> bool:
    """Whether gevent or eventlet is monkey-patching right now, further up this stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(("gevent.monkey", "eventlet.patcher")):
            return True
        frame = frame.f_back
    return False


_finder = _AfterImportFinder()


def after_import(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``name`` has been imported (now, if it already has been)."""
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    if name in sys.modules:
        _finder.run(hook, sys.modules[name])
    else:
        _finder.pending.setdefault(name, []).append(hook)
