"""Start-up cost: bare Python, under otel-celery-launch, under opentelemetry-instrument.

All runners run the same program, interleaved round by round so that machine noise hits each
alike; both launchers export traces, metrics and logs over OTLP/gRPC to the same endpoint with
their defaults otherwise (nothing needs to listen: these programs make no span), so the
launcher's start includes its export sidecar. The launcher is timed twice: on a first start
(its cache of validated settings emptied before each run) and on a start that finds the
outcome of the one before. Every installed instrumentation counts: ``opentelemetry-instrument``
imports them all at start, the launcher those of the libraries the program imports.

Two sets of instrumentations: this venv's (the test set: celery, flask, psycopg, redis,
requests) and a venv with the Celery instrumentation alone, made once under ``bench/.venvs``.
Prints a table of medians per set; writes JSON.

    .venv/bin/python bench/startup.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, RESULTS, ROOT

PROGRAMS = {
    "python -c pass": ["-c", "pass"],
    "import celery + opentelemetry": ["-c", "from celery import Celery; from opentelemetry import trace"],
}
OTLP = {"OTEL_SERVICE_NAME": "bench", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp"}
SOLO_VENV = ROOT / "bench" / ".venvs" / "celery-only"


def celery_only_venv() -> Path:
    """A venv with the launcher, opentelemetry-instrument and the Celery instrumentation alone."""
    if not (SOLO_VENV / "bin" / "opentelemetry-instrument").exists():
        subprocess.run([sys.executable, "-m", "venv", str(SOLO_VENV)], check=True)
        subprocess.run([str(SOLO_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        "-c", str(ROOT / "tests" / "constraints.txt"), "-e", str(ROOT), "opentelemetry-distro"], check=True)
    return SOLO_VENV / "bin"


def installed(bin_dir: Path) -> list[str]:
    code = "from importlib.metadata import entry_points; print(' '.join(sorted(p.name for p in entry_points(group='opentelemetry_instrumentor'))))"
    return subprocess.run([str(bin_dir / "python"), "-c", code], check=True, capture_output=True, text=True).stdout.split()


def measure(bin_dir: Path, rounds: int) -> dict[str, dict[str, float]]:
    python = str(bin_dir / "python")
    runners = {
        "bare": [python],
        "launcher, first start": [str(bin_dir / "otel-celery-launch"), "--", python],
        "launcher": [str(bin_dir / "otel-celery-launch"), "--", python],
        "opentelemetry-instrument": [str(bin_dir / "opentelemetry-instrument"), python],
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | OTLP
    base["PATH"] = f"{bin_dir}{os.pathsep}{base['PATH']}"
    times: dict[tuple[str, str], list[float]] = {(p, r): [] for p in PROGRAMS for r in runners}
    with tempfile.TemporaryDirectory() as kept:
        for _ in range(rounds):
            for program, arguments in PROGRAMS.items():
                for runner, prefix in runners.items():
                    with tempfile.TemporaryDirectory() as fresh:
                        env = base | {"XDG_CACHE_HOME": fresh if runner == "launcher, first start" else kept}
                        start = time.perf_counter()
                        subprocess.run(prefix + arguments, env=env, check=True, stdout=subprocess.DEVNULL)
                        times[(program, runner)].append(time.perf_counter() - start)
    return {program: {runner: statistics.median(times[(program, runner)]) * 1000 for runner in runners} for program in PROGRAMS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", default=str(RESULTS / "startup.json"))
    args = parser.parse_args()
    results = []
    for bin_dir in (celery_only_venv(), BIN):
        names = installed(bin_dir)
        medians = measure(bin_dir, args.rounds)
        print(f"\n{len(names)} instrumentation(s) installed: {', '.join(names)}; median of {args.rounds} interleaved runs (ms)")
        print(f"{'program':30} {'bare':>7} {'launcher':>9} {'first start':>12} {'otel-instrument':>16} {'ratio':>6} {'first':>6}")
        for program, row in medians.items():
            ratio = row["launcher"] / row["opentelemetry-instrument"]
            first = row["launcher, first start"] / row["opentelemetry-instrument"]
            print(f"{program:30} {row['bare']:7.1f} {row['launcher']:9.1f} {row['launcher, first start']:12.1f} "
                  f"{row['opentelemetry-instrument']:16.1f} {ratio:6.2f} {first:6.2f}")
            results.append({"instrumentations": names, "program": program, "median_ms": row,
                            "launcher_over_instrument": ratio, "first_start_over_instrument": first})
    print("\nratio: launcher / opentelemetry-instrument; first: the same for a first start")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"rounds": args.rounds, "results": results}, indent=2))


if __name__ == "__main__":
    main()
