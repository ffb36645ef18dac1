"""Run as ``python -m gevent.monkey gevent_script.py``: gevent's runner patches, then runs this."""

from celery import Celery

import report

app = Celery("gevent_script", broker="memory://")


@app.task
def noop() -> None:
    pass


noop.delay()
report.report()
