"""Tutorial code: the program sets its own provider and instruments Celery itself."""

from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
CeleryInstrumentor().instrument()

import tasks  # noqa: E402,F401
