"""Placed first on the launched process's PYTHONPATH by otel-celery-launch.

Starts the bootstrap, then runs the sitecustomize this one shadows, if there is one.

Processes the program starts inherit PYTHONPATH. One that runs another interpreter finds
this file too and must behave as it would without the launcher: no bootstrap, and not a
word (the launcher warned before exec if the command itself runs such an interpreter).
"""


def _run() -> None:
    import os
    import sys

    try:
        from otel_celery_launch.bootstrap import start
    except Exception:  # an interpreter that cannot load it: it runs as it would bare
        pass
    else:
        start()  # returns at once in an interpreter other than the launcher's

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
