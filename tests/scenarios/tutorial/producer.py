# producer.py
from opentelemetry import baggage, context
from worker_tasks import process_payment, tracer

with tracer.start_as_current_span("checkout"):
    ctx = baggage.set_baggage("tenant_id", "acme_corp")
    ctx = baggage.set_baggage("request_source", "api_gateway", context=ctx)
    token = context.attach(ctx)
    try:
        process_payment.delay("order_12345")
    finally:
        context.detach(token)
