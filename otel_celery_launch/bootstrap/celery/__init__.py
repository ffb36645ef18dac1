"""Celery: the instrumentation and the launcher's own hooks (:mod:`.hooks`), the spans of failed
publishes (:mod:`.publish`), and Celery's metrics (:mod:`.metrics`)."""
