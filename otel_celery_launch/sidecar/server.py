"""The sidecar's loop: take the program's messages, feed one pipeline per signal, and end after the program.

Lifetime: the sidecar runs while the program's main process lives (watched through a
pidfd, so a re-exec of the same PID, Celery's answer to SIGHUP, keeps it), while any
process is connected, and while any process started with the program's environment lives
(a worker that ``celery multi`` or ``--detach`` started). Serving such processes after the
command has ended, it lets go of the command's stderr, so that whoever reads it (a shell, a
``$(...)``) sees its end; from then on it says nothing. Then every pipeline gets one more
try, for at most ``batch.exit_timeout``, what is left is counted, and the sidecar exits.
A program whose exit may end the sidecar with the rest of its namespace (PID 1) asks for that
drain itself as it exits (``FLUSH``) and waits for the answer; the sidecar honours it from the
main process only, and drains then only if no other process of the program runs.

Only processes of the program may connect: the peer's environment (``/proc/PID/environ``,
the one it was started with) must name this sidecar. Others are hung up on: they could
otherwise end the sidecar early, keep it alive, or report false losses.
"""

from __future__ import annotations

import functools
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from otel_celery_launch import wire
from otel_celery_launch.handoff import Plan
from otel_celery_launch.sidecar.causes import Causes
from otel_celery_launch.sidecar.exporters import build_exporter
from otel_celery_launch.sidecar.failures import Failure
from otel_celery_launch.sidecar.pipeline import Pipeline
from otel_celery_launch.sidecar.voice import Voice

LIFETIME_CHECK = 0.5  # seconds between two looks for the program's processes once its main process has ended
LET_GO_AFTER = 0.5  # seconds after the main process ended that processes still running are taken to have outlived it
METRICS_DELAY = 0.2  # seconds metrics wait for company: a collection arrives from every process at about the same time


def serve(plan: Plan, name: str, pidfd: int, listener: socket.socket) -> None:
    voice = Voice(plan.exporter.endpoint or "stdout", plan.batch.max_queue_size)

    def news(signal: str, failure: Failure) -> None:
        voice.mark_down(failure.phrase)
        if signal in pipelines:
            pipelines[signal].failing.set()

    causes = Causes(plan.exporter, news)
    causes.install()
    resource = functools.cache(lambda: _resource(plan.resource))  # the SDK waits for the first item: most programs of a moment send none
    signals = ["spans"] + ["metrics"] * plan.sends_metrics + ["logs"] * plan.sends_logs
    pipelines = {signal: _pipeline(plan, signal, resource, voice, causes) for signal in signals}
    listener.setblocking(False)
    marker = name.encode()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    selector.register(pidfd, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    main_alive = True
    ended_at = 0.0  # when the main process ended
    asked: socket.socket | None = None

    def take(connection: socket.socket, kind: str, dropped: int, items: list[Any]) -> None:
        nonlocal asked
        if kind == wire.FLUSH:
            if _peer(connection) != plan.main_pid:
                return
            if _program_alive(marker, also_not=plan.main_pid):
                _answer(connection)  # the others keep the sidecar, and the namespace, alive
            else:
                asked = connection
            return
        pipeline = pipelines.get(kind)
        if pipeline is None:
            return
        voice.drop(kind, dropped)
        read = _reader(kind)
        good = []
        for item in items:
            try:
                good.append(read(item, resource()))
            except Exception:  # not what a program process sends
                continue
        pipeline.put(good)

    while asked is None:
        for key, _ in selector.select(None if main_alive else LIFETIME_CHECK):
            if key.fileobj is listener:
                _accept(listener, selector, buffers, marker)
            elif key.fileobj == pidfd:
                selector.unregister(pidfd)
                main_alive, ended_at = False, time.monotonic()
            else:
                _read(key.fileobj, selector, buffers, take)  # type: ignore[arg-type]
        if main_alive:
            continue
        if not buffers and not _program_alive(marker):
            break
        if ended_at and time.monotonic() - ended_at > LET_GO_AFTER:
            ended_at = 0.0
            voice.let_go(stdout=plan.exporter.protocol == "console")
    _drain(list(pipelines.values()), voice, plan.batch.exit_timeout)
    if asked is not None:
        _answer(asked)
    os._exit(0)


def _answer(connection: socket.socket) -> None:
    try:
        connection.send(b"\1")
    except OSError:
        pass


def _peer(connection: socket.socket) -> int:
    """The PID of the process at the other end (as the kernel recorded it when it connected)."""
    pid, _uid, _gid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid


def _of_the_program(pid: int, marker: bytes) -> bool:
    """Whether the process was started with the program's environment. One whose environment cannot be
    read counts, and so does one gone already: a prefork child that sent its spans and left before the
    sidecar (stopped, or busy) accepted its connection."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            found = environ.read()
    except OSError:
        return True
    return marker in found or not found  # a zombie's environment reads empty


def _resource(attributes: dict[str, str]) -> Any:
    """The program's resource, hashed once: the exporters' encoders group items by resource, and the
    SDK's ``Resource`` hashes by writing its attributes out as JSON, for every span of every batch."""
    from opentelemetry.sdk.resources import Resource

    class HashedOnce(Resource):
        def __init__(self, made: Resource) -> None:
            super().__init__(made.attributes, made.schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    return HashedOnce(Resource.create(attributes))


def _reader(kind: str) -> Callable[[Any, Any], Any]:
    """How one item the program sent becomes what the SDK's exporters take (the item itself, checked, for metrics)."""
    from otel_celery_launch.sidecar import rebuild

    if kind == "metrics":
        return lambda item, resource: rebuild.metrics_data([item], resource) and item
    return rebuild.span if kind == "spans" else rebuild.log_record


def _pipeline(plan: Plan, signal: str, resource: Callable[[], Any], voice: Voice, causes: Causes) -> Pipeline:
    batch = plan.batch

    def metrics(items: list[Any]) -> Any:
        from otel_celery_launch.sidecar import rebuild

        return rebuild.metrics_data(items, resource())

    prepare: Callable[[list[Any]], Any] = metrics if signal == "metrics" else list
    return Pipeline(signal, lambda: build_exporter(plan.exporter, signal), prepare, voice, causes.take,
                    limit=batch.max_queue_size, batch_size=batch.max_export_batch_size,
                    delay=METRICS_DELAY if signal == "metrics" else batch.schedule_delay)


def _accept(listener: socket.socket, selector: selectors.BaseSelector, buffers: dict[socket.socket, bytearray], marker: bytes) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:  # none waiting
            return
        if not _of_the_program(_peer(connection), marker):
            connection.close()
            continue
        connection.setblocking(False)
        buffers[connection] = bytearray()
        selector.register(connection, selectors.EVENT_READ, None)


def _read(connection: socket.socket, selector: selectors.BaseSelector, buffers: dict[socket.socket, bytearray],
          take: Callable[[socket.socket, str, int, list[Any]], None]) -> None:
    buffer = buffers[connection]
    try:
        data = connection.recv(1 << 20)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    buffer += data
    while len(buffer) >= wire.HEADER.size:
        (length,) = wire.HEADER.unpack_from(buffer)
        if length > wire.MAX_MESSAGE:
            data = b""  # not a program process: hang up on it
            break
        if len(buffer) < wire.HEADER.size + length:
            break
        body = bytes(buffer[wire.HEADER.size : wire.HEADER.size + length])
        del buffer[: wire.HEADER.size + length]
        try:
            kind, _pid, dropped, items = wire.unpack(body)
        except Exception:
            continue
        take(connection, kind, dropped, items)
    if not data:
        selector.unregister(connection)
        del buffers[connection]
        connection.close()


def _program_alive(marker: bytes, also_not: int = 0) -> bool:
    """Whether any process started with the program's environment (which names this sidecar) still runs."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) not in (me, also_not):
            try:
                with open(f"/proc/{entry.name}/environ", "rb") as environ:
                    if marker in environ.read():
                        return True
            except OSError:  # gone, or another user's
                continue
    return False


def _drain(pipelines: list[Pipeline], voice: Voice, exit_timeout: float) -> None:
    for pipeline in pipelines:
        pipeline.leave()
    deadline = time.monotonic() + exit_timeout
    # A try that failed is not waited for: the exporter's own retries within it would use up the time.
    while time.monotonic() < deadline and any(p.thread.is_alive() and not p.failing.is_set() for p in pipelines):
        time.sleep(0.01)
    late = {pipeline.signal: pipeline.left for pipeline in pipelines if pipeline.thread.is_alive()}
    hung = any(pipeline.thread.is_alive() and not pipeline.failing.is_set() for pipeline in pipelines)
    voice.close(late, f"gave no answer within the exit timeout of {exit_timeout:g}s" if hung else "was failing")
