"""The sidecar: the one process that talks to the collector.

The launcher starts it just before it execs the program (see
:mod:`otel_celery_launch.launch.sidecar`). It alone holds the exporters, the endpoint's
credentials, the retries, the bounded queues and the voice that reports failures. Every
process of the program hands it spans, metrics and log records over a local socket
(:mod:`otel_celery_launch.bootstrap.export`), so none of them waits on the collector, forks
with a channel or a half-done import of an exporter, or holds a credential.
"""
