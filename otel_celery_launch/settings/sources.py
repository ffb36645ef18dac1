"""Where settings come from: the YAML file, the standard OTEL_* variables and the flags.

Each source is a pydantic-settings source that also remembers which file, variable or
flag gave each value, so errors and ``check`` can name it. Precedence (highest first):
flags, environment, YAML file, defaults.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from otel_celery_launch.settings.errors import Problem
from otel_celery_launch.settings.model import FieldPath, Leaf, Settings, leaves

CONFIG_ENV_VAR = "OTEL_CELERY_LAUNCH_CONFIG"
_LEAVES = {leaf.path: leaf for leaf in leaves()}


def parse_key_values(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` with percent-decoding, as the OTel spec defines for headers and attributes.

    Errors name the entry's position, never its content: header values are secrets.
    """
    pairs: dict[str, str] = {}
    for position, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"entry {position} is not key=value (expected k=v,k2=v2)")
        try:
            pairs[unquote(key.strip(), errors="strict")] = unquote(value.strip(), errors="strict")
        except UnicodeDecodeError:
            raise ValueError(f"entry {position} does not percent-decode to UTF-8") from None
    return pairs


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


class TrackedSource(PydanticBaseSettingsSource):
    """A settings source that records the origin of every value it provides."""

    def __init__(self) -> None:
        super().__init__(Settings)
        self.data: dict[str, Any] = {}
        self.origins: dict[FieldPath, str] = {}
        self.problems: list[Problem] = []

    def put(self, path: FieldPath, value: Any, origin: str) -> None:
        if path[:2] == ("exporter", "headers") and len(path) == 3 and isinstance(path[2], str):
            path = (*path[:2], path[2].lower())  # header names are case-insensitive, as the model makes them
        node = self.data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        self.origins[path] = origin

    def put_text(self, leaf: Leaf, text: str, origin: str) -> None:
        """Store a string from a variable or flag, split the way the key's shape wants."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # bytes that were not UTF-8, which Python kept as surrogates
            self.problems.append(Problem(f"{leaf.dotted} ({origin})", "is not valid UTF-8 text"))
            return
        if leaf.shape == "list":
            self.put(leaf.path, [] if text.strip().lower() == "none" else split_list(text), origin)
        elif leaf.shape == "mapping":
            try:
                pairs = parse_key_values(text)
            except ValueError as error:
                self.problems.append(Problem(origin, str(error)))
                return
            for key, value in pairs.items():
                self.put(leaf.path + (key,), value, origin)
        else:
            self.put(leaf.path, text, origin)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # values are gathered up front, see __call__

    def __call__(self) -> dict[str, Any]:
        return self.data


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class YamlFileSource(TrackedSource):
    """The YAML config file, with ``${VAR}`` and ``${VAR:-default}`` taken from the environment."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        super().__init__()
        self.path = path
        self.environ = environ
        self.secret_variables: set[str] = set()  # variables put into a header value or an endpoint: credentials
        self.variables: set[str] = set()  # every variable the file reads, set or not
        self.digest = ""  # SHA-256 of the bytes validated
        root = self._read()
        if root is None:
            return
        if not isinstance(root, dict):
            self.problems.append(
                Problem(path, f"must be a mapping of settings at the top level, not a {type(root).__name__}")
            )
            return
        self._walk(root, ())

    def _read(self) -> Any:
        from otel_celery_launch.settings.config_bytes import ConfigFileError, read_bounded
        from otel_celery_launch.settings.config_file import parse_config

        try:
            data = read_bounded(self.path)
            self.digest = hashlib.sha256(data).hexdigest()
            return parse_config(data, self.path)
        except ConfigFileError as error:
            self.problems.append(Problem(error.where, error.message))
            return None

    def _walk(self, node: Any, path: FieldPath) -> None:
        if isinstance(node, dict) and (path == () or node):
            for key, value in node.items():
                self._walk(value, path + (str(key),))
        else:
            known_problems = len(self.problems)
            value = self._substitute(node, path)
            leaf = _LEAVES.get(path)
            problem = unitless(leaf, value) if leaf is not None else None
            if problem:
                self.problems.append(Problem(f"{'.'.join(path)} (file {self.path})", problem))
            elif len(self.problems) == known_problems:  # a failed ${VAR} is reported once, not validated too
                self.put(path, value, f"file {self.path}")

    def _substitute(self, value: Any, path: FieldPath) -> Any:
        if isinstance(value, list):
            return [self._substitute(item, path) for item in value]
        if not isinstance(value, str):
            return value

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            self.variables.add(name)
            found = self.environ.get(name)
            if found:
                if path[:2] == ("exporter", "headers") or (path[:1] == ("exporter",) and path[-1].endswith("endpoint")):
                    self.secret_variables.add(name)
                return found
            if default is not None:
                return default
            self.problems.append(
                Problem(
                    f"{'.'.join(path)} (file {self.path})",
                    f"${{{name}}} is not set in the environment and has no default (write ${{{name}:-value}})",
                )
            )
            return ""

        return _PLACEHOLDER.sub(replace, value)


def _milliseconds(text: str) -> str:
    """The OTel variables give durations in milliseconds (a decimal point is allowed); our durations take a unit."""
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError(f"must be a number of milliseconds, as the OpenTelemetry specification says (got {text.strip()!r})") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be a positive, finite number of milliseconds (got {text.strip()!r})")
    return f"{number!r}ms"


def unitless(leaf: Leaf, value: Any) -> str | None:
    """The problem with a bare number given for a duration in the file or a flag: which unit was meant?"""
    if not leaf.duration or isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"must be a finite duration with a unit, such as 10s or 500ms (got {value!r})"
    return f"{value:g} has no unit: write {value:g}s for {value:g} seconds or {value:g}ms for {value:g} milliseconds"


def _traces_exporter(text: str) -> str | None:
    """OTEL_TRACES_EXPORTER picks OTLP (protocol from its own variable), console or none."""
    name = text.strip().lower()
    if name == "otlp":
        return None
    if name in ("console", "none"):
        return name
    raise ValueError(f"{text!r} is not supported; allowed: otlp, console, none (one exporter)")


def _signal_exporter(text: str) -> str:
    """OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER: otlp (sent with the exporter's settings), or none.

    The other names the specification defines (console, prometheus, logging) are accepted and
    mean none here: an environment shared with other launchers must not stop the command.
    """
    name = text.strip().lower()
    if name == "otlp":
        return "true"
    if name in ("none", "console", "prometheus", "logging"):
        return "false"
    raise ValueError(f"{text!r} is not supported; allowed: otlp, none (console, prometheus and logging mean none here)")


# variable names (the per-signal form first, it wins), settings path, conversion of the text
_ENV_TABLE: tuple[tuple[tuple[str, ...], FieldPath, Callable[[str], str | None]], ...] = (
    (("OTEL_SDK_DISABLED",), ("disabled",), str),
    (("OTEL_LOG_LEVEL",), ("log_level",), str.lower),
    (("OTEL_SERVICE_NAME",), ("service", "name"), str),
    (("OTEL_RESOURCE_ATTRIBUTES",), ("service", "attributes"), str),
    (("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"), ("exporter", "protocol"), str),
    (("OTEL_TRACES_EXPORTER",), ("exporter", "protocol"), _traces_exporter),
    (("OTEL_EXPORTER_OTLP_ENDPOINT",), ("exporter", "endpoint"), str),
    (("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",), ("exporter", "traces_endpoint"), str),
    (("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"), ("exporter", "headers"), str),
    (("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"), ("exporter", "timeout"), _milliseconds),
    (("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"), ("exporter", "compression"), str),
    (("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE"), ("exporter", "insecure"), str),
    (("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"), ("exporter", "certificate"), str),
    (("OTEL_PROPAGATORS",), ("propagators",), str),
    (("OTEL_TRACES_SAMPLER",), ("sampler", "type"), str),
    (("OTEL_TRACES_SAMPLER_ARG",), ("sampler", "ratio"), str),
    (("OTEL_BSP_SCHEDULE_DELAY",), ("batch", "schedule_delay"), _milliseconds),
    (("OTEL_BSP_EXPORT_TIMEOUT",), ("batch", "export_timeout"), _milliseconds),
    (("OTEL_BSP_MAX_QUEUE_SIZE",), ("batch", "max_queue_size"), str),
    (("OTEL_BSP_MAX_EXPORT_BATCH_SIZE",), ("batch", "max_export_batch_size"), str),
    (("OTEL_CELERY_LAUNCH_EXIT_TIMEOUT",), ("batch", "exit_timeout"), _milliseconds),
    (("OTEL_CELERY_LAUNCH_LOGS_FORMAT",), ("logs", "format"), str.lower),
    (("OTEL_CELERY_LAUNCH_LOGS_LEVEL",), ("logs", "level"), str.lower),
    (("OTEL_LOGS_EXPORTER",), ("logs", "export"), _signal_exporter),
    (("OTEL_CELERY_LAUNCH_LOGS_TASK_DATA",), ("logs", "task_data"), str),
    (("OTEL_METRICS_EXPORTER",), ("metrics", "enabled"), _signal_exporter),
    (("OTEL_METRIC_EXPORT_INTERVAL",), ("metrics", "export_interval"), _milliseconds),
    (("OTEL_CELERY_LAUNCH_QUEUE_DEPTH_INTERVAL",), ("metrics", "queue_depth_interval"), _milliseconds),
    (("OTEL_CELERY_LAUNCH_FLOWER_RUNTIME",), ("metrics", "flower_runtime"), str),
    (("OTEL_CELERY_LAUNCH_INSTRUMENTATIONS",), ("instrumentations", "enabled"), str),
    (("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",), ("instrumentations", "disabled"), str),
)


def env_names(path: FieldPath) -> tuple[str, ...]:
    """The variables that set one key, the winning one first; for the configuration reference."""
    return tuple(name for names, target, _ in _ENV_TABLE if target == path for name in names)


class OtelEnvSource(TrackedSource):
    """The standard OpenTelemetry variables, with their specified meaning. Empty means unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__()
        by_path = {leaf.path: leaf for leaf in leaves()}
        for names, path, convert in _ENV_TABLE:
            name = next((name for name in names if environ.get(name, "").strip()), None)
            if name is None:
                continue
            try:
                text = convert(environ[name])
            except ValueError as error:
                self.problems.append(Problem(f"{'.'.join(path)} (env {name})", str(error)))
                continue
            if text is not None:
                self.put_text(by_path[path], text, f"env {name}")


def flag_name(leaf: Leaf) -> str:
    return "--" + "-".join(leaf.path).replace("_", "-")


class FlagSource(TrackedSource):
    """Command-line flags, one per settings key (``--exporter-endpoint`` for ``exporter.endpoint``)."""

    def __init__(self, given: Mapping[FieldPath, str]) -> None:
        super().__init__()
        for leaf in leaves():
            if leaf.path in given:
                origin = f"flag {flag_name(leaf)}"
                problem = unitless(leaf, given[leaf.path])
                if problem:
                    self.problems.append(Problem(f"{leaf.dotted} ({origin})", problem))
                else:
                    self.put_text(leaf, given[leaf.path], origin)
