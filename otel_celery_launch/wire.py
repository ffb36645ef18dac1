"""What the program's processes hand to the sidecar: length-prefixed messages on a Unix stream socket, in ``marshal``.

Standard library only: the program's processes import this, never gRPC, ``requests`` or
protobuf. A message is ``(kind, pid, dropped, items)``: ``dropped`` counts what the sender
could not hand over since its last message of that kind (the sidecar's queue was full), so
the sidecar, the single voice, reports exact losses. Items are plain tuples
(:mod:`otel_celery_launch.bootstrap.export` makes them, :mod:`otel_celery_launch.sidecar.rebuild`
reads them). ``marshal`` is the fastest standard serializer of plain values, and unlike
``pickle`` it runs no code when it loads.
"""

from __future__ import annotations

import marshal
import struct
from typing import Any

SPANS, METRICS, LOGS, FLUSH = "spans", "metrics", "logs", "flush"  # FLUSH: export all now, answer when done
KINDS = (SPANS, METRICS, LOGS)
HEADER = struct.Struct("!I")  # the length of the message that follows
MAX_MESSAGE = 16 << 20  # bytes; a longer one is not from a program process: the sidecar closes that connection
ADDRESS_PREFIX = "otel-celery-launch-"  # an abstract Unix socket name: no file to clean up, reachable after a re-exec


def socket_address(name: str) -> bytes:
    """The abstract-namespace address of ``name`` (Linux): a leading NUL byte."""
    return b"\0" + name.encode()


def pack(kind: str, pid: int, dropped: int, items: list[Any]) -> bytes:
    """One framed message; raises ValueError on a value marshal cannot write."""
    body = marshal.dumps((kind, pid, dropped, items))
    return HEADER.pack(len(body)) + body


def plain(value: Any) -> Any:
    """``value`` as marshal writes it: subclasses of ``str``, ``int`` and ``float`` (an ``enum.StrEnum``,
    ``http.HTTPStatus``), which the SDK accepts, as their plain values, inside lists, tuples and dicts too;
    anything else marshal cannot write as its text. For the rare item that failed to pack."""
    if value is None or type(value) in (str, int, float, bool, bytes):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # the characters, not what the subclass's __str__ says (an Enum's name)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, (list, tuple)):
        items = [plain(item) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    return str(value)


def unpack(data: bytes) -> tuple[str, int, int, list[Any]]:
    """A message's body back; raises ValueError (or EOFError, TypeError) on bytes that are not a message."""
    kind, pid, dropped, items = marshal.loads(data)
    if kind not in (*KINDS, FLUSH) or not isinstance(pid, int) or not isinstance(dropped, int) or not isinstance(items, list):
        raise ValueError("not a message")
    return kind, pid, max(0, dropped), items
