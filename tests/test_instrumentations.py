"""Every installed instrumentation: found from metadata, switched by settings, activated lazily, failing open.

Instrumentations that are broken or skewed are made as real distributions (a ``.dist-info``
directory on PYTHONPATH), which the launcher and the child find as they find installed ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from packaging.requirements import Requirement

from tests.otlp_receiver import ReceivedSpan, Receiver
from tests.processes import RedisServer, Worker, answers_ping, clean_env, free_port, poll, run_launcher

USE_REDIS_AND_HTTP = """
import sys, redis, requests
redis.Redis.from_url(sys.argv[1]).set("key", "value")
requests.get(sys.argv[2], timeout=5)
print("done")
"""
IMPORTED = ("flask", "psycopg", "redis", "requests", "opentelemetry.instrumentation.")


def is_redis(span: ReceivedSpan) -> bool:
    return "redis" in (span.attributes.get("db.system"), span.attributes.get("db.system.name"))


def fake_instrumentation(root: Path, name: str, requires: list[str], module_text: str = "") -> Path:
    """An installed-looking instrumentation package ``opentelemetry-instrumentation-<name>`` 0.1b0 under ``root``."""
    info = root / f"opentelemetry_instrumentation_{name}-0.1b0.dist-info"
    info.mkdir(parents=True)
    metadata = ["Metadata-Version: 2.1", f"Name: opentelemetry-instrumentation-{name}", "Version: 0.1b0"]
    (info / "METADATA").write_text("\n".join(metadata + [f"Requires-Dist: {line}" for line in requires]) + "\n")
    (info / "entry_points.txt").write_text(f"[opentelemetry_instrumentor]\n{name} = fake_{name}:Instrumentor\n")
    (root / f"fake_{name}.py").write_text(module_text or "from opentelemetry.instrumentation.instrumentor import BaseInstrumentor\n"
                                          "class Instrumentor(BaseInstrumentor):\n"
                                          "    def instrumentation_dependencies(self): return []\n"
                                          "    def _instrument(self, **kw): print('fake instrumented')\n"
                                          "    def _uninstrument(self, **kw): pass\n")
    return root


def run_program(receiver: Receiver, redis: RedisServer, *launcher_args: str, **env: str):
    return run_launcher([*launcher_args, "--", "python", "-c", USE_REDIS_AND_HTTP, redis.url(6), f"http://127.0.0.1:{receiver.http_port}/"],
                        clean_env(**receiver.env("http/protobuf"), **env))


def test_a_process_pays_only_for_the_libraries_it_imports() -> None:
    code = "import {0}; import sys; print(sorted(m for m in sys.modules if m.startswith({1!r})))"
    nothing = run_launcher(["--", "python", "-c", code.format("json", IMPORTED)], clean_env())
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.strip() == "[]"
    only_redis = run_launcher(["--", "python", "-c", code.format("redis", IMPORTED)], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert only_redis.returncode == 0, only_redis.stderr
    loaded = {name for name in eval(only_redis.stdout) if name.startswith("opentelemetry.instrumentation.")}
    assert "opentelemetry.instrumentation.redis" in loaded
    assert not any(name.startswith(("opentelemetry.instrumentation.flask", "opentelemetry.instrumentation.psycopg",
                                    "opentelemetry.instrumentation.requests")) for name in loaded)


def test_a_switched_off_instrumentation_makes_none_of_its_spans(receiver: Receiver, redis: RedisServer) -> None:
    result = run_program(receiver, redis, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="redis")
    assert result.returncode == 0, result.stderr
    spans = receiver.wait_for(lambda spans: any(span.name == "GET" for span in spans))
    assert not any(is_redis(span) for span in spans), [span.name for span in spans]
    receiver.clear()
    listed = run_program(receiver, redis, "--instrumentations-enabled", "redis")
    assert listed.returncode == 0, listed.stderr
    spans = receiver.wait_for(lambda spans: any(is_redis(span) for span in spans))
    assert not any(span.name == "GET" for span in spans), [span.name for span in spans]


def test_a_broken_instrumentation_gives_one_warning_and_the_program_runs(tmp_path: Path, receiver: Receiver, redis: RedisServer) -> None:
    fake_instrumentation(tmp_path, "broken", ["redis>=2; extra == 'instruments'"], "raise RuntimeError('this package is broken')\n")
    result = run_program(receiver, redis, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    warnings = [line for line in result.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "instrumenting broken" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr
    receiver.wait_for(lambda spans: any(is_redis(span) for span in spans) and any(span.name == "GET" for span in spans))


def test_a_skewed_instrumentation_is_named_in_check_and_warned_of_once(tmp_path: Path, receiver: Receiver, redis: RedisServer) -> None:
    fake_instrumentation(tmp_path, "skewed", ["opentelemetry-instrumentation==0.1b0", "redis>=2; extra == 'instruments'"])
    installed = version("opentelemetry-instrumentation")
    expected = (f"version skew: opentelemetry-instrumentation-skewed 0.1b0 needs opentelemetry-instrumentation==0.1b0 "
                f"(opentelemetry-instrumentation {installed} is installed)")
    check = run_launcher(["check", "--json"], clean_env(PYTHONPATH=str(tmp_path)))
    assert check.returncode == 0, check.stderr
    states = {item["name"]: item["state"] for item in json.loads(check.stdout)["instrumentations"]}
    assert states["skewed"] == f"off: {expected}"
    assert states["redis"] == states["celery"] == "on"
    result = run_program(receiver, redis, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "fake instrumented" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "skewed" in line]
    assert len(warnings) == 1 and expected in warnings[0], result.stderr
    receiver.wait_for(lambda spans: any(is_redis(span) for span in spans))


def test_a_working_extra_instrumentation_is_activated_when_its_library_is_imported(tmp_path: Path, receiver: Receiver, redis: RedisServer) -> None:
    fake_instrumentation(tmp_path, "extra", ["redis>=2; extra == 'instruments'"])
    result = run_program(receiver, redis, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["fake", "instrumented", "done"]


def test_check_lists_every_installed_instrumentation_with_its_state() -> None:
    result = run_launcher(["check"], clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="psycopg"))
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("instrumentations installed: ", 1)[1].splitlines()
    assert listing[0] == "5"
    rows = {line.split()[0]: line for line in listing[1:]}
    assert set(rows) == {"celery", "flask", "psycopg", "redis", "requests"}
    contrib = version("opentelemetry-instrumentation")
    assert f"opentelemetry-instrumentation-flask {contrib}" in rows["flask"] and rows["flask"].endswith(" on")
    assert rows["psycopg"].endswith("off: switched off by instrumentations.disabled (env OTEL_PYTHON_DISABLED_INSTRUMENTATIONS)")


def test_an_unknown_name_is_refused_with_a_guess() -> None:
    result = run_launcher(["--instrumentations-disabled", "redsi", "--", "python", "-c", "print('ran')"], clean_env())
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "otel-celery-launch: error: instrumentations.disabled.0 (flag --instrumentations-disabled): is not an instrumentation; "
        "did you mean 'redis'? allowed: *, or one installed: celery, flask, psycopg, redis, requests (got 'redsi')"]
    known_elsewhere = run_launcher(["check", "--instrumentations-disabled", "django"], clean_env())
    assert known_elsewhere.returncode == 0, known_elsewhere.stderr  # a known name, installed in another image


def test_requirements_agree_with_the_installed_sdk() -> None:
    result = run_launcher(["requirements"], clean_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    contrib = version("opentelemetry-semantic-conventions")  # the SDK pins it: the contrib release made with the SDK
    wanted = {Requirement(line).name: str(Requirement(line).specifier) for line in lines}
    for name in ("celery", "flask", "psycopg", "redis", "requests"):
        assert wanted[f"opentelemetry-instrumentation-{name}"] == f"=={contrib}"
    assert "opentelemetry-instrumentation-grpc" not in wanted  # grpcio is there for the exporter, not the program
    assert "opentelemetry-instrumentation-django" not in wanted


BROKER_APP = """
import os, redis
from celery import Celery
from kombu import Queue
from kombu.common import Broadcast
app = Celery("quiet", broker=os.environ["CELERY_BROKER_URL"])
app.conf.broker_transport_options = {"master_name": "main"} if app.conf.broker_url.startswith("sentinel") else {}
app.conf.task_queues = (Queue("celery"), Broadcast("everyone"))  # a fanout queue: kombu opens a connection to listen, outside any command

@app.task
def store(n):
    redis.Redis.from_url(os.environ["DATA_URL"]).set(f"stored:{n}", n)
"""


@pytest.fixture
def sentinel(tmp_path: Path, redis: RedisServer) -> Iterator[str]:
    """A Redis Sentinel watching the test's Redis as master ``main``: its broker URL."""
    port = free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites it
    config.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 {redis.port} 1\n")
    process = subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: answers_ping(port), 10, "the sentinel to answer")
        yield f"sentinel://127.0.0.1:{port}/7"
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize("transport", ["redis", "sentinel"])
def test_the_redis_brokers_own_commands_make_no_spans(transport: str, tmp_path: Path, receiver: Receiver, redis: RedisServer,
                                                       request: pytest.FixtureRequest) -> None:
    """Nor do the commands that run inside them, or as kombu opens a connection (a Sentinel's master lookup)."""
    (tmp_path / "quiet.py").write_text(BROKER_APP)
    broker = redis.url(7) if transport == "redis" else request.getfixturevalue("sentinel")
    env = clean_env(CELERY_BROKER_URL=broker, DATA_URL=redis.url(8), **receiver.env("grpc"))
    with Worker("quiet", tmp_path, env, pool="solo", worker_args=["-Q", "celery,everyone"]) as worker:
        producer = run_launcher(["--", "python", "-c", "import quiet; [quiet.store.delay(n) for n in range(3)]"], env, cwd=tmp_path)
        assert producer.returncode == 0, producer.stderr
        spans = receiver.wait_for(lambda spans: sum(is_redis(span) for span in spans) >= 3 and sum(s.name == "run/quiet.store" for s in spans) == 3)
        worker.stop()  # everything the idle worker had left is flushed
    spans = receiver.wait_for(lambda spans: True)
    runs = {span.span_id for span in spans if span.name == "run/quiet.store"}
    commands = [span for span in spans if is_redis(span)]
    assert [span.name for span in commands] == ["SET"] * 3, [(s.name, s.parent_span_id in runs) for s in commands]
    assert all(span.parent_span_id in runs for span in commands)


APP = """from flask import Flask
app = Flask(__name__)

@app.route("/x")
def x():
    return "hi"
"""
SHOW_APP = "print(type(app).__name__, app.test_client().get('/x').data.decode())"


def test_an_application_installed_in_site_packages_is_instrumented() -> None:
    import site
    import shutil
    import uuid

    package = f"zz_installed_app_{uuid.uuid4().hex[:8]}"
    where = Path(site.getsitepackages()[0]) / package
    where.mkdir()
    try:
        (where / "__init__.py").write_text(APP)  # `from flask import Flask` runs inside a library module's import
        result = run_launcher(["--exporter-protocol", "console", "--", "python", "-c", f"from {package} import app\n{SHOW_APP}"], clean_env())
    finally:
        shutil.rmtree(where)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("_InstrumentedFlask hi"), result.stdout
    assert '"name": "GET /x"' in result.stdout


def test_flask_is_instrumented_while_another_thread_imports_a_library(tmp_path: Path) -> None:
    (tmp_path / "webmod.py").write_text(APP)
    code = ("import threading\nthread = threading.Thread(target=lambda: __import__('psycopg'))\nthread.start()\n"
            f"from webmod import app\nthread.join()\n{SHOW_APP}")
    for _ in range(3):
        result = run_launcher(["--exporter-protocol", "console", "--", "python", "-c", code], clean_env(PYTHONPATH=str(tmp_path)))
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("_InstrumentedFlask hi"), result.stdout


def test_unreadable_metadata_turns_one_instrumentation_off_with_a_warning(tmp_path: Path) -> None:
    fake_instrumentation(tmp_path, "malformed", ["requests >>= 2 ; extra == 'instruments'"])
    check = run_launcher(["check", "--json"], clean_env(PYTHONPATH=str(tmp_path)))
    assert check.returncode == 0, check.stderr
    states = {item["name"]: item["state"] for item in json.loads(check.stdout)["instrumentations"]}
    assert states["malformed"].startswith("off: unreadable package metadata"), states
    result = run_launcher(["--", "python", "-c", "print('ran')"], clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0 and result.stdout == "ran\n", result.stderr
    assert [line for line in result.stderr.splitlines() if "malformed" in line] and "Traceback" not in result.stderr


def test_a_standard_library_instrumentation_waits_for_the_programs_first_use_of_tracing(tmp_path: Path) -> None:
    fake_instrumentation(tmp_path, "threading", [])  # threading is imported by every Python start
    env = clean_env(PYTHONPATH=str(tmp_path), OTEL_TRACES_EXPORTER="none")
    untraced = run_launcher(["--", "python", "-c", "import decimal; print('done')"], env)
    assert untraced.stdout.split() == ["done"], untraced.stderr
    traced = run_launcher(["--", "python", "-c", "from opentelemetry import trace\ntrace.get_tracer('t').start_span('s').end()\nprint('done')"], env)
    assert traced.stdout.split() == ["fake", "instrumented", "done"], traced.stderr


def test_upstream_names_switched_off_are_accepted_even_when_not_installed() -> None:
    result = run_launcher(["--", "python", "-c", "print('ran')"], clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="kafka,grpc_client,aiohttp-client"))
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


KOMBU_CLIENTS = """
import copy, gc, os, pickle, weakref
from kombu import Connection
gc.disable()  # an object freed only by the collector would show
channel = Connection(os.environ["CELERY_BROKER_URL"], transport_options={"global_keyprefix": "p:"}).default_channel
client = channel._create_client()
pipe = client.pipeline()
print(repr(type(client)), repr(type(pipe)), repr(type(copy.copy(client))), isinstance(client, __import__("redis").Redis))
for thing in (client, pipe, channel.pool.get_connection()):
    for protocol in (0, 1, pickle.DEFAULT_PROTOCOL):
        try:
            pickle.dumps(thing, protocol)
        except Exception as error:
            print(type(error).__name__, error)
print(weakref.ref(channel._create_client())() is None, weakref.ref(channel._create_client().pipeline())() is None)
gc.enable()

def classes_after(channels):  # kombu makes a connection class for each channel: none may outlive it
    for _ in range(channels):
        with Connection(os.environ["CELERY_BROKER_URL"]) as connection:
            connection.default_channel.client.ping()
    gc.collect()
    return sum(isinstance(thing, type) for thing in gc.get_objects())

print("classes grow:", classes_after(100) < classes_after(100))
"""


def test_kombus_redis_clients_look_and_behave_as_without_the_launcher(redis: RedisServer) -> None:
    """Their type, copies and pickling as bare; each is freed as soon as it is dropped, its connection back in the pool;
    and the quiet classes of kombu's per-channel connection classes go with their channel."""
    env = clean_env(CELERY_BROKER_URL=redis.url(7), OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    bare = subprocess.run([sys.executable, "-c", KOMBU_CLIENTS], env=env, capture_output=True, text=True, timeout=60)
    launched = run_launcher(["--", "python", "-c", KOMBU_CLIENTS], env)
    assert bare.returncode == launched.returncode == 0, launched.stderr
    assert launched.stdout == bare.stdout
    assert bare.stdout.splitlines()[-2:] == ["True True", "classes grow: False"]
