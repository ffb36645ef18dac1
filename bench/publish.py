"""What ``.delay()`` pays for tracing: bare, under otel-celery-launch, under opentelemetry-instrument.

A producer process publishes trivial tasks to the local Redis (nobody consumes them; the
queue is purged) and times each ``.delay()`` itself, after a warm-up. Both launchers export
over OTLP/gRPC to a live receiver. Runs are interleaved; medians printed, JSON written.

    .venv/bin/python bench/publish.py [--rounds 5] [--publishes 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

from common import BROKER, RESULTS, RUNNERS, otlp_env, purge_queue  # also puts the repository on sys.path
from tests.otlp_receiver import Receiver
from tests.processes import SCENARIOS, clean_env

PRODUCER = """
import statistics, sys, time
from tasks import record
for _ in range(100):
    record.delay("/nowhere", 0)
times = []
for n in range({publishes}):
    start = time.perf_counter()
    record.delay("/nowhere", n)
    times.append(time.perf_counter() - start)
print(statistics.median(times) * 1e6)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--publishes", type=int, default=2000)
    parser.add_argument("--json", default=str(RESULTS / "publish.json"))
    args = parser.parse_args()
    receiver = Receiver().start()
    env = clean_env(CELERY_BROKER_URL=BROKER, **otlp_env("bench-producer", f"http://127.0.0.1:{receiver.grpc_port}"))
    micros: dict[str, list[float]] = {runner: [] for runner in RUNNERS}
    for _ in range(args.rounds):
        for runner, prefix in RUNNERS.items():
            code = PRODUCER.format(publishes=args.publishes)
            done = subprocess.run([*prefix, "python", "-c", code], cwd=SCENARIOS / "plain", env=env, capture_output=True,
                                  text=True, check=True)
            micros[runner].append(float(done.stdout.split()[-1]))
            purge_queue()
    receiver.stop()
    medians = {runner: statistics.median(values) for runner, values in micros.items()}
    print(f"median time of one .delay() to Redis, µs, median of {args.rounds} runs of {args.publishes}")
    print(f"{'runner':26} {'µs':>8} {'added':>8}")
    for runner, value in medians.items():
        print(f"{runner:26} {value:8.1f} {value - medians['bare']:8.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "publishes": args.publishes, "median_us": medians}, indent=2))


if __name__ == "__main__":
    main()
