"""The least a tracer of Celery's task runs built on the SDK does per task: the floor the per-task figures stand on.

With ``BENCH_SDK_FLOOR`` set (and no launcher), the benchmark's programs start one SDK span per
run at ``task_prerun``, make it current, and end it at ``task_postrun``: no attributes, no parent
from the message, no span processor, nothing exported, no metrics. Whatever traces Celery's runs
with the SDK pays at least this; a launcher's figure above it is what its attributes, export,
metrics and broker handling cost.
"""

import os


def install_if_asked() -> None:
    if not os.environ.get("BENCH_SDK_FLOOR"):
        return
    from celery import signals
    from opentelemetry import context, trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("sdk-floor")
    consumer = trace.SpanKind.CONSUMER
    running = {}

    def started(task_id=None, task=None, **_):
        span = tracer.start_span(f"run/{task.name}", kind=consumer)
        running[task_id] = (span, context.attach(trace.set_span_in_context(span)))

    def ended(task_id=None, **_):
        span, token = running.pop(task_id)
        span.end()
        context.detach(token)

    signals.task_prerun.connect(started, weak=False)
    signals.task_postrun.connect(ended, weak=False)
