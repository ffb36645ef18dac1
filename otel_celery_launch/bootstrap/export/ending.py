"""What a process of the program does as it ends, once: its last metrics, what its connection still holds,
and, for a program whose exit may end every process of its namespace (PID 1, or the child of an init
such as ``docker run --init``'s, which exits with it), the sidecar's drain, waited for.

Run by atexit; by Celery's ``worker_process_shutdown`` for prefork children, which leave
through ``os._exit``; and as the threads of other forked children end (multiprocessing's).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable

from otel_celery_launch.bootstrap.export.channel import Channel
from otel_celery_launch.handoff import Plan

FINISH_TIMEOUT = 0.2  # seconds an ending process waits for the sidecar to take what its connection still holds
_channel: Channel | None = None
_exit_timeout = 2.0
_main_pid = 0
_last_steps: list[Callable[[], None]] = []
_ended_in = 0


def channel(plan: Plan) -> Channel:
    """The process's one connection to the sidecar (spans, metrics and logs share it)."""
    global _channel, _exit_timeout, _main_pid
    if _channel is None:
        _channel, _exit_timeout, _main_pid = Channel(plan.sidecar, plan.main_pid), plan.batch.exit_timeout, plan.main_pid
        atexit.register(process_ending)
        os.register_at_fork(after_in_child=_when_its_threads_end)
    return _channel


def _when_its_threads_end() -> None:
    """A forked child that leaves through multiprocessing's bootstrap (``os._exit`` after ``threading._shutdown``,
    no atexit) hands its buffer over there; ``threading._register_atexit`` is what ``concurrent.futures`` uses too."""
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(process_ending)
        except RuntimeError:  # the interpreter is shutting down
            pass


def ends_handing_over() -> None:
    """This process (a Celery pool process) is known to run :func:`process_ending` as it leaves: its writes may wait for each other."""
    if _channel is not None:
        _channel.coalesce()


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
    if 1 in (os.getpid(), os.getppid()) and os.getpid() == _main_pid:
        _channel.flush(_exit_timeout + 0.5)
