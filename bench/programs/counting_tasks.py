"""The benchmarks' worker app: one trivial task that leaves one byte in a shared file.

A run is counted by the file's size, read with one ``stat``: no directory of markers that the
worker grows while the benchmark lists it, which made the file system, not Celery, part of
what was measured. Each pool process keeps the file open (appends are atomic across processes).
"""

import os

from celery import Celery

import sdk_floor

app = Celery("counting_tasks", broker=os.environ["CELERY_BROKER_URL"])
app.conf.task_ignore_result = True
_opened: dict[int, int] = {}  # pid: descriptor
sdk_floor.install_if_asked()


@app.task
def count(path: str) -> None:
    fd = _opened.get(os.getpid())
    if fd is None:
        fd = _opened[os.getpid()] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(fd, b".")
