"""``otel-celery-launch demo``: a producer and a worker under the launcher, and the trace they make.

Everything is embedded: the broker is a folder (kombu's filesystem transport) and the
collector is an OTLP/HTTP receiver in this process. Nothing to install or start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from otel_celery_launch.view.collector import LocalCollector, Span
from otel_celery_launch.view.render import render_trace

APP_DIR = Path(__file__).parent / "app"
RUN_SPAN = "run/tasks.charge"
TIMEOUT = 12.0


def _launch(receiver: LocalCollector, service: str, command: list[str], env: dict[str, str], log) -> subprocess.Popen[bytes]:
    launcher = [sys.executable, "-m", "otel_celery_launch", "--service-name", service,
                "--exporter-protocol", "http/protobuf", "--exporter-endpoint", receiver.http_url,
                "--batch-schedule-delay", "100ms", "--"]
    return subprocess.Popen(launcher + command, cwd=APP_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_demo() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="otel-celery-demo-") as folder, LocalCollector() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CELERY_"))}
        env["DEMO_BROKER_DIR"] = folder
        log_path = Path(folder, "processes.log")
        print(f"embedded collector at {receiver.http_url}, broker in {folder}")
        with open(log_path, "wb") as log:
            worker = _launch(receiver, "demo-worker", [sys.executable, "-m", "celery", "-q", "-A", "tasks", "worker", "-P", "solo",
                                                       "--without-gossip", "--without-mingle", "--without-heartbeat"], env, log)
            producer = _launch(receiver, "demo-producer", [sys.executable, "producer.py"], env, log)
            print("producer: checkout span with baggage tenant_id=acme_corp, request_source=api_gateway; charge.delay()")
            producer.wait(TIMEOUT)
            arrived = receiver.wait_for_span(RUN_SPAN, TIMEOUT - (time.monotonic() - started))
            worker.send_signal(signal.SIGTERM)
            worker.wait(TIMEOUT)
        if not arrived or producer.returncode != 0:
            print("the worker's span never arrived; what the processes said:\n" + log_path.read_text(errors="replace"))
            return 1
        with receiver.arrived:
            spans = list(receiver.received.spans)
    print(render_tree(spans))
    print(f"done in {time.monotonic() - started:.1f}s")
    return 0


def render_tree(spans: list[Span]) -> str:
    lines = ["", render_trace(spans)]
    run = next((span for span in spans if span.name == RUN_SPAN), None)
    if run is not None:
        lines.append(f"\nbaggage the worker saw: {run.attributes.get('demo.baggage_seen') or '(none)'}")
        lines.append("one trace across producer and worker: " + ("yes" if len({s.trace_id for s in spans}) == 1 else "NO"))
    return "\n".join(lines)
