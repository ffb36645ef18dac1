"""Placed first on the launched process's PYTHONPATH by otel-celery-launch.

Starts the bootstrap, then runs the sitecustomize this one shadows, if there is one.
"""


def _run() -> None:
    import os
    import sys

    try:
        from otel_celery_launch.bootstrap import start
    except ImportError:
        if os.environ.get("OTEL_CELERY_LAUNCH_WARNED_ABOUT") != sys.executable:  # the launcher said it before exec
            sys.stderr.write(
                f"otel-celery-launch: warning: the launcher is not installed for {sys.executable}; running without tracing\n"
            )
    else:
        start()

    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)


_run()
del _run
