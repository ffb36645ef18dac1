"""What went wrong with an export, in words an operator can act on.

The exporters report a failed export only by logging it: a gRPC status code, an HTTP
status, or the exception the HTTP client raised. This names the cause from those; it
never repeats what the collector said back (a body or details may echo a header).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_TLS_WORDS = ("ssl", "tls", "handshake", "certificate")


@dataclass(frozen=True)
class Failure:
    phrase: str  # completes "the collector at host:port ..."
    hung: bool = False  # it did not answer in time: exiting processes should not each wait for it


def from_grpc(code: Any, details: object = "") -> Failure:
    name = getattr(code, "name", str(code))
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Failure(f"rejected the credentials ({name}): check exporter.headers")
    if name == "UNIMPLEMENTED":
        return Failure(f"has no OTLP service for this signal ({name}): is it an OTLP/gRPC port, with this signal's pipeline?")
    if name == "RESOURCE_EXHAUSTED":
        return Failure(f"refused a batch as too large or too many ({name}): lower batch.max_export_batch_size")
    if name == "DEADLINE_EXCEEDED":
        return Failure(f"did not answer within exporter.timeout ({name})", hung=True)
    if name == "UNAVAILABLE" and any(word in str(details).lower() for word in _TLS_WORDS):
        return Failure(f"failed the TLS handshake ({name}): check exporter.certificate and exporter.insecure")
    if name == "UNAVAILABLE":
        return Failure(f"cannot be reached: refused or unreachable ({name})")
    return Failure(f"failed the export ({name})")


def from_http(status: object, reason: object, path: str) -> Failure:
    if isinstance(status, int):
        if status == 404:
            return Failure(f"has no OTLP endpoint at {path} (HTTP 404)")
        if status in (401, 403):
            return Failure(f"rejected the credentials (HTTP {status}): check exporter.headers")
        if status == 413:
            return Failure("refused a batch as too large (HTTP 413): lower batch.max_export_batch_size")
        if status in (429, 502, 503, 504):
            return Failure(f"is overloaded or restarting (HTTP {status})")
        return Failure(f"answered HTTP {status}")
    if isinstance(reason, BaseException):
        kind = type(reason).__name__
        text = f"{kind} {reason}".lower()
        if any(word in text for word in _TLS_WORDS):
            return Failure(f"failed the TLS handshake ({kind}): check exporter.certificate")
        if "timeout" in text or "timed out" in text:
            return Failure(f"did not answer within exporter.timeout ({kind})", hung=True)
        return Failure(f"cannot be reached: refused or unreachable ({kind})")
    if isinstance(reason, str) and reason.replace(" ", "").isalpha() and len(reason) <= 40:
        return Failure(f"answered {reason}")  # an HTTP reason phrase, such as Service Unavailable
    return Failure("failed the export")


def from_exporter_log(protocol: str, path: str, message: str, args: tuple[Any, ...]) -> tuple[str, Failure] | None:
    """The signal (traces, metrics, logs) and cause of an exporter's failure line; None for other lines.

    gRPC's exporters share one logger and name the signal in the line; HTTP's each have
    their own logger and name it too.
    """
    if not message.startswith(("Transient error", "Failed to export")):
        return None
    transient = message.startswith("Transient error")
    if protocol == "grpc":
        signal = str(args[1] if transient and len(args) > 1 else args[0] if args else "")
        if transient and args:
            return signal, from_grpc(args[0], args[-1])
        if len(args) >= 4:
            return signal, from_grpc(args[2], args[3])
        if len(args) == 3:  # exporters before 1.42 give no details (the sidecar's stand-in status carries them)
            return signal, from_grpc(args[2], getattr(args[2], "details", ""))
        return signal, Failure("failed the export")
    signal = str(args[1] if transient and len(args) > 1 else args[0] if args else "")
    if transient and args:
        return signal, from_http(None, args[0], path)
    if len(args) >= 3:
        return signal, from_http(args[1], args[2], path)
    return signal, Failure("failed the export (out of time or retries, or shutting down)")
