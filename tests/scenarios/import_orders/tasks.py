"""The application module: an app and its tasks."""

import os

import probe  # counts module executions from here on (in a worker: after Celery's own imports)
from celery import Celery

app = Celery("import_orders", broker=os.environ["CELERY_BROKER_URL"], backend=os.environ["CELERY_RESULT_BACKEND"])


@app.task(name="import_orders.add")
def add(x: int, y: int = 0) -> int:
    return x + y


@app.task(name="import_orders.report")
def report() -> dict:
    return probe.report(add)
