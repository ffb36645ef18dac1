"""Merge the sources, validate once, and explain every problem in the user's terms."""

from __future__ import annotations

import difflib
import functools
import json
from urllib.parse import urlsplit
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from otel_celery_launch.handoff import secret_endpoint
from otel_celery_launch.masking import mask_url
from otel_celery_launch.settings.errors import Problem, SettingsError
from otel_celery_launch.settings.model import FieldPath, Settings
from otel_celery_launch.settings.resolve import resource_attributes
from otel_celery_launch.settings.types import ATTRIBUTES_MOST_BYTES, HEADERS_MOST_BYTES
from otel_celery_launch.settings.sources import (
    CONFIG_ENV_VAR,
    FlagSource,
    OtelEnvSource,
    TrackedSource,
    YamlFileSource,
)

_SECRET_KEYS = frozenset({"headers"})


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    origins: Mapping[FieldPath, str]
    config_file: str | None
    secret_variables: frozenset[str] = frozenset()  # the file's ${VAR}s in header values and endpoints
    variables: frozenset[str] = frozenset()  # every ${VAR} the file reads
    config_digest: str = ""  # SHA-256 of the file's bytes as validated

    def holds_secret(self) -> bool:
        """Whether a credential took part: header values, an endpoint's user information or query, or a ``${VAR}`` put into one."""
        exporter = self.settings.exporter
        return bool(exporter.headers or self.secret_variables
                    or any(secret_endpoint(url) for url in (exporter.endpoint, exporter.traces_endpoint)))

    def origin(self, path: FieldPath) -> str:
        return find_origin(self.origins, path) or "default"


def find_origin(origins: Mapping[FieldPath, str], path: FieldPath) -> str | None:
    """The source of a value, or of the nearest enclosing key that a source set."""
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return None


def load_settings(
    environ: Mapping[str, str], flags: Mapping[FieldPath, str], config_file: str | None = None
) -> LoadedSettings:
    """Flags beat environment beat the YAML file beat defaults; raises :class:`SettingsError`."""
    if config_file is not None and not config_file.strip():  # an empty variable means unset; an empty flag is a slip
        raise SettingsError([Problem("--config", "is empty: give the path of the YAML file, or leave --config out")])
    config_file = config_file or environ.get(CONFIG_ENV_VAR) or None
    sources: list[TrackedSource] = [FlagSource(flags), OtelEnvSource(environ)]
    if config_file:
        sources.append(YamlFileSource(config_file, environ))
    problems = [problem for source in sources for problem in source.problems]
    origins: dict[FieldPath, str] = {}
    for source in reversed(sources):
        origins.update(source.origins)
    try:
        settings = Settings(_build_sources=(tuple(sources), {}))
    except ValidationError as error:
        problems += [_describe(detail, origins) for detail in error.errors()]
    else:
        problems += _transport_problems(settings, origins)
    if config_file:  # the file on its own too: a bad value must not hide behind a variable that overrides it
        file_source = sources[-1]
        try:
            Settings(_build_sources=((file_source,), {}))
        except ValidationError as error:
            known = set(problems)
            problems += [problem for detail in error.errors() if (problem := _describe(detail, file_source.origins)) not in known]
    if problems:
        raise SettingsError(problems)
    file = sources[-1] if isinstance(sources[-1], YamlFileSource) else None
    if file is None:
        return LoadedSettings(settings, origins, config_file)
    return LoadedSettings(settings, origins, config_file, frozenset(file.secret_variables), frozenset(file.variables), file.digest)


def redact(path: FieldPath, value: Any) -> str:
    """How a value may be shown: header values never (their names, yes), credentials in URLs masked."""
    if _SECRET_KEYS.intersection(path) and path[-1] != "[key]":
        return "'****'"
    shown = repr(mask_url(value)) if isinstance(value, str) else repr(value)
    return shown if len(shown) <= 80 else shown[:70] + "…" + shown[-8:]


def _describe(detail: ErrorDetails, origins: Mapping[FieldPath, str]) -> Problem:
    path = tuple(str(part) for part in detail["loc"])
    origin = find_origin(origins, path)
    where = ".".join(path) + (f" ({origin})" if origin else "")
    if detail["type"] == "extra_forbidden":
        return Problem(where, _unknown_key(path))
    message = detail["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if isinstance(detail["input"], (dict, list)) or detail["type"] == "missing":
        return Problem(where, message)
    return Problem(where, f"{message} (got {redact(path, detail['input'])})")


def _transport_problems(settings: Settings, origins: Mapping[FieldPath, str]) -> list[Problem]:
    """What the chosen transport cannot carry: the export would fail, or drop it unseen."""
    exporter = settings.exporter
    problems = []
    size = sum(len(name) + len(value.get_secret_value()) for name, value in exporter.headers.items())
    if size > HEADERS_MOST_BYTES:
        problems.append(Problem(f"exporter.headers ({find_origin(origins, ('exporter', 'headers')) or 'several sources'})",
                                f"names and values together take {size} bytes; at most {HEADERS_MOST_BYTES} pass gRPC and most proxies"))
    attributes = len(json.dumps(resource_attributes(settings.service)))  # as they cross exec, in the plan
    if attributes > ATTRIBUTES_MOST_BYTES:
        problems.append(Problem(f"service.attributes ({find_origin(origins, ('service', 'attributes')) or 'several sources'})",
                                f"take {attributes} bytes with service.name, version and environment; "
                                f"at most {ATTRIBUTES_MOST_BYTES} fit in the environment the command gets"))
    if exporter.protocol != "grpc":
        return problems
    problems += [
        Problem(f"exporter.headers.{name} ({find_origin(origins, ('exporter', 'headers', name)) or 'default'})",
                "is a header gRPC sets itself; use another name")
        for name in exporter.headers if name == "user-agent"
    ]
    problems += [
        Problem(f"exporter.headers.{name} ({find_origin(origins, ('exporter', 'headers', name)) or 'default'})",
                "gRPC reserves names starting grpc- and carries names ending -bin as binary; use another name")
        for name in exporter.headers
        if name.startswith("grpc-") or name.endswith("-bin")
    ]
    for key in ("endpoint", "traces_endpoint"):
        url = getattr(exporter, key)
        if url and "@" in urlsplit(url).netloc:
            problems.append(Problem(f"exporter.{key} ({find_origin(origins, ('exporter', key)) or 'default'})",
                                    "gRPC cannot send a user name or password in the endpoint; put credentials in exporter.headers"))
    return problems


@functools.lru_cache(maxsize=1 << 16)  # the file is validated twice (merged, and on its own): say it once per key
def _unknown_key(path: FieldPath) -> str:
    model: type[BaseModel] = Settings
    for key in path[:-1]:
        annotation = model.model_fields[key].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "unknown key"
        model = annotation
    allowed = list(model.model_fields)
    guess = difflib.get_close_matches(path[-1], allowed, n=1, cutoff=0.6)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    return f"unknown key; {hint}allowed: {', '.join(allowed)}"
