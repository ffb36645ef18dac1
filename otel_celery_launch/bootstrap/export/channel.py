"""One process's side of the hand-off: a non-blocking Unix stream connection to the sidecar, made again after a fork.

Sending never waits, and costs one write only now and then: items that follow the last write
within ``COALESCE`` wait, as they are, for the next one, made by a flusher thread that does nothing
but write, so a busy process pays one system call and one ``marshal`` call, and wakes the sidecar
once, for many spans; items after a quiet spell are written at once. What the connection cannot
take at once waits in a buffer of the process, and past ``PENDING_LIMIT`` it is dropped and counted
(the count travels with the next message, for the sidecar to report; what is still undelivered as
the process ends is said by the process itself). Items join a queue per kind without a lock (an
atomic append, safe in a signal handler); threads share the connection under a real lock, held only
for a non-blocking ``send``, so neither a gevent or eventlet switch nor a fork can leave it held (this
module is imported at start, before any monkey-patching, and keeps the real lock, thread and sleep); a
signal handler that ends a span while its thread holds the lock leaves the span to the flusher. A
program may close every descriptor it has, ours included, and reuse the number: the connection is
checked to be ours before each write, and never closed otherwise.
"""

from __future__ import annotations

import _socket  # the C socket type: gevent and eventlet patch ``socket.socket``, and a green send could yield
import _thread
import os
import time
from collections import deque
from typing import Any

from otel_celery_launch import wire
from otel_celery_launch.bootstrap.diagnostics import logger

_allocate_lock, _start_new_thread, _sleep = _thread.allocate_lock, _thread.start_new_thread, time.sleep
PENDING_LIMIT = 4 << 20  # bytes a process holds while the sidecar reads slower than it sends
RECONNECT_PAUSE = 1.0  # seconds between two tries to reach a sidecar that was not there
LOCK_WAIT = 0.05  # longest a send waits for another thread's; then its items are left to that thread
COALESCE = 0.01  # seconds after a write during which items wait for the flusher's next write
HOLD_LIMIT = 1024  # items that may wait for the flusher; one more is written at once
STALLED_PAUSE = 1.0  # longest the flusher waits between two tries while the sidecar takes nothing
_NOUNS = {"spans": "spans", "metrics": "metrics", "logs": "log records"}


class Channel:
    def __init__(self, name: str, main_pid: int) -> None:
        self._address = wire.socket_address(name)
        self._main_pid = main_pid  # the program's main process: it alone says the sidecar is gone
        self._gone_said = False
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """In a new process: its own connection, lock and counts (the parent's are the parent's to report)."""
        self._lock = _allocate_lock()
        self._senders: set[int] = set()  # threads inside send, marked before they take the lock
        self._coalesce = os.getpid() == self._main_pid  # elsewhere only where the process's end is known (see coalesce)
        self._waiting: dict[str, deque[Any]] = {kind: deque() for kind in wire.KINDS}  # items not framed yet
        self._sock: Any = None
        self._identity = (0, 0)  # (device, inode) of our socket: a reused descriptor number is not ours
        self._pending = bytearray()
        self._frames: deque[tuple[int, str, int]] = deque()  # (bytes, kind, items and drops it carries) of each frame in _pending
        self._head = 0  # bytes of the first frame already written
        self._refused_at = 0.0
        self._dropped = dict.fromkeys(wire.KINDS, 0)
        self._written_at = 0.0  # when a write last went out
        self._nudge = _allocate_lock()  # released when bytes wait for the flusher
        self._nudge.acquire()
        self._flusher = False  # this process has started its flusher

    def coalesce(self) -> None:
        """Let this process's writes wait for each other: only in a process whose end hands its buffer over
        (the program's main process, through atexit; a Celery pool process, through ``worker_process_shutdown``).
        Other forked or spawned processes may leave through ``os._exit`` or a signal, and write at once."""
        self._coalesce = True

    def send(self, kind: str, items: list[Any]) -> None:
        """Hand ``items`` over now; if the sidecar cannot take them, count them for its next report.

        Items join their queue first (an atomic append: no lock, safe in a signal handler); while
        writes coalesce, that is all, and the flusher, running already, takes them.
        """
        waiting = self._waiting[kind]
        waiting.extend(items)
        if self._flusher and self._coalescing(len(waiting)):
            self._wake_flusher()
            return
        thread = _thread.get_ident()
        if thread in self._senders:  # a signal handler inside this thread's send: the items wait for the flusher
            self._wake_flusher()
            return
        self._senders.add(thread)
        try:
            if not self._lock.acquire(timeout=LOCK_WAIT):  # another thread's send, stuck: it, or the flusher, takes them
                self._wake_flusher()
                return
            try:
                self._write_or_leave(len(waiting))
            finally:
                self._lock.release()
        finally:
            self._senders.discard(thread)

    def _frame_held(self) -> None:
        """One message per kind of what waits, into the bytes to write."""
        for kind, waiting in self._waiting.items():
            if waiting:
                self._queue(kind, [waiting.popleft() for _ in range(len(waiting))])  # what joins meanwhile waits its turn

    def _wake_flusher(self) -> None:
        if self._flusher and self._nudge.locked():
            try:
                self._nudge.release()
            except RuntimeError:  # another thread woke it first
                pass

    def _coalescing(self, held: int) -> bool:
        """Whether ``held`` items of a kind may wait for the flusher: the last write was a moment ago."""
        return self._coalesce and held < HOLD_LIMIT and time.monotonic() - self._written_at < COALESCE

    def _write_or_leave(self, held: int) -> None:
        """Write now after a quiet spell; otherwise leave the items to the flusher, woken if it sleeps."""
        if self._coalescing(held) and self._has_flusher():
            self._wake_flusher()
            return
        self._written_at = time.monotonic()
        self._frame_held()
        if self._pending and not self._write():
            self._lost()
        elif self._pending and self._has_flusher():  # what the socket did not take: tried again soon,
            self._wake_flusher()  # not only at the next send, which may never come

    def _has_flusher(self) -> bool:
        """This process's flusher, started once; False if no thread can start (the interpreter is shutting down)."""
        if not self._flusher:
            try:
                _start_new_thread(self._flush_later, ())
            except RuntimeError:
                return False
            self._flusher = True
        return True

    def _flush_later(self) -> None:
        """The flusher: imports and logs nothing (this process may fork), and takes the lock only for non-blocking work.

        A connection found gone is counted and left for the next send to report.
        """
        nudge = self._nudge  # a fork replaces it; this thread does not live on in the child
        retry = 0.0  # 0: wait to be woken; else seconds until the next try at what the sidecar did not take yet
        while True:
            if not retry:
                nudge.acquire()
            _sleep(retry or COALESCE)
            with self._lock:
                if nudge is not self._nudge or self._sock is None or not self._ours():
                    retry = 0.0
                    continue
                self._frame_held()
                before = len(self._pending)
                if before:
                    self._written_at = time.monotonic()
                    self._write()  # a sidecar gone is found, and said, by the next send
                left = len(self._pending)  # tried again soon while the sidecar takes some, less often while it takes none
                retry = 0.0 if not left else COALESCE if left < before else min(max(retry, COALESCE) * 2, STALLED_PAUSE)

    def _queue(self, kind: str, items: list[Any]) -> None:
        if self._connected() is None:  # first: a connection given up counts what it held as dropped
            self._dropped[kind] += len(items)
            return
        try:
            frame = wire.pack(kind, os.getpid(), self._dropped[kind], items)
        except ValueError:  # a value marshal cannot write (an enum the SDK let through): each item made plain
            try:
                frame = wire.pack(kind, os.getpid(), self._dropped[kind], [wire.plain(item) for item in items])
            except (ValueError, RecursionError):
                self._dropped[kind] += len(items)
                return
        if len(self._pending) + len(frame) > PENDING_LIMIT:
            self._dropped[kind] += len(items)
            return
        self._frames.append((len(frame), kind, len(items) + self._dropped[kind]))
        self._dropped[kind] = 0
        self._pending += frame

    def _connected(self) -> Any:
        if self._sock is not None and not self._ours():
            self._abandon(close=False)
        if self._sock is None and time.monotonic() - self._refused_at >= RECONNECT_PAUSE:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
            try:
                sock.connect(self._address)
            except OSError:
                sock.close()
                self._lost()
            else:
                self._sock, self._refused_at = sock, 0.0
                stat = os.fstat(sock.fileno())
                self._identity = (stat.st_dev, stat.st_ino)
        return self._sock

    def _ours(self) -> bool:
        try:
            stat = os.fstat(self._sock.fileno())
        except (OSError, ValueError):
            return False
        return (stat.st_dev, stat.st_ino) == self._identity

    def _write(self) -> bool:
        """Write what the connection takes now; False if the sidecar has gone away."""
        try:
            sent = self._sock.send(self._pending, _socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return True
        except OSError:  # the sidecar went away, or the number is no longer our socket (then it is not ours to close)
            ours = self._ours()
            self._abandon(close=ours)
            return not ours
        del self._pending[:sent]
        self._head += sent
        while self._frames and self._head >= self._frames[0][0]:
            self._head -= self._frames.popleft()[0]
        return True

    def _abandon(self, close: bool) -> None:
        """Forget the connection; what it had not written is counted as dropped. A descriptor that is no
        longer ours (the program closed it, and may have reused the number) is let go of, not closed."""
        if close:
            self._sock.close()
        else:
            self._sock.detach()
        for _, kind, count in self._frames:
            self._dropped[kind] += count
        self._sock, self._pending, self._frames, self._head = None, bytearray(), deque(), 0

    def _lost(self) -> None:
        self._refused_at = time.monotonic()
        if self._main_pid in (0, os.getpid()) and not self._gone_said:
            self._gone_said = True
            logger.warning("otel-celery-launch: warning: the export sidecar cannot be reached; telemetry is dropped and the work runs on")

    def finish(self, timeout: float) -> None:
        """As the process ends: what waits in its buffer, and the count of what was dropped, go out, waiting at
        most ``timeout``; what still cannot is said here, since the sidecar will never know."""
        if not self._lock.acquire(timeout=timeout):  # left held by an interrupted send (Ctrl-C): leave without it
            return
        try:
            self._frame_held()
            for kind, count in self._dropped.items():
                if count:
                    self._queue(kind, [])  # an empty message carries the count
            if self._sock is not None and self._pending and self._ours():
                self._send_waiting(timeout)
                self._sock.setblocking(False)
            for _, kind, count in self._frames:
                self._dropped[kind] += count
            lost = [f"{count} {_NOUNS[kind]}" for kind, count in self._dropped.items() if count]
            if lost and self._refused_at == 0.0:  # an unreachable sidecar was said once already, by the main process
                logger.warning("otel-celery-launch: warning: the export sidecar did not take %s from process %d before it ended",
                               ", ".join(lost), os.getpid())
        finally:
            self._lock.release()

    def flush(self, timeout: float) -> bool:
        """Ask the sidecar to export what it holds now, and wait at most ``timeout`` for its answer.

        For a program whose exit ends every process of its namespace (PID 1, or a child of an init that
        exits with it).
        """
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            if self._connected() is None:
                return False
            self._pending += wire.pack(wire.FLUSH, os.getpid(), 0, [])
            if not self._send_waiting(timeout):  # blocking from here on: this process is leaving
                return False
            try:
                return self._sock.recv(1) == b"\1"
            except OSError:
                return False
        finally:
            self._lock.release()

    def _send_waiting(self, timeout: float) -> bool:
        """Send all that waits, blocking at most ``timeout``: only for a process that is ending."""
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(self._pending, _socket.MSG_NOSIGNAL)
        except OSError:
            return False
        self._pending, self._frames, self._head = bytearray(), deque(), 0
        return True
