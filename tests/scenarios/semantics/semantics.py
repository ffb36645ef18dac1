"""Tasks that use what real Celery applications use: retries, canvas, ETA, beat, nested publishes, failures.

Each task records the baggage it sees on its run span, so a test can check that it crossed.
"""

import logging
import os

from celery import Celery
from opentelemetry import baggage, trace

app = Celery("semantics", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])
app.conf.task_default_queue = os.environ["TEST_QUEUE"]
app.conf.beat_schedule = {"tick": {"task": "semantics.tick", "schedule": 1.0}}
log = logging.getLogger(__name__)


def note_baggage() -> None:
    trace.get_current_span().set_attribute("test.baggage", repr(sorted(baggage.get_all().items())))


@app.task(bind=True, max_retries=3)
def flaky(self) -> int:
    note_baggage()
    if self.request.retries < 2:
        raise self.retry(countdown=0.1)
    return self.request.retries


@app.task(bind=True, autoretry_for=(ValueError,), retry_kwargs={"max_retries": 3, "countdown": 0.1})
def auto_flaky(self) -> int:
    note_baggage()
    if self.request.retries < 2:
        raise ValueError("not yet")
    return self.request.retries


@app.task
def add(x: int, y: int) -> int:
    note_baggage()
    return x + y


@app.task
def total(values: list[int]) -> int:
    note_baggage()
    return sum(values)


@app.task
def outer() -> None:
    note_baggage()
    inner.delay()


@app.task
def inner() -> None:
    note_baggage()


@app.task
def fails() -> None:
    note_baggage()
    raise RuntimeError("boom")


@app.task
def tick() -> None:
    note_baggage()


@app.task(throws=(KeyError,))
def expected() -> None:
    """Fails in a way the task declares (Celery logs no traceback)."""
    note_baggage()
    raise KeyError("expected")


@app.task(time_limit=30, soft_time_limit=20)
def limited() -> int:
    note_baggage()
    return 1
