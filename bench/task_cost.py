"""Per-task cost in one process: Celery's tracer on a trivial task, bare and under each launcher.

Each runner runs ``bench/programs/trivial_tasks.py`` (20,000 tasks through the tracer a worker
uses, no broker), with a live OTLP/gRPC receiver taking what is exported: bare;
the SDK floor (bare, the program itself starting and ending one SDK span a run, nothing else:
``bench/programs/sdk_floor.py``); otel-celery-launch with its defaults (traces and metrics);
otel-celery-launch with metrics off; opentelemetry-instrument with its defaults (traces, metrics,
logs exporters ``otlp`` except logs, which it leaves off). Runs are interleaved round by round;
medians of µs per task, and what each adds to bare, are printed; JSON written.

Then, end to end, the throughput of a solo and a prefork ``-c 2`` worker on Redis (trivial
tasks published by this script, untraced), bare, the SDK floor, and under each launcher with its
defaults (only the endpoint given), against bare (``bench/worker_cost.py`` does the runs).

    .venv/bin/python bench/task_cost.py [--rounds 5] [--tasks 20000] [--worker-rounds 3] [--worker-tasks 3000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from common import FLOOR, FLOOR_ENV, RESULTS, RUNNERS  # also puts the repository on sys.path
from worker_cost import POOLS, run_once
from tests.otlp_receiver import Receiver
from tests.processes import clean_env

PROGRAM = Path(__file__).parent / "programs" / "trivial_tasks.py"
VARIANTS = {
    "bare": (RUNNERS["bare"], {}),
    FLOOR: (RUNNERS["bare"], FLOOR_ENV),
    "otel-celery-launch": (RUNNERS["otel-celery-launch"], {}),
    "otel-celery-launch, metrics off": (RUNNERS["otel-celery-launch"], {"OTEL_METRICS_EXPORTER": "none"}),
    "opentelemetry-instrument": (RUNNERS["opentelemetry-instrument"], {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--worker-rounds", type=int, default=3)
    parser.add_argument("--worker-tasks", type=int, default=3000)
    parser.add_argument("--json", default=str(RESULTS / "task_cost.json"))
    args = parser.parse_args()
    receiver = Receiver().start()
    endpoint = {"OTEL_SERVICE_NAME": "bench-task-cost", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.grpc_port}"}
    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (runner, extra) in VARIANTS.items():
            receiver.clear()
            env = clean_env(**({} if runner == RUNNERS["bare"] else endpoint), **extra)
            done = subprocess.run([*runner, "python", str(PROGRAM), str(args.tasks)], env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr}")
            timings[name].append(float(done.stdout.split()[-1]))
    throughput: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.worker_rounds):
        for pool in POOLS:
            for runner in ("bare", FLOOR, "otel-celery-launch", "opentelemetry-instrument"):
                receiver.clear()
                run = run_once(runner, pool, receiver, args.worker_tasks, defaults=True)
                throughput.setdefault((pool, runner), []).append(run["tasks_per_s"])
    receiver.stop()
    bare = statistics.median(timings["bare"])
    instrument_added = statistics.median(timings["opentelemetry-instrument"]) - bare
    print(f"Celery's tracer on a trivial task, {args.tasks} tasks in one process, OTLP/gRPC receiver, median of {args.rounds} rounds")
    print(f"{'runner':34} {'µs/task':>8} {'added µs':>9} {'x instrument added':>19}")
    results = []
    for name, measured in timings.items():
        median = statistics.median(measured)
        added = median - bare
        ratio = f"{added / instrument_added:.2f}" if name != "bare" and instrument_added > 0 else "-"
        print(f"{name:34} {median:8.1f} {added:9.1f} {ratio:>19}")
        results.append({"runner": name, "us_per_task": median, "added_us": added, "runs": measured})
    print(f"\nWorker throughput, {args.worker_tasks} trivial tasks on Redis, each launcher with its defaults, median of {args.worker_rounds} rounds")
    print(f"{'pool':8} {'runner':28} {'tasks/s':>8} {'x bare':>7}")
    for (pool, runner), rates in throughput.items():
        rate, bare_rate = statistics.median(rates), statistics.median(throughput[(pool, "bare")])
        print(f"{pool:8} {runner:28} {rate:8.0f} {rate / bare_rate:7.2f}")
        results.append({"pool": pool, "runner": runner, "tasks_per_s": rate, "x_bare": rate / bare_rate, "runs": rates})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "tasks": args.tasks, "results": results}, indent=2))


if __name__ == "__main__":
    main()
