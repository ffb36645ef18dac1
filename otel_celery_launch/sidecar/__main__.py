"""``python -I -m otel_celery_launch.sidecar``: started by the launcher, never by hand.

Standard input carries the plan with its secrets, the socket's name and the program's PID;
descriptor 3 is a pidfd of the program's main process, descriptor 4 the socket, bound and listening.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from otel_celery_launch.handoff import Plan
from otel_celery_launch.sidecar.server import serve

NICENESS = 10  # export is background work: where cores are short, the program's processes and its broker go first


def main() -> None:
    # The program's signals are not for the sidecar: it ends when the program has ended.
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTSTP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    os.nice(NICENESS)
    handed = json.loads(sys.stdin.buffer.read())
    plan = Plan.from_json(handed["plan"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if plan.exporter.protocol != "console":  # the program's stdout is not the sidecar's to hold open: a $(...) ends with the program
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    serve(plan, handed["name"], pidfd=3, listener=socket.socket(fileno=4))


main()
