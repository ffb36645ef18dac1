"""Tasks that log every way a Celery task can: structlog, the task logger, stdlib, print, warnings."""

import logging
import os
import warnings

import structlog
from celery import Celery
from celery.utils.log import get_task_logger

app = Celery("logging_tasks", broker=os.environ["CELERY_BROKER_URL"])
log = structlog.get_logger(__name__)
task_log = get_task_logger(__name__)
library_log = logging.getLogger("some.library")


@app.task
def chatty(n: int) -> int:
    log.info("structlog line", n=n)
    task_log.info("task logger line %d", n)
    task_log.info("own task id %d", n, extra={"task_id": "my-task"})
    library_log.warning("library line %d", n)
    print(f"print line {n}")
    warnings.warn(f"warning line {n}")
    return n


@app.task
def login(user: str, password: str = "") -> str:
    task_log.info("logged in %s", user)
    return f"session for {password}"
