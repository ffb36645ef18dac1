"""Per-task cost in one process: Celery's tracer on a trivial task, bare and under each launcher.

Each runner runs ``bench/programs/trivial_tasks.py`` (20,000 tasks through the tracer a worker
uses, no broker), with a live OTLP/gRPC receiver taking what is exported: bare;
otel-celery-launch with its defaults (traces and metrics); otel-celery-launch with metrics
off; opentelemetry-instrument with its defaults (traces, metrics, logs exporters ``otlp``
except logs, which it leaves off). Runs are interleaved round by round; medians of µs per
task, and what each launcher adds to bare, are printed; JSON written.

    .venv/bin/python bench/task_cost.py [--rounds 5] [--tasks 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from common import RESULTS, RUNNERS  # also puts the repository on sys.path
from tests.otlp_receiver import Receiver
from tests.processes import clean_env

PROGRAM = Path(__file__).parent / "programs" / "trivial_tasks.py"
VARIANTS = {
    "bare": (RUNNERS["bare"], {}),
    "otel-celery-launch": (RUNNERS["otel-celery-launch"], {}),
    "otel-celery-launch, metrics off": (RUNNERS["otel-celery-launch"], {"OTEL_METRICS_EXPORTER": "none"}),
    "opentelemetry-instrument": (RUNNERS["opentelemetry-instrument"], {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--json", default=str(RESULTS / "task_cost.json"))
    args = parser.parse_args()
    receiver = Receiver().start()
    endpoint = {"OTEL_SERVICE_NAME": "bench-task-cost", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.grpc_port}"}
    timings: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (runner, extra) in VARIANTS.items():
            receiver.clear()
            env = clean_env(**({} if name == "bare" else endpoint), **extra)
            done = subprocess.run([*runner, "python", str(PROGRAM), str(args.tasks)], env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr}")
            timings[name].append(float(done.stdout.split()[-1]))
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
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "tasks": args.tasks, "results": results}, indent=2))


if __name__ == "__main__":
    main()
