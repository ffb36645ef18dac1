"""Run a function right after a module is first imported, without importing it ourselves.

This is what keeps start-up cheap: the SDK is loaded when the program first imports
OpenTelemetry, and the Celery instrumentation when it first imports Celery, never before
(gevent and eventlet must patch the standard library before those imports happen).
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

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
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
                hook(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]  # this loader serves this module only
        return spec


_finder = _AfterImportFinder()


def after_import(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``name`` has been imported (now, if it already has been)."""
    if name in sys.modules:
        hook(sys.modules[name])
        return
    _finder.pending.setdefault(name, []).append(hook)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
