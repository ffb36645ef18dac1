"""What a process of the program does as it ends, once: its last metrics, what its connection still holds,
and, for a program that is PID 1, the sidecar's drain (its exit ends every process of the namespace).

Run by atexit, and by Celery's ``worker_process_shutdown`` for prefork children, which leave
through ``os._exit``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable

from otel_celery_launch.bootstrap.export.channel import Channel
from otel_celery_launch.handoff import Plan

FINISH_TIMEOUT = 0.2  # seconds an ending process waits for the sidecar to take what its connection still holds
_channel: Channel | None = None
_exit_timeout = 2.0
_last_steps: list[Callable[[], None]] = []
_ended_in = 0


def channel(plan: Plan) -> Channel:
    """The process's one connection to the sidecar (spans, metrics and logs share it)."""
    global _channel, _exit_timeout
    if _channel is None:
        _channel, _exit_timeout = Channel(plan.sidecar, plan.main_pid), plan.batch.exit_timeout
        atexit.register(process_ending)
    return _channel


def before_ending(step: Callable[[], None]) -> None:
    """``step`` hands its last telemetry over as the process ends (metrics: one more collection)."""
    _last_steps.append(step)


def process_ending() -> None:
    global _ended_in
    if _channel is None or _ended_in == os.getpid():
        return
    _ended_in = os.getpid()
    for step in _last_steps:
        step()
    _channel.finish(FINISH_TIMEOUT)
    if os.getpid() == 1:
        _channel.flush(_exit_timeout + 0.5)
