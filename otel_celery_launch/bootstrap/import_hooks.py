"""Run a function right after a module is first imported, without importing it ourselves.

This is what keeps start-up cheap: the SDK is loaded when the program first imports
OpenTelemetry, and the Celery instrumentation when it first imports Celery, never before
(gevent and eventlet must patch the standard library before those imports happen).

Some hooks must wait a little longer, until the next import that is safe:

* while gevent or eventlet monkey-patch: they walk every live object to swap locks, and
  touching Celery's ``current_app`` proxy imports ``celery.app`` half-way through;
* with ``settle=True``, while the module was imported from inside another module's import:
  ``from celery import chain`` imports ``celery.app`` while ``celery.canvas`` is still half
  made, and the Celery instrumentation needs ``celery.canvas`` whole.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from types import FrameType, ModuleType


@dataclass(frozen=True)
class _Hook:
    function: Callable[[ModuleType], None]
    settle: bool


class _AfterImportFinder:
    """A meta path finder that finds nothing itself; it wraps the loader of watched modules."""

    def __init__(self) -> None:
        self.pending: dict[str, list[_Hook]] = {}
        self.held_back: list[tuple[_Hook, ModuleType]] = []

    def run(self, hook: _Hook, module: ModuleType, imports_in_progress: int) -> None:
        if _patching() or (hook.settle and imports_in_progress > 1):
            self.held_back.append((hook, module))
        else:
            hook.function(module)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if self.held_back:  # this import has not started executing anything yet
            held_back, self.held_back = self.held_back, []
            imports_in_progress = _imports_in_progress()
            for hook, module in held_back:
                self.run(hook, module, imports_in_progress)
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
            imports_in_progress = _imports_in_progress()
            for hook in hooks:
                self.run(hook, module, imports_in_progress)

        loader.exec_module = exec_module  # type: ignore[method-assign]  # this loader serves this module only
        return spec


def _stack() -> list[FrameType]:
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def _patching() -> bool:
    """Whether gevent or eventlet is monkey-patching right now, further up this stack."""
    return any(frame.f_globals.get("__name__", "").startswith(("gevent.monkey", "eventlet.patcher")) for frame in _stack())


def _imports_in_progress() -> int:
    return sum(frame.f_code.co_name == "_find_and_load" and "importlib" in frame.f_code.co_filename for frame in _stack())


_finder = _AfterImportFinder()


def after_import(name: str, hook: Callable[[ModuleType], None], settle: bool = False) -> None:
    """Call ``hook(module)`` once ``name`` has been imported (now, if it already has been)."""
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    if name in sys.modules:
        _finder.run(_Hook(hook, settle), sys.modules[name], _imports_in_progress())
    else:
        _finder.pending.setdefault(name, []).append(_Hook(hook, settle))
