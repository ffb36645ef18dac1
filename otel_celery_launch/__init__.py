"""Launch Celery workers and producers with OpenTelemetry configured before any user code runs."""

__version__ = "0.1.0"
