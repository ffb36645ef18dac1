"""A publish that fails because the broker is down ends with an error and stops being current."""

from __future__ import annotations

from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, clean_env, free_port, run_launcher

PRODUCER = """
from opentelemetry import trace
from tasks import record

tracer = trace.get_tracer("producer")
with tracer.start_as_current_span("request") as request:
    try:
        record.apply_async(("/nowhere", 1), retry=False)
    except Exception as error:
        print("publish failed:", type(error).__name__)
    print("current after the failure:", trace.get_current_span() is request)
    with tracer.start_as_current_span("next step"):
        pass
"""


def test_a_failed_publish_ends_with_error_and_is_no_longer_current(receiver: Receiver) -> None:
    env = clean_env(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0", OTEL_SERVICE_NAME="producer",
                    PYTHONPATH=str(SCENARIOS / "plain"), **receiver.env("http/protobuf"))
    result = run_launcher(["--", "python", "-c", PRODUCER], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["publish failed: OperationalError", "current after the failure: True"]
    spans = receiver.wait_for(lambda spans: {"request", "next step", "apply_async/tasks.record"} <= {s.name for s in spans})
    by_name = {span.name: span for span in spans}
    request, publish, next_step = by_name["request"], by_name["apply_async/tasks.record"], by_name["next step"]
    assert publish.status_code == 2, "the failed publish has error status"
    assert publish.parent_span_id == request.span_id
    assert next_step.parent_span_id == request.span_id, "what follows is not parented to the failed publish"
