"""Every log line of a traced process names the trace and span of the work it belongs to."""

from __future__ import annotations

import json
import os

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_celery_launch.bootstrap.logs.ids import add_trace_ids
from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, RedisServer, Worker, clean_env, run_launcher

PLAIN = SCENARIOS / "plain"
CELERY_PRINTS = ("worker: Warm shutdown",)  # written by Celery straight to the terminal, not logged


def json_lines(text: str) -> list[dict]:
    """The JSON lines of a worker's output; the others are Celery's prints and warnings before logging is set up."""
    parsed = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert parsed, f"no JSON line in:\n{text}"
    return parsed


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_every_line_of_a_task_carries_its_run_span_ids(pool: str, redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="logs", **receiver.env("http/protobuf"))
    with Worker("logging_tasks", PLAIN, env, pool=pool, quiet=True) as worker:
        producer = run_launcher(["--", "python", "-c", "from logging_tasks import chatty; chatty.delay(7)"], env, cwd=PLAIN)
        assert producer.returncode == 0, producer.stderr
        worker.output.wait_for("succeeded")
        assert worker.stop() == 0
    (run,) = receiver.wait_for(lambda spans: any(s.name == "run/logging_tasks.chatty" for s in spans)) and receiver.named("run/logging_tasks.chatty")
    output = worker.output.finish()
    assert all(line.startswith("{") for line in output.splitlines() if " 7" in line), output  # the task's every line
    lines = json_lines(output)
    in_task = [line for line in lines if line.get("task_name") == "logging_tasks.chatty"]
    events = {line["event"].strip() for line in in_task}
    assert {"task logger line 7", "library line 7", "print line 7"} <= events
    (own,) = [line for line in lines if line["event"] == "own task id 7"]
    assert (own["task_id"], own["trace_id"]) == ("my-task", run.trace_id), "the program's task_id is shown as given"
    (structlog_line,) = [line for line in in_task if line["event"] == "structlog line"]  # unconfigured structlog, as JSON
    assert (structlog_line["n"], structlog_line["level"], structlog_line["logger"]) == (7, "info", "logging_tasks"), structlog_line
    assert any("UserWarning: warning line 7" in event for event in events)
    assert any(event.startswith("Task logging_tasks.chatty[") and "succeeded" in event for event in events)
    for line in in_task:
        assert (line["trace_id"], line["span_id"]) == (run.trace_id, run.span_id), line
        assert line["task_id"] == run.attributes["messaging.message.id"]
    outside = [line for line in lines if "ready." in line["event"]]
    assert outside and all("trace_id" not in line for line in outside), "no ids outside a span"


PRODUCER = """
import logging, structlog
from opentelemetry import trace
log = structlog.get_logger("producer")
log.info("before the span")
with trace.get_tracer("p").start_as_current_span("request"):
    log.info("structlog inside", order=1)
    logging.getLogger("producer.std").warning("stdlib inside")
"""


def test_a_producer_logs_its_trace_ids(receiver: Receiver) -> None:
    env = clean_env(OTEL_SERVICE_NAME="logs-producer", **receiver.env("http/protobuf"))
    result = run_launcher(["--", "python", "-c", PRODUCER], env)
    assert result.returncode == 0, result.stderr
    (request,) = receiver.wait_for(lambda spans: any(s.name == "request" for s in spans)) and receiver.named("request")
    before, inside = (json.loads(line) for line in result.stdout.splitlines())  # structlog's defaults, in the launcher's JSON
    assert "trace_id" not in before and (before["event"], before["level"], before["logger"]) == ("before the span", "info", "producer")
    assert (inside["event"], inside["order"], inside["span_id"], inside["trace_id"]) == ("structlog inside", 1, request.span_id, request.trace_id)
    (stdlib_line,) = json_lines(result.stderr)  # the handler of last resort, in the launcher's format
    assert (stdlib_line["trace_id"], stdlib_line["span_id"], stdlib_line["logger"]) == (request.trace_id, request.span_id, "producer.std")


DICT_CONFIG_APP = """
import logging.config
from opentelemetry import trace
logging.config.dictConfig({
    "version": 1,
    "formatters": {"mine": {"format": "MINE %(levelname)s %(message)s trace=%(trace_id)s span=%(span_id)s"}},
    "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "mine", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["out"], "level": "INFO"},
})
logging.getLogger("app").info("outside")
with trace.get_tracer("p").start_as_current_span("view") as span:
    logging.getLogger("app").info("inside")
    print("span", format(span.get_span_context().span_id, "016x"))
"""


def test_an_application_logging_config_keeps_its_format_and_gains_the_ids() -> None:
    result = run_launcher(["--", "python", "-c", DICT_CONFIG_APP], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    outside, inside, span = result.stdout.splitlines()
    assert outside == "MINE INFO outside trace= span="
    assert inside.startswith("MINE INFO inside trace=") and inside.endswith(f"span={span.split()[1]}")
    assert len(inside.split("trace=")[1].split()[0]) == 32


def test_console_format_is_readable_and_keeps_the_ids() -> None:
    code = "import logging\nfrom opentelemetry import trace\nwith trace.get_tracer('p').start_as_current_span('s'):\n    logging.getLogger('x').warning('hello')"
    result = run_launcher(["--logs-format", "console", "--", "python", "-c", code], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert not line.startswith("{") and "hello" in line and "trace_id=" in line and "span_id=" in line


def test_ids_come_from_the_span_context_even_when_the_sampler_dropped_the_span() -> None:
    context = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(context)):
        event = add_trace_ids(None, "info", {"event": "x"})
    assert event["trace_id"] == f"{0xABC:032x}" and event["span_id"] == f"{0xDEF:016x}"
    assert "trace_id" not in add_trace_ids(None, "info", {"event": "outside"})


OWN_KEYS = """
import logging, structlog
from opentelemetry import trace
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.INFO)
captured = structlog.testing.LogCapture()
with trace.get_tracer("p").start_as_current_span("request") as span:
    logging.getLogger("app").info("mine", extra={"trace_id": "my-trace", "span_id": "my-span", "task_id": "my-task"})
    logging.getLogger("app").info("ours")
    ours = format(span.get_span_context().trace_id, "032x")
    event = {"trace_id": "my-trace", "task_id": "my-task"}
    from otel_celery_launch.bootstrap.logs.ids import add_trace_ids
    kept = add_trace_ids(None, "info", dict(event))
    added = add_trace_ids(None, "info", {})
mine, theirs = records
print(mine.trace_id, mine.span_id, mine.task_id)
print(theirs.trace_id == ours, logging.Formatter("%(trace_id)s").format(theirs) == ours)
print(kept == event, added["trace_id"] == ours)
"""


def test_the_programs_own_ids_are_kept_and_extra_works() -> None:
    result = run_launcher(["--", "python", "-c", OWN_KEYS], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["my-trace my-span my-task", "True True", "True True"]


def test_a_worker_keeps_the_applications_handler_and_its_keys(redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_SERVICE_NAME="own-logs", **receiver.env("grpc"))
    with Worker("own_logging_tasks", PLAIN, env, pool="solo", quiet=True) as worker:
        producer = run_launcher(["--", "python", "-c", "from own_logging_tasks import own_ids; own_ids.delay(3)"], env, cwd=PLAIN)
        assert producer.returncode == 0, producer.stderr
        worker.output.wait_for("structlog own ids")
        assert worker.stop() == 0
    output = worker.output.finish()
    (run,) = receiver.wait_for(lambda spans: any(s.name == "run/own_logging_tasks.own_ids" for s in spans)) and receiver.named("run/own_logging_tasks.own_ids")
    assert "APP formatters after Celery set up logging: ['Formatter']" in output, output
    assert "APP INFO own.std trace=my-trace extra ids 3" in output, output
    assert f"APP INFO own.std trace={run.trace_id} launcher ids 3" in output, output
    # structlog, not configured, inside the task: a record of its logger, which the application's handler writes, its keys as extra
    assert "APP INFO own trace=my-trace structlog own ids" in output, output


DESCENDANTS = """
import subprocess, sys
other = subprocess.run(["/usr/bin/python3", "-c", "print('other interpreter')"], capture_output=True, text=True)
print(repr(other.stdout), repr(other.stderr))
same = subprocess.run([sys.executable, "-c", "from opentelemetry import trace; print(type(trace.get_tracer_provider()).__name__)"],
                      capture_output=True, text=True)
print(repr(same.stdout), repr(same.stderr))
"""


def test_descendants_on_another_interpreter_are_untouched_and_ours_are_traced() -> None:
    result = run_launcher(["--", "python", "-c", DESCENDANTS], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["'other interpreter\\n' ''", "'TracerProvider\\n' ''"]


STRUCTLOG_STATE = """
import structlog
print(structlog.is_configured())
structlog.configure_once(processors=[structlog.processors.KeyValueRenderer()])
print(structlog.is_configured())
structlog.get_logger().info("mine", k=1)
"""


def test_the_programs_own_structlog_configuration_is_left_alone() -> None:
    result = run_launcher(["--", "python", "-c", STRUCTLOG_STATE], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["False", "True", "k=1 event='mine'"]


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_root_worker_writes_nothing_but_json(pool: str, redis: RedisServer, receiver: Receiver) -> None:
    """Run as root (as in Docker), Celery warns first, before logging is set up; -q drops the banner."""
    env = clean_env(CELERY_BROKER_URL=redis.url(), **receiver.env("grpc"))
    with Worker("logging_tasks", PLAIN, env, pool=pool, quiet=True) as worker:
        producer = run_launcher(["--", "python", "-c", "from logging_tasks import chatty; chatty.delay(5)"], env, cwd=PLAIN)
        assert producer.returncode == 0, producer.stderr
        worker.output.wait_for("succeeded")
        assert worker.stop() == 0
    lines = [line for line in worker.output.finish().splitlines() if line.strip() and not line.startswith(CELERY_PRINTS)]
    parsed = [json.loads(line) for line in lines]  # each line one JSON object
    if os.geteuid() == 0:
        assert any(line.get("category") == "SecurityWarning" for line in parsed), lines


SECRET = "hunter2-secret-password"


def test_task_arguments_never_leave_the_process(redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_LOGS_EXPORTER="otlp", OTEL_SERVICE_NAME="private", **receiver.env("grpc"))
    """Celery's "received" and "succeeded" records carry the arguments and the result in ``extra={"data": ...}``."""
    with Worker("logging_tasks", PLAIN, env, pool="solo") as worker:
        code = f"from logging_tasks import login\nlogin.delay('ann', password={SECRET!r})"
        producer = run_launcher(["--", "python", "-c", code], env, cwd=PLAIN)
        assert producer.returncode == 0, producer.stderr
        worker.output.wait_for("succeeded")
        receiver.wait_until(lambda: any("succeeded" in log.body for log in receiver.logs) and receiver.named("run/logging_tasks.login"),
                            what="the task's records and run span")
        assert worker.stop() == 0
    assert any(log.body == "logged in ann" for log in receiver.logs)
    assert any("<not exported>" in log.body for log in receiver.logs if "succeeded" in log.body), "the result is left out of the text too"
    exported = repr([(log.body, log.attributes) for log in receiver.logs]) + repr([(span.name, span.attributes) for span in receiver.spans])
    assert SECRET not in exported


WARNINGS_CAPTURED = """
import contextlib, io, logging, warnings
buffer = io.StringIO()
with contextlib.redirect_stderr(buffer):
    logging.getLogger("app").warning("to the current stderr")
    warnings.warn("a warning too")
print(sorted(json.loads(line)["event"] for line in buffer.getvalue().splitlines()))
"""


def test_lines_and_warnings_go_to_the_current_stderr() -> None:
    result = run_launcher(["--", "python", "-c", "import json\n" + WARNINGS_CAPTURED], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['a warning too', 'to the current stderr']"] and result.stderr == ""


def test_warnings_as_errors_change_nothing_with_log_export_on(receiver: Receiver) -> None:
    code = "import logging\nfrom opentelemetry import trace\nwith trace.get_tracer('t').start_as_current_span('strict'):\n    logging.getLogger('app').warning('exported')"
    env = clean_env(OTEL_LOGS_EXPORTER="otlp", **receiver.env("grpc"))
    result = run_launcher(["--", "python", "-W", "error", "-c", code], env)
    assert result.returncode == 0, result.stderr
    assert "warning:" not in result.stderr.lower().replace('"level": "warning"', ""), result.stderr
    receiver.wait_until(lambda: receiver.named("strict") and any(log.body == "exported" for log in receiver.logs), what="the span and the record")


def test_structlog_events_in_a_task_are_exported_with_their_keys(redis: RedisServer, receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=redis.url(), OTEL_LOGS_EXPORTER="otlp", **receiver.env("grpc"))
    with Worker("logging_tasks", PLAIN, env, pool="prefork", quiet=True) as worker:
        producer = run_launcher(["--", "python", "-c", "from logging_tasks import chatty; chatty.delay(4)"], env, cwd=PLAIN)
        assert producer.returncode == 0, producer.stderr
        receiver.wait_until(lambda: any(log.body == "structlog line" for log in receiver.logs) and receiver.named("run/logging_tasks.chatty"),
                            what="the structlog event and the run span")
        assert worker.stop() == 0
    (run,) = receiver.named("run/logging_tasks.chatty")
    (record,) = [log for log in receiver.logs if log.body == "structlog line"]
    assert (record.attributes["n"], record.scope, record.trace_id, record.span_id) == (4, "logging_tasks", run.trace_id, run.span_id)


STRUCTLOG_CONFIGURED_IN_PART = """
import logging, structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
structlog.get_logger().info("part", k=1)
structlog.reset_defaults()
structlog.get_logger("again").info("reset", k=2)
"""


def test_structlog_configured_in_part_is_structlogs_own_and_reset_is_the_launchers() -> None:
    result = run_launcher(["--", "python", "-c", STRUCTLOG_CONFIGURED_IN_PART], clean_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0, result.stderr
    configured, reset = result.stdout.splitlines()
    assert not configured.startswith("{") and "part" in configured and "k=1" in configured, "structlog's own defaults, as bare"
    assert json.loads(reset)["event"] == "reset" and json.loads(reset)["logger"] == "again", "unconfigured again: the launcher's"


ODD_TEXT = """
import logging, warnings
from opentelemetry import trace
with trace.get_tracer("t").start_as_current_span("odd"):
    logging.getLogger("app").warning("before")
    logging.getLogger("app").warning("lone surrogate \\udcff")
    logging.getLogger("app").warning("after")
warnings.formatwarning = lambda message, category, *rest: f"MINE {category.__name__}: {message}\\n"
warnings.warn("custom format")
"""


def test_odd_text_costs_no_other_record_and_a_programs_warning_format_is_kept(receiver: Receiver) -> None:
    env = clean_env(OTEL_LOGS_EXPORTER="otlp", **receiver.env("http/protobuf"))
    result = run_launcher(["--", "python", "-c", ODD_TEXT], env)
    assert result.returncode == 0, result.stderr
    assert "MINE UserWarning: custom format" in result.stderr and "otel-celery-launch" not in result.stderr, result.stderr
    receiver.wait_until(lambda: {"before", "after"} <= {log.body for log in receiver.logs} and any("surrogate" in log.body for log in receiver.logs),
                        what="every record")
