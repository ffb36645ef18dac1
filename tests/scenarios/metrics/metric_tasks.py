"""Tasks that succeed, fail, retry, wait and log; a declared queue that no worker consumes."""

import os

from celery import Celery
from celery.utils.log import get_task_logger
from kombu import Queue

QUEUE, IDLE = os.environ["TEST_QUEUE"], os.environ["TEST_IDLE_QUEUE"]
app = Celery("metric_tasks", broker=os.environ["CELERY_BROKER_URL"])
app.conf.task_default_queue = QUEUE
app.conf.task_queues = (Queue(QUEUE), Queue(IDLE))
log = get_task_logger(__name__)


@app.task
def ok() -> int:
    return 1


@app.task
def boom() -> None:
    raise ValueError("boom")


@app.task(bind=True, max_retries=2)
def flaky(self) -> str:
    if self.request.retries < 2:
        raise self.retry(countdown=0)
    return "third time"


@app.task
def chatty(n: int) -> None:
    log.info("task logger line %d", n)
    print(f"printed line {n}")
