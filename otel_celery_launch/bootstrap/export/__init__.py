"""Export from the program's side: spans, metrics and log records handed to the sidecar as they are made.

Nothing here talks to the collector, holds a credential or starts a thread that imports:
each process encodes plain tuples (:mod:`otel_celery_launch.wire`) and sends them with one
non-blocking datagram, so a prefork child that leaves through ``os._exit`` right after its
work has handed everything over already, and a full or absent sidecar costs a counted drop,
never a wait.
"""
