"""Start-up cost: bare Python, under otel-celery-launch, under opentelemetry-instrument.

All three run the same program, interleaved round by round so that machine noise hits each
alike; both launchers export traces over OTLP/gRPC to the same endpoint (nothing needs to
listen: no span is exported by these programs). Every installed instrumentation counts:
``opentelemetry-instrument`` imports them all at start, the launcher those of the libraries
the program imports. Prints a table of medians and the instrumentations installed; writes JSON.

    .venv/bin/python bench/startup.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from importlib.metadata import entry_points
from pathlib import Path

from common import BIN, RESULTS, RUNNERS, otlp_env

PROGRAMS = {
    "python -c pass": ["python", "-c", "pass"],
    "import celery + opentelemetry": ["python", "-c", "from celery import Celery; from opentelemetry import trace"],
    "import flask": ["python", "-c", "import flask"],
}
OTLP = otlp_env("bench", "http://127.0.0.1:4317")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", default=str(RESULTS / "startup.json"))
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | OTLP
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    times: dict[tuple[str, str], list[float]] = {(p, r): [] for p in PROGRAMS for r in RUNNERS}
    for _ in range(args.rounds):
        for program, command in PROGRAMS.items():
            for runner, prefix in RUNNERS.items():
                start = time.perf_counter()
                subprocess.run(prefix + command, env=env, check=True, stdout=subprocess.DEVNULL)
                times[(program, runner)].append(time.perf_counter() - start)
    results = []
    installed = sorted(point.name for point in entry_points(group="opentelemetry_instrumentor"))
    print(f"instrumentations installed: {', '.join(installed)}")
    print(f"start-up, median of {args.rounds} interleaved runs (ms)")
    print(f"{'program':32} {'bare':>8} {'launcher':>10} {'otel-instrument':>16} {'launcher/otel':>14}")
    for program in PROGRAMS:
        medians = {runner: statistics.median(times[(program, runner)]) * 1000 for runner in RUNNERS}
        ratio = medians["otel-celery-launch"] / medians["opentelemetry-instrument"]
        print(f"{program:32} {medians['bare']:8.1f} {medians['otel-celery-launch']:10.1f} "
              f"{medians['opentelemetry-instrument']:16.1f} {ratio:14.2f}")
        results.append({"program": program, "median_ms": medians, "launcher_over_instrument": ratio})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "instrumentations": installed, "results": results}, indent=2))


if __name__ == "__main__":
    main()
