"""A plain Celery app with no OpenTelemetry code of its own: the launcher does it all."""

import os

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_BROKER_URL"])


@app.task
def record(marker_dir: str, n: int) -> int:
    """Leaves a file behind, so a test can count the tasks that really ran."""
    open(os.path.join(marker_dir, f"{n}.{os.getpid()}"), "w").close()
    return n
