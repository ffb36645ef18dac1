"""Imported first by the import-order programs: counts module executions, then reports.

Uses the standard library only, so that importing it changes no import order under test.
"""

import sys
import types

executions: dict[str, int] = {}


def _count(event: str, args: tuple) -> None:
    if event == "exec" and args and getattr(args[0], "co_name", "") == "<module>" and args[0].co_filename.endswith(".py"):
        executions[args[0].co_filename] = executions.get(args[0].co_filename, 0) + 1


sys.addaudithook(_count)


def stale_references(prefixes: tuple[str, ...] = ("celery", "kombu", "billiard", "opentelemetry")) -> list[str]:
    """Names bound to a class or function that its module no longer holds: that module ran twice."""
    problems = []
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(prefixes):
            continue
        for attribute, value in list(vars(module).items()):
            if not isinstance(value, (type, types.FunctionType)):
                continue
            owner_name = getattr(value, "__module__", None) or ""
            owner = sys.modules.get(owner_name) if owner_name.startswith(prefixes) else None
            qualname = getattr(value, "__qualname__", "")
            current = vars(owner).get(qualname) if owner is not None and qualname.isidentifier() else None
            if current is not None and current is not value:
                problems.append(f"{name}.{attribute} is not {owner.__name__}.{qualname}")
    return sorted(problems)


def report(task: object) -> dict[str, object]:
    import celery
    from celery import canvas

    signature = task.s(1, 2)  # type: ignore[attr-defined]
    trace = sys.modules.get("opentelemetry.trace")
    return {
        "executed_twice": sorted(path for path, count in executions.items() if count > 1),
        "stale": stale_references(),
        "signature_is_canvas_signature": isinstance(signature, canvas.Signature) and type(signature) is canvas.Signature,
        "chain": type(signature | task.s(3)).__name__,  # type: ignore[attr-defined]
        "celery_chain_is_canvas_chain": celery.chain is canvas.chain,
        "provider": type(trace.get_tracer_provider()).__name__ if trace is not None else None,
        "instrumented": "opentelemetry.instrumentation.celery" in sys.modules,
    }
