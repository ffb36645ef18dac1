import os
from celery import Celery
from opentelemetry import trace, baggage
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.celery import CeleryInstrumentor

# 1. Provider + batch export (non-blocking background flush)
provider = TracerProvider()
exporter = OTLPSpanExporter(
    endpoint=os.getenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")
)
provider.add_span_processor(BatchSpanProcessor(exporter))
trace.set_tracer_provider(provider)

# 2. Global propagator: trace context + baggage, registered BEFORE Celery()
set_global_textmap(CompositePropagator([
    TraceContextTextMapPropagator(),
    W3CBaggagePropagator(),
]))

# 3. Instrument once in the main process
app = Celery("worker_tasks", broker="redis://localhost:6379/0")
CeleryInstrumentor().instrument()

tracer = trace.get_tracer(__name__)


@app.task(bind=True, max_retries=3)
def process_payment(self, order_id: str):
    # Parent context already restored by CeleryInstrumentor on task_prerun
    current_baggage = baggage.get_all()
    print(f"Processing {order_id} with baggage: {current_baggage}")
    return {"status": "completed", "order_id": order_id}
