"""What the benchmarks share: the three ways to run a command, their OTLP settings, the broker.

The benchmarks borrow the test suite's OTLP receiver and process helpers, so they run from
the repository with the test dependencies installed (``bash .ci/setup``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = Path(__file__).parent / "results"
BROKER = "redis://127.0.0.1:6379/11"
RUNNERS = {
    "bare": [],
    "otel-celery-launch": [str(BIN / "otel-celery-launch"), "--"],
    "opentelemetry-instrument": [str(BIN / "opentelemetry-instrument")],
}
FLOOR = "SDK span alone (floor)"  # bare, the program starting and ending one SDK span a run itself
FLOOR_ENV = {"BENCH_SDK_FLOOR": "1"}  # read by bench/programs/sdk_floor.py


def otlp_env(service: str, endpoint: str, protocol: str = "grpc") -> dict[str, str]:
    """The same tracing settings for both launchers: traces only, over OTLP."""
    return {
        "OTEL_SERVICE_NAME": service,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }


def purge_queue() -> Celery:
    """An untraced producer on the benchmark broker, its default queue emptied."""
    app = Celery("bench", broker=BROKER)
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("celery")
    return app
