"""An application that logs its own ids and keeps its own root handler (Celery must not take root)."""

import logging
import os
import sys

import structlog
from celery import Celery
from celery.signals import after_setup_logger

app = Celery("own_logging_tasks", broker=os.environ["CELERY_BROKER_URL"])
app.conf.worker_hijack_root_logger = False

handler = logging.StreamHandler(sys.stdout)
handler.setFormatter(logging.Formatter("APP %(levelname)s %(name)s trace=%(trace_id)s %(message)s"))
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
log = structlog.get_logger("own")


@after_setup_logger.connect
def report_formatters(logger: logging.Logger, **_: object) -> None:
    print("APP formatters after Celery set up logging:", [type(h.formatter).__name__ for h in logger.handlers], flush=True)


@app.task
def own_ids(n: int) -> int:
    logging.getLogger("own.std").info("extra ids %d", n, extra={"trace_id": "my-trace", "span_id": "my-span", "task_id": "my-task"})
    logging.getLogger("own.std").info("launcher ids %d", n)
    log.info("structlog own ids", trace_id="my-trace", span_id="my-span", task_id="my-task", task_name="my-name")
    return n
