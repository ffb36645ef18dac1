"""Worker throughput and memory: bare, under otel-celery-launch (traces; traces and metrics), under opentelemetry-instrument.

A worker (solo, or prefork -c 2) consumes a trivial task (``bench/programs/counting_tasks.py``)
from the local Redis while a live
OTLP/gRPC receiver takes the spans. For each runner and pool: tasks per second over a
burst published by this script (untraced), and the resident memory of the worker's
processes once warm, and the run spans the receiver got. The launcher runs twice: traces only, as
opentelemetry-instrument is set, and with metrics on, exported every second, which gives
what metrics add per task; and the SDK floor: bare, the program making one SDK span a run itself
(``bench/programs/sdk_floor.py``). Runs are interleaved round by round; medians printed, JSON written.

    .venv/bin/python bench/worker_cost.py [--rounds 3] [--tasks 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import BROKER, FLOOR, FLOOR_ENV, RESULTS, RUNNERS, otlp_env, purge_queue  # also puts the repository on sys.path
from tests.otlp_receiver import Receiver
from tests.processes import Output, clean_env, poll

POOLS = {"solo": ["-P", "solo"], "prefork": ["-P", "prefork", "-c", "2"]}
WITH_METRICS = "otel-celery-launch +metrics"
PROGRAMS = Path(__file__).parent / "programs"
TASK, WARM = "counting_tasks.count", 8  # the benchmark's trivial task; tasks run before timing, to warm every process
WORKER_RUNNERS = {**RUNNERS, WITH_METRICS: RUNNERS["otel-celery-launch"], FLOOR: RUNNERS["bare"]}
UNTRACED = ("bare", FLOOR)  # runners whose spans, if any, are not exported


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def run_once(runner: str, pool: str, receiver: Receiver, tasks: int, defaults: bool = False) -> dict[str, float]:
    """One worker's run; ``defaults``: each launcher with its own defaults, only the endpoint given."""
    env = clean_env(CELERY_BROKER_URL=BROKER)
    if runner == FLOOR:
        env |= FLOOR_ENV
    elif runner != "bare" and defaults:
        env |= {"OTEL_SERVICE_NAME": "bench-worker", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.grpc_port}"}
    elif runner != "bare":
        env |= otlp_env("bench-worker", f"http://127.0.0.1:{receiver.grpc_port}")
    if runner == WITH_METRICS:
        env |= {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    command = WORKER_RUNNERS[runner] + ["celery", "-A", "counting_tasks", "worker", *POOLS[pool], "-l", "warning",
                                        "--without-gossip", "--without-mingle", "--without-heartbeat"]
    app = purge_queue()
    worker = subprocess.Popen(command, cwd=PROGRAMS, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    output = Output(worker)
    with tempfile.TemporaryDirectory() as directory:
        counts = os.path.join(directory, "counts")  # one byte a task run

        def ran() -> int:
            return os.stat(counts).st_size if os.path.exists(counts) else 0

        for _ in range(WARM):  # warm every pool process: imports, exporter, connections
            app.send_task(TASK, args=(counts,))
        poll(lambda: ran() >= WARM, 60, "the worker to warm up")
        processes = [worker.pid, *children(worker.pid)]
        memory = sum(rss_mib(pid) for pid in processes)
        start = time.perf_counter()
        for _ in range(tasks):
            app.send_task(TASK, args=(counts,))
        poll(lambda: ran() >= WARM + tasks, 300, "the tasks to run", interval=0.005)
        elapsed = time.perf_counter() - start
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    output.finish()
    spans = 0
    if runner not in UNTRACED:  # spans still in flight after exit: give them a moment
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(receiver.named(f"run/{TASK}")) < tasks + WARM:
            time.sleep(0.05)
        spans = len(receiver.named(f"run/{TASK}"))
    return {"tasks_per_s": tasks / elapsed, "rss_mib": memory, "processes": len(processes), "run_spans": spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--json", default=str(RESULTS / "worker_cost.json"))
    args = parser.parse_args()
    receiver = Receiver().start()
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for pool in POOLS:
            for runner in WORKER_RUNNERS:
                receiver.clear()
                runs.setdefault((pool, runner), []).append(run_once(runner, pool, receiver, args.tasks))
    receiver.stop()
    print(f"{args.tasks} trivial tasks on Redis, spans over OTLP/gRPC to a live receiver, median of {args.rounds} rounds")
    print(f"{'pool':8} {'runner':26} {'tasks/s':>8} {'x bare':>7} {'RSS MiB':>8} {'+MiB/process':>13} {'run spans':>11}")
    results = []
    for (pool, runner), measured in runs.items():
        medians = {key: statistics.median(run[key] for run in measured) for key in measured[0]}
        bare = {key: statistics.median(run[key] for run in runs[(pool, "bare")]) for key in measured[0]}
        added = (medians["rss_mib"] - bare["rss_mib"]) / medians["processes"]
        spans = "-" if runner in UNTRACED else f"{medians['run_spans']:.0f}/{args.tasks + WARM}"
        print(f"{pool:8} {runner:26} {medians['tasks_per_s']:8.0f} {medians['tasks_per_s'] / bare['tasks_per_s']:7.2f} "
              f"{medians['rss_mib']:8.1f} {added:13.1f} {spans:>11}")
        results.append({"pool": pool, "runner": runner, **medians, "added_mib_per_process": added})
    for pool in POOLS:
        traced, metered = (statistics.median(run["tasks_per_s"] for run in runs[(pool, name)]) for name in ("otel-celery-launch", WITH_METRICS))
        cost = (1 / metered - 1 / traced) * 1e6
        print(f"{pool}: metrics add {cost:.0f} µs per task ({traced:.0f} -> {metered:.0f} tasks/s)")
        results.append({"pool": pool, "metrics_added_us_per_task": cost})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "tasks": args.tasks, "results": results}, indent=2))


if __name__ == "__main__":
    main()
