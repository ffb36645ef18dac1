"""Start the sidecar just before exec, without waiting for it.

The launcher binds the sidecar's socket itself, so the program can connect from its first
moment (connections wait in the backlog until the sidecar, still starting, accepts them),
and hands the socket, a pidfd of its own process (which becomes the program's) and, through
a pipe, the plan with its secrets to a fresh ``python -I -m otel_celery_launch.sidecar``.
Forked twice, in a session of its own: it is not the program's child (the program never
sees it exit), and the program's signals and process group are not its.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import asdict, replace

from otel_celery_launch import wire
from otel_celery_launch.handoff import ENV_VAR, Plan

_PIPE_SIZE = 1 << 20  # the plan crosses in one write that never waits for the sidecar to read


def start_sidecar(plan: Plan, environ: Mapping[str, str]) -> Plan:
    """The plan that names the sidecar's socket, for the program."""
    name = wire.ADDRESS_PREFIX + os.urandom(12).hex()
    plan = replace(plan, sidecar=name, main_pid=os.getpid())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(wire.socket_address(name))
    listener.listen(1024)
    pidfd = os.pidfd_open(os.getpid())
    reading, writing = os.pipe()
    fcntl.fcntl(writing, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    payload = json.dumps({"plan": asdict(plan), "name": name}).encode()
    middle = os.fork()
    if middle == 0:
        _become_sidecar(reading, pidfd, listener.fileno(), plan.exporter.protocol == "console", environ)
    os.close(reading)
    os.write(writing, payload)
    os.close(writing)
    listener.close()
    os.close(pidfd)
    os.waitpid(middle, 0)
    return plan


def _become_sidecar(reading: int, pidfd: int, listener: int, keeps_stdout: bool, environ: Mapping[str, str]) -> None:
    """In the first fork: a new session, a second fork, and there exec the sidecar. Never returns."""
    try:
        os.setsid()
        if os.fork() == 0:
            # first out of the way, so that no dup2 below overwrites a descriptor still to be moved
            reading, pidfd, listener = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (reading, pidfd, listener))
            os.dup2(reading, 0)
            if not keeps_stdout:  # its stdout is the program's; spans printed on the console need it
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            os.dup2(pidfd, 3)
            os.dup2(listener, 4)
            os.closerange(5, os.sysconf("SC_OPEN_MAX"))  # descriptors the program inherited are not the sidecar's to hold open
            env = {key: value for key, value in environ.items() if key != ENV_VAR}
            os.execve(sys.executable, [sys.executable, "-I", "-m", "otel_celery_launch.sidecar"], env)
    finally:
        os._exit(0)
