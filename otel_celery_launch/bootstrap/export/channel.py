"""One process's side of the hand-off: a non-blocking Unix stream connection to the sidecar, made again after a fork.

Sending never waits: a message the connection cannot take at once waits in a small
buffer of its own for the next send, and past that bound it is dropped and counted (the
count travels with the next message, for the sidecar to report). Threads of one process
share the connection under a real lock, held only for a non-blocking ``send``, so neither a
gevent or eventlet switch nor a fork can leave it held.
"""

from __future__ import annotations

import _socket  # the C socket type: gevent and eventlet patch ``socket.socket``, and a green send could yield
import _thread
import os
import time
from typing import Any

from otel_celery_launch import wire
from otel_celery_launch.bootstrap.diagnostics import logger

PENDING_LIMIT = 4 << 20  # bytes a process holds while the sidecar reads slower than it sends
RECONNECT_PAUSE = 1.0  # seconds between two tries to reach a sidecar that was not there


class Channel:
    def __init__(self, name: str, main_pid: int) -> None:
        self._address = wire.socket_address(name)
        self._main_pid = main_pid  # the program's main process: it alone says the sidecar is gone
        self._gone_said = False
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """In a new process: its own connection, lock and counts (the parent's are the parent's to report)."""
        self._lock = _thread.allocate_lock()
        self._sock: Any = None
        self._pending = b""
        self._refused_at = 0.0
        self._dropped = dict.fromkeys(wire.KINDS, 0)

    def send(self, kind: str, items: list[Any]) -> None:
        """Hand ``items`` over now; if the sidecar cannot take them, count them for its next report."""
        with self._lock:
            try:
                frame = wire.pack(kind, os.getpid(), self._dropped[kind], items)
            except ValueError:  # a value marshal cannot write
                self._dropped[kind] += len(items)
                return
            if self._connected() is None or len(self._pending) + len(frame) > PENDING_LIMIT:
                self._dropped[kind] += len(items)
                return
            self._dropped[kind] = 0
            self._pending += frame
            self._write()

    def _connected(self) -> Any:
        if self._sock is None and time.monotonic() - self._refused_at >= RECONNECT_PAUSE:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
            try:
                sock.connect(self._address)
            except OSError:
                sock.close()
                self._lost()
            else:
                self._sock = sock
        return self._sock

    def _write(self) -> None:
        try:
            sent = self._sock.send(self._pending, _socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        except OSError:  # the sidecar went away
            self._sock.close()
            self._sock, self._pending = None, b""
            self._lost()
            return
        self._pending = self._pending[sent:]

    def _lost(self) -> None:
        self._refused_at = time.monotonic()
        if self._main_pid in (0, os.getpid()) and not self._gone_said:
            self._gone_said = True
            logger.warning("otel-celery-launch: warning: the export sidecar cannot be reached; telemetry is dropped and the work runs on")

    def finish(self, timeout: float) -> None:
        """As the process ends: what waits in its own buffer goes out, waiting at most ``timeout``."""
        with self._lock:
            if self._sock is not None and self._pending:
                self._sock.settimeout(timeout)
                try:
                    self._sock.sendall(self._pending, _socket.MSG_NOSIGNAL)
                    self._pending = b""
                except OSError:
                    pass
                self._sock.setblocking(False)

    def flush(self, timeout: float) -> bool:
        """Ask the sidecar to export what it holds now, and wait at most ``timeout`` for its answer.

        For a program that is PID 1 in a container: its exit ends every process of the namespace.
        """
        with self._lock:
            if self._connected() is None:
                return False
            self._pending += wire.pack(wire.FLUSH, os.getpid(), 0, [])
            sock = self._sock
            sock.settimeout(timeout)  # blocking from here on: this process is leaving
            try:
                sock.sendall(self._pending, _socket.MSG_NOSIGNAL)
                self._pending = b""
                return sock.recv(1) == b"\1"
            except OSError:
                return False
