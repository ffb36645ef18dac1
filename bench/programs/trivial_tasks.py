"""Run a trivial task N times through Celery's own tracer, in this process, as a worker's pool does; print µs per task.

Run bare or under a launcher by bench/task_cost.py. No broker: the tracer is what a worker
calls for each message, signals and all (prerun, postrun, success), so every hook that a
launcher connects to them runs; spans go to whatever exporter the launcher set up.
"""

import sys
import time
import uuid

from celery import Celery
from celery.app.trace import build_tracer

import sdk_floor

app = Celery("bench", broker="memory://", set_as_current=True)
app.conf.task_ignore_result = True
sdk_floor.install_if_asked()


@app.task
def noop() -> int:
    return 1


def main() -> None:
    count, warm = int(sys.argv[1]), 500
    task = app.tasks[noop.name]  # the task itself, as a worker looks it up (``noop`` is a lazy proxy)
    trace = build_tracer(task.name, task, app=app, hostname="bench@localhost")
    ids = [str(uuid.uuid4()) for _ in range(count + warm)]
    request = {"delivery_info": {"routing_key": "celery", "exchange": "", "priority": 0, "redelivered": False},
               "headers": {}, "hostname": "bench@localhost", "task": noop.name}
    for task_id in ids[:warm]:
        trace(task_id, (), {}, {**request, "id": task_id})
    start = time.perf_counter()
    for task_id in ids[warm:]:
        trace(task_id, (), {}, {**request, "id": task_id})
    print(f"{(time.perf_counter() - start) / count * 1e6:.2f}")


main()
