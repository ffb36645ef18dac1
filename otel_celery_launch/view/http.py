"""OTLP/HTTP for the local collector, with bounded connections, and a plain answer to a gRPC client on this port.

Each connection has a thread, so their number is capped and each has a timeout: a client that
stalls or a flood of connections cannot pile up threads. A gRPC exporter pointed at this port
opens an HTTP/2 connection; answering it with HTTP/1 makes it report the port as unreachable, so
it gets a gRPC status instead whose message names the right port.
"""

from __future__ import annotations

import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any, Callable

MOST_BYTES = 64 << 20  # largest export request taken, compressed or not
MOST_CONNECTIONS = 32
CONNECTION_TIMEOUT = 10.0  # seconds a connection may be silent
_PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
_HTTP2_PREFACE = (b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n")  # its request line, and the rest
_SETTINGS, _HEADERS, _GOAWAY = 0x4, 0x1, 0x7
_ACK = _END_STREAM = 0x1
_END_HEADERS = 0x4
_MOST_FRAMES = 16  # a gRPC client sends its SETTINGS and a WINDOW_UPDATE or two before its request's HEADERS
_MOST_FRAME_BYTES = 16384  # HTTP/2's default SETTINGS_MAX_FRAME_SIZE


class OtlpHttpServer(ThreadingHTTPServer):
    """Refuses connections beyond ``MOST_CONNECTIONS`` (HTTP 503) rather than start a thread for each."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], take: Callable[[str, bytes], None], on_grpc: Callable[[], None]) -> None:
        self.take = take  # (signal, body) of each export request
        self.on_grpc = on_grpc  # called when a gRPC client connects here
        self.grpc_port: int | None = None  # named to such a client
        self._slots = threading.BoundedSemaphore(MOST_CONNECTIONS)
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request is no news for the person watching the view."""

    def grpc_hint(self) -> bytes:
        instead = f"send gRPC to port {self.grpc_port}, or" if self.grpc_port is not None else "send gRPC elsewhere, or"
        return f"this is the OTLP/HTTP port {self.port}; {instead} use protocol http/protobuf".encode()


class _Handler(BaseHTTPRequestHandler):
    server: OtlpHttpServer
    raw_requestline: bytes  # set by handle_one_request
    timeout = CONNECTION_TIMEOUT

    def parse_request(self) -> bool:
        if self.raw_requestline != _HTTP2_PREFACE[0]:
            return super().parse_request()
        self.close_connection = True
        if answer_grpc(self.rfile, self.wfile, self.server.grpc_hint()):
            self.server.on_grpc()
        return False

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        signal = _PATHS.get(self.path.partition("?")[0])
        try:
            length = int(self.headers.get("Content-Length", 0))
            if not 0 <= length <= MOST_BYTES:
                raise ValueError("body too large")
            body = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                inflate = zlib.decompressobj(wbits=31)
                body = inflate.decompress(body, MOST_BYTES)
                if inflate.unconsumed_tail:
                    raise ValueError("body too large")
            if signal is not None:
                self.server.take(signal, body)
            status = 200 if signal is not None else 404
        except OSError:
            raise  # the connection failed or stalled: nothing to answer on it
        except Exception:  # not OTLP protobuf, or too large: refuse it, as a collector would
            status = 400
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def answer_grpc(rfile: BufferedIOBase, wfile: BufferedIOBase, message: bytes) -> bool:
    """Answer an HTTP/2 client's first request with gRPC status UNIMPLEMENTED (exporters do not retry it) and ``message``.

    After the preface's request line: reads the rest of the preface and the frames up to the
    first HEADERS, then sends SETTINGS, a trailers-only response and GOAWAY. False if the client
    did not speak HTTP/2 after all. ``message`` must be under 127 bytes of plain ASCII (one-byte
    HPACK lengths, no percent-encoding).
    """
    if rfile.read(len(_HTTP2_PREFACE[1])) != _HTTP2_PREFACE[1]:
        return False
    wfile.write(_frame(_SETTINGS, 0, 0))
    for _ in range(_MOST_FRAMES):
        head = rfile.read(9)
        if len(head) < 9:
            return False
        length, kind, flags, stream_id = int.from_bytes(head[:3], "big"), head[3], head[4], int.from_bytes(head[5:], "big") & 0x7FFFFFFF
        if length > _MOST_FRAME_BYTES or len(rfile.read(length)) < length:
            return False
        if kind == _SETTINGS and not flags & _ACK:
            wfile.write(_frame(_SETTINGS, _ACK, 0))
        if kind == _HEADERS:
            block = b"\x88" + _literal(b"content-type", b"application/grpc") + _literal(b"grpc-status", b"12") + _literal(b"grpc-message", message)
            wfile.write(_frame(_HEADERS, _END_STREAM | _END_HEADERS, stream_id, block) + _frame(_GOAWAY, 0, 0, struct.pack(">II", stream_id, 0)))
            return True
    return False


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK header field without indexing, name and value as plain strings (RFC 7541, 6.2.2)."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
