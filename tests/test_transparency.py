"""The launched program behaves as it does bare, apart from being traced: attacks that once got through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, clean_env, run_launcher

HERE = SCENARIOS / "transparency"
REPO = Path(__file__).resolve().parent.parent
TRACED = {"instrumented": True, "provider": "TracerProvider", "signature_classes": 1}

DELEGATING_FINDER = """
import sys
class Delegating:
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path[sys.meta_path.index(self) + 1:]:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                return spec
sys.meta_path.insert(0, Delegating())
from celery import Celery
app = Celery("c", broker="memory://")
@app.task
def a(): pass
a.delay()
import report; report.report()
"""

UTIL_FIND_SPEC_FINDER = """
import importlib.util, sys
class PostImportHooks:  # as wrapt.when_imported does: ask the import system again, then wrap the loader
    busy = set()
    def find_spec(self, name, path, target=None):
        if name in self.busy:
            return None
        self.busy.add(name)
        try:
            return importlib.util.find_spec(name)
        finally:
            self.busy.discard(name)
sys.meta_path.insert(0, PostImportHooks())
from celery import Celery, chain
app = Celery("c", broker="memory://")
@app.task
def a(): pass
print(type(chain(a.s(), a.s())).__name__, file=sys.stderr)
import report; report.report()
"""

LAZY_LOADER = """
import importlib.util, sys
import celery
spec = importlib.util.find_spec("celery.app")  # the lazy import the importlib documentation shows
loader = importlib.util.LazyLoader(spec.loader)
spec.loader = loader
module = importlib.util.module_from_spec(spec)
sys.modules["celery.app"] = module
loader.exec_module(module)
app = module.Celery("c", broker="memory://")
@app.task
def a(): pass
a.delay()
import report; report.report()
"""

IMPORTS_FROM_A_FINDER = """
import gc, sys
class ImportSpans:  # a finder that imports OpenTelemetry while it is finding another module
    busy = False
    def find_spec(self, name, path, target=None):
        if not ImportSpans.busy:
            ImportSpans.busy = True
            try:
                from opentelemetry import trace
                trace.get_tracer("imports").start_span("import " + name).end()
            finally:
                ImportSpans.busy = False
        return None
sys.meta_path.insert(0, ImportSpans())
import queue
import concurrent.futures.thread as pool
copies = sum(1 for m in gc.get_objects() if type(m).__name__ == "module" and getattr(m, "__name__", None) == "queue")
import report; report.report(queue_copies=copies, same_queue=pool.queue is queue)
"""


@pytest.mark.parametrize("program", [DELEGATING_FINDER, UTIL_FIND_SPEC_FINDER, LAZY_LOADER], ids=["delegating finder", "post-import hook finder", "lazy loader"])
def test_finders_of_the_program_do_not_keep_tracing_out(program: str) -> None:
    result = run_launcher(["--", "python", "-c", program], clean_env(OTEL_TRACES_EXPORTER="none", PYTHONPATH=str(HERE)))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert TRACED.items() <= report.items() and report["publish_receivers"] >= 1, report
    assert result.stderr.strip() in ("", "_chain"), result.stderr


def test_a_finder_that_imports_while_finding_gets_no_module_twice() -> None:
    result = run_launcher(["--", "python", "-c", IMPORTS_FROM_A_FINDER], clean_env(OTEL_TRACES_EXPORTER="none", PYTHONPATH=str(HERE)))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["queue_copies"], report["same_queue"], report["provider"]) == (1, True, "TracerProvider"), report


def test_gevents_own_runner() -> None:
    result = run_launcher(["--", "python", "-m", "gevent.monkey", "gevent_script.py"], clean_env(OTEL_TRACES_EXPORTER="none"), cwd=HERE)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert TRACED.items() <= report.items(), report


PUBLISH_BY_NAME = """
import sys
from celery import Celery, Task
class Heavy(Task):
    def __init__(self):
        print("Heavy.__init__ ran")
app = Celery("p", broker="memory://")
@app.task(base=Heavy)
def predict(): pass
other = Celery("other", broker="memory://", set_as_current=False)
from opentelemetry import trace
with trace.get_tracer("p").start_as_current_span("request") as request:
    app.send_task("remote.other")
    other.send_task("remote.other")
    still_current = trace.get_current_span() is request
print("finalized:", app.finalized, other.finalized, "still current:", still_current, "celeryconfig:", "celeryconfig" in sys.modules)
"""


def test_publishing_by_name_touches_no_app(tmp_path: Path) -> None:
    (tmp_path / "celeryconfig.py").write_text("print('celeryconfig imported')\n")
    env = clean_env(OTEL_TRACES_EXPORTER="none")
    bare = run_launcher(["--disabled", "true", "--", "python", "-c", PUBLISH_BY_NAME], env, cwd=tmp_path)
    launched = run_launcher(["--", "python", "-c", PUBLISH_BY_NAME], env, cwd=tmp_path)
    assert launched.returncode == bare.returncode == 0, launched.stderr
    assert launched.stdout == bare.stdout == "finalized: False False still current: True celeryconfig: False\n"
    assert launched.stderr == ""


PROGRAMS_OWN_LOGGING = """
import logging, warnings, structlog
show = warnings.showwarning
print("structlog configured:", structlog.is_configured())
structlog.configure_once(processors=[structlog.processors.KeyValueRenderer(key_order=["event"])])
from opentelemetry import trace
with trace.get_tracer("p").start_as_current_span("request"):
    structlog.get_logger().info("mine")
print("root level:", logging.getLevelName(logging.getLogger().level), "warnings captured:", warnings.showwarning is not show)
"""


def test_the_programs_logging_and_structlog_stay_its_own() -> None:
    env = clean_env(OTEL_TRACES_EXPORTER="none")
    bare = run_launcher(["--disabled", "true", "--", "python", "-c", PROGRAMS_OWN_LOGGING], env)
    launched = run_launcher(["--", "python", "-c", PROGRAMS_OWN_LOGGING], env)
    assert launched.returncode == bare.returncode == 0, launched.stderr
    assert launched.stdout == bare.stdout == "structlog configured: False\nevent='mine'\nroot level: WARNING warnings captured: False\n"


STRUCTLOG_DEFAULTS = """
import structlog
from opentelemetry import trace
with trace.get_tracer("p").start_as_current_span("request") as span:
    structlog.get_logger().info("inside", order=1)
    print(format(span.get_span_context().trace_id, "032x"))
"""


def test_structlogs_default_chain_adds_the_ids() -> None:
    result = run_launcher(["--", "python", "-c", STRUCTLOG_DEFAULTS], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    line, trace_id = result.stdout.splitlines()
    event = json.loads(line)  # not a terminal: the launcher's JSON defaults
    assert (event["event"], event["trace_id"], event["order"]) == ("inside", trace_id, 1), line


def test_another_interpreter_seeing_a_source_checkout_is_untouched() -> None:
    code = ("import subprocess\n"
            "child = subprocess.run(['/usr/bin/python3', '-c', \"import logging; logging.getLogger('x').warning('hi')\"], capture_output=True, text=True)\n"
            "print(child.returncode, repr(child.stderr))")
    result = run_launcher(["--", "python", "-c", code], clean_env(OTEL_TRACES_EXPORTER="none", PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0 'hi\\n'\n"


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_children_deliver_their_spans(start_method: str, receiver: Receiver) -> None:
    env = clean_env(**receiver.env("grpc"))
    result = run_launcher(["--", "python", "mp_spans.py", start_method], env, cwd=HERE)
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    names = {"child-process", "child-pool-1", "child-pool-2", "child-executor-1", "child-executor-2"}
    receiver.wait_for(lambda spans: names <= {s.name for s in spans})
