"""Cost of the trace-id processor per log line, and of a whole JSON line with and without it.

Runs in this process (no launcher needed): a real tracer provider with no exporter, a span
made current, then ``timeit`` over the processor alone and over a structlog JSON line
written to a null stream. Prints a table of the best of several repeats; writes JSON.

    .venv/bin/python bench/log_line.py [--number 200000]
"""

from __future__ import annotations

import argparse
import io
import json
import timeit
from pathlib import Path

import structlog
from opentelemetry.sdk.trace import TracerProvider

from otel_celery_launch.bootstrap.logs.ids import add_trace_ids


def _logger(with_ids: bool) -> structlog.BoundLogger:
    processors = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    processors += [add_trace_ids] if with_ids else []
    return structlog.wrap_logger(
        structlog.PrintLogger(io.StringIO()), processors=[*processors, structlog.processors.JSONRenderer()]
    )


def per_call(statement, number: int, repeat: int = 5) -> float:
    return min(timeit.repeat(statement, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "log_line.json"))
    args = parser.parse_args()
    tracer = TracerProvider().get_tracer("bench")
    plain, with_ids = _logger(False), _logger(True)
    results = {"processor outside a span": per_call(lambda: add_trace_ids(None, "info", {}), args.number)}
    with tracer.start_as_current_span("bench"):
        results["processor inside a span"] = per_call(lambda: add_trace_ids(None, "info", {}), args.number)
        results["JSON line without ids"] = per_call(lambda: plain.info("order paid", order=1), args.number // 10)
        results["JSON line with ids"] = per_call(lambda: with_ids.info("order paid", order=1), args.number // 10)
    print("per log line, best of 5 repeats (µs)")
    for name, micros in results.items():
        print(f"{name:28} {micros:8.3f}")
    print(f"{'added by the ids':28} {results['JSON line with ids'] - results['JSON line without ids']:8.3f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"micros_per_line": results}, indent=2))


if __name__ == "__main__":
    main()
