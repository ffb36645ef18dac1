"""Cost of child recycling and shutdown with the collector up, refusing, slow and hung.

A prefork worker (``-c 2 --max-tasks-per-child 5``) runs trivial tasks on the local Redis;
it is started bare, under otel-celery-launch and under opentelemetry-instrument, against
a collector that is up (the test suite's OTLP receiver), one that refuses connections,
one that answers every export after 3 s, and one that accepts and never answers. For each, the table gives the time from the first
publish to the last task done, the time from SIGTERM to exit, and the run spans the
collector got. Runs are interleaved round by round; medians are printed, JSON written.

    .venv/bin/python bench/outage.py [--rounds 3] [--tasks 100] [--protocol grpc] [--all-signals]

``--all-signals`` turns metrics (every second) and log export on for both launchers.
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

from common import BROKER, RESULTS, RUNNERS, otlp_env, purge_queue  # also puts the repository on sys.path
from tests.otlp_receiver import Receiver, SilentCollector
from tests.processes import SCENARIOS, Output, clean_env, free_port, poll

COLLECTORS = ("up", "refusing", "slow", "hung")
SLOW = 3.0  # seconds the slow collector takes to answer


def run_once(runner: str, collector: str, endpoints: dict[str, str], receiver: Receiver, args: argparse.Namespace) -> dict[str, float]:
    env = clean_env(CELERY_BROKER_URL=BROKER)
    if runner != "bare":
        env |= otlp_env("bench-outage", endpoints[collector], args.protocol)
        if args.all_signals:
            env |= {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    command = RUNNERS[runner] + ["celery", "-A", "tasks", "worker", "-P", "prefork", "-c", "2", "--max-tasks-per-child", "5",
                                 "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    app = purge_queue()
    receiver.clear()
    worker = subprocess.Popen(command, cwd=SCENARIOS / "plain", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    output = Output(worker)
    with tempfile.TemporaryDirectory() as markers:
        app.send_task("tasks.record", args=(markers, -1))  # the worker is ready once this has run
        poll(lambda: os.listdir(markers), 60, "the worker to start")
        os.remove(os.path.join(markers, os.listdir(markers)[0]))
        start = time.perf_counter()
        for n in range(args.tasks):
            app.send_task("tasks.record", args=(markers, n))
        poll(lambda: len(os.listdir(markers)) >= args.tasks, 300, "the tasks to run", interval=0.01)
        work = time.perf_counter() - start
    start = time.perf_counter()
    worker.send_signal(signal.SIGTERM)
    worker.wait(120)
    shutdown = time.perf_counter() - start
    output.finish()
    spans = 0
    if collector == "up" and runner != "bare":
        deadline = time.monotonic() + 3  # spans still in flight after exit: give them a moment
        while time.monotonic() < deadline and len(receiver.named("run/tasks.record")) < args.tasks + 1:
            time.sleep(0.05)
        spans = len(receiver.named("run/tasks.record"))
    return {"work_s": work, "shutdown_s": shutdown, "run_spans": spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--protocol", choices=("grpc", "http/protobuf"), default="grpc")
    parser.add_argument("--all-signals", action="store_true", help="metrics and logs too, for both launchers")
    parser.add_argument("--json", default=str(RESULTS / "outage.json"))
    args = parser.parse_args()
    receiver = Receiver().start()
    slow = Receiver().start()
    slow.delay = SLOW
    silent = SilentCollector()

    def port(of: Receiver) -> int:
        return of.grpc_port if args.protocol == "grpc" else of.http_port

    endpoints = {"up": f"http://127.0.0.1:{port(receiver)}", "refusing": f"http://127.0.0.1:{free_port()}",
                 "slow": f"http://127.0.0.1:{port(slow)}", "hung": f"http://127.0.0.1:{silent.port}"}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for collector in COLLECTORS:
            for runner in RUNNERS:
                if runner == "bare" and collector != "up":
                    continue  # no collector involved
                runs.setdefault((runner, collector), []).append(run_once(runner, collector, endpoints, receiver, args))
    receiver.stop()
    slow.stop()
    silent.close()
    bare_work = statistics.median(r["work_s"] for r in runs[("bare", "up")])
    signals = "traces, metrics and logs" if args.all_signals else "traces"
    print(f"prefork -c 2 --max-tasks-per-child 5, {args.tasks} tasks, OTLP/{args.protocol} ({signals}), median of {args.rounds} rounds")
    print(f"{'runner':26} {'collector':10} {'work s':>8} {'x bare':>7} {'shutdown s':>11} {'run spans':>10}")
    results = []
    for (runner, collector), measured in runs.items():
        medians = {key: statistics.median(run[key] for run in measured) for key in measured[0]}
        spans = f"{medians['run_spans']:.0f}/{args.tasks + 1}" if collector == "up" and runner != "bare" else "-"
        print(f"{runner:26} {collector:10} {medians['work_s']:8.2f} {medians['work_s'] / bare_work:7.2f} "
              f"{medians['shutdown_s']:11.2f} {spans:>10}")
        results.append({"runner": runner, "collector": collector, **medians})
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "tasks": args.tasks, "protocol": args.protocol, "signals": signals,
                                           "results": results}, indent=2))


if __name__ == "__main__":
    main()
