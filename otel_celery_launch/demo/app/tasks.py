"""The demo's Celery app: a broker made of files, so there is nothing to install or start."""

import os

from celery import Celery
from opentelemetry import baggage, trace

folder = os.environ["DEMO_BROKER_DIR"]
app = Celery("tasks", broker="filesystem://")
app.conf.update(
    broker_transport_options={"data_folder_in": folder, "data_folder_out": folder},
    worker_enable_remote_control=False,
    broker_connection_retry_on_startup=True,
)


@app.task
def charge(order_id: str) -> str:
    seen = ", ".join(f"{key}={value}" for key, value in baggage.get_all().items())
    trace.get_current_span().set_attribute("demo.baggage_seen", seen)
    return order_id
