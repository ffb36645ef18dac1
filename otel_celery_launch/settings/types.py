"""Value types shared by the settings sections: durations, strict booleans, endpoints."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from typing import Annotated, Literal, Union
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr

from otel_celery_launch.masking import mask_url

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
LONGEST = 3600.0  # no duration of the launcher's needs more than an hour
SHORTEST = 0.001  # nor less than a millisecond: shorter, its loops would spin
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


def parse_duration(value: object) -> object:
    """``10s``, ``500ms``, ``2m``, ``1h``; seconds as a number only from the sources that convert them."""
    if isinstance(value, bool):
        raise ValueError("must be a duration with a unit, such as 10s or 500ms")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("must be a duration with a unit, such as 10s or 500ms")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("must be a positive duration")
    if seconds > LONGEST:
        raise ValueError("must be at most 1h")
    if seconds < SHORTEST:
        raise ValueError("must be at least 1ms")
    return seconds


def show_duration(seconds: float) -> str:
    """As a person would write it: ``5s``, ``500ms``, ``2m``."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{seconds / size:g}{unit}"
    return f"{seconds * 1000:g}ms"


def parse_strict_bool(value: object) -> object:
    """true/false, yes/no, on/off in any case, as YAML reads them: a typo such as ``ture`` must not quietly mean false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false (yes/no and on/off also work)")


def check_endpoint(value: str) -> str:
    """An OTLP endpoint is an http(s) URL with a host; ``host:port`` alone gets a hint."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        if parts.scheme and not parts.netloc and re.match(r"^[\w.-]+:\d+", value):
            raise ValueError(f"must be a URL with a scheme: try http://{mask_url(value)}")
        raise ValueError("must be an http:// or https:// URL")
    if len(value) > LONGEST_ENDPOINT:
        raise ValueError(f"is longer than {LONGEST_ENDPOINT} characters")
    if not parts.hostname:
        raise ValueError("must name a host, as in http://collector:4317")
    if not _NETLOC.fullmatch(parts.netloc.rpartition("@")[2]) or not _is_host(parts.hostname, bracketed="[" in parts.netloc):
        raise ValueError("has a host that is neither a name (letters, digits, '-', '_', '.') nor an IP address")
    if "@" in parts.path + parts.query + parts.fragment:
        raise ValueError("has an @ after the host: percent-encode '/', '?' and '#' in a user name or password")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("has port 0; give the collector's port (4317 for gRPC, 4318 for HTTP), or none for the scheme's")
    return value


LONGEST_ENDPOINT = 2048  # as most proxies and browsers take; the plan must also cross exec in one variable
_NETLOC = re.compile(r"(\[[^\]]*\]|[^\[\]:]*)(:[0-9]*)?")  # host, or [IPv6], then at most a port
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?", re.IGNORECASE)


def _is_host(host: str, bracketed: bool) -> bool:
    """A DNS name (labels of at most 63 characters), an IPv4 address, or (in brackets) an IPv6 address."""
    try:
        if bracketed:
            ipaddress.IPv6Address(host.partition("%")[0])
        elif host.rstrip(".").replace(".", "").isdigit():  # all numbers: an IPv4 address, or nothing
            ipaddress.IPv4Address(host.rstrip("."))
    except ValueError:
        return False
    return bracketed or (len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None)


def no_boolean(value: object) -> object:
    """YAML's true/false are not numbers here (pydantic would read true as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def check_readable_file(value: str) -> str:
    """A CA bundle that cannot be read would only fail later, inside the user's process."""
    if not os.path.isfile(value):
        raise ValueError("must be an existing file" + (" (it is a directory)" if os.path.isdir(value) else ""))
    if not os.access(value, os.R_OK):
        raise ValueError("is a file this user cannot read")
    return value


_HEADER_NAME = re.compile(r"[0-9a-z_.-]+")


_SET_BY_THE_EXPORTER = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding", "host",
                                   "connection", "te", "upgrade", "keep-alive", "proxy-connection"})
HEADERS_MOST_BYTES = 8192  # gRPC's default limit for metadata, and below most proxies' limits
ATTRIBUTES_MOST_BYTES = 65536  # the plan crosses exec in one variable, and Linux takes at most 128 KiB in one


def check_header_name(name: str) -> str:
    """Lower case, as the SDK makes it (gRPC refuses upper case); then what gRPC and HTTP both carry."""
    name = name.lower()
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError("is not a header name: use letters, digits, '-', '_' and '.'")
    if name in _SET_BY_THE_EXPORTER:
        raise ValueError("is a header the exporter sets itself (the transport would drop or replace it); use another name")
    return name


def check_header_value(value: SecretStr) -> SecretStr:
    """Printable ASCII, once percent-decoded: anything else no transport carries, or carries differently."""
    text = value.get_secret_value()
    if not all(" " <= char <= "~" for char in text):
        raise ValueError("must be printable ASCII once percent-decoded (no control character, line break or non-ASCII)")
    if text != text.strip():
        raise ValueError("must not begin or end with a space")
    return value


# json_schema_input_type: what the config file may hold, for the schema editors validate with
Duration = Annotated[float, BeforeValidator(parse_duration, json_schema_input_type=Annotated[str, Field(pattern=_DURATION.pattern)])]
StrictBool = Annotated[bool, BeforeValidator(parse_strict_bool, json_schema_input_type=Union[bool, Literal["true", "false", "yes", "no", "on", "off"]])]
Endpoint = Annotated[str, AfterValidator(check_endpoint)]
ReadableFile = Annotated[str, AfterValidator(check_readable_file)]
HeaderName = Annotated[str, AfterValidator(check_header_name)]
Count = Annotated[int, BeforeValidator(no_boolean)]
Fraction = Annotated[float, BeforeValidator(no_boolean)]
HeaderValue = Annotated[SecretStr, AfterValidator(check_header_value)]
