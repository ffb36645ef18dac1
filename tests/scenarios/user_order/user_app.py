"""An application module as users write one."""

from celery import Celery

app = Celery("user_app", broker="memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y
