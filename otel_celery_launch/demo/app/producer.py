"""The demo's producer: a span, some baggage, one task. No OpenTelemetry setup: the launcher does it."""

from opentelemetry import baggage, context, trace

from tasks import charge

with trace.get_tracer("demo").start_as_current_span("checkout"):
    token = context.attach(baggage.set_baggage("request_source", "api_gateway", baggage.set_baggage("tenant_id", "acme_corp")))
    try:
        charge.delay("order_12345")
    finally:
        context.detach(token)
