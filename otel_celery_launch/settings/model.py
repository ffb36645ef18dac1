"""The settings model: every key the launcher accepts, its default and what it allows.

The YAML file mirrors this model key for key; environment variables and flags map onto
the same paths (see :mod:`otel_celery_launch.settings.sources`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from otel_celery_launch.settings.types import Count, Duration, Fraction, Endpoint, HeaderName, HeaderValue, ReadableFile, StrictBool, parse_duration, parse_strict_bool

BUILTIN_PROPAGATORS = ("tracecontext", "baggage")
SERVICE_MOST_CHARACTERS = 1024  # a name, not a document: longer would also crowd the environment the command gets
PROTOCOLS = ("grpc", "http/protobuf", "console", "none")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


@cache
def installed_propagators() -> tuple[str, ...]:
    """Names usable in ``propagators``: the W3C pair plus any installed propagator package."""
    from importlib.metadata import entry_points

    extra = {ep.name for ep in entry_points(group="opentelemetry_propagator")}
    return BUILTIN_PROPAGATORS + tuple(sorted(extra - set(BUILTIN_PROPAGATORS)))


def _check_propagator(name: str) -> str:
    if name not in BUILTIN_PROPAGATORS and name not in installed_propagators():
        raise ValueError(f"is not an installed propagator; allowed: {', '.join(installed_propagators())}")
    return name


Propagator = Annotated[str, AfterValidator(_check_propagator)]
EVERY_INSTRUMENTATION = "all"
NO_INSTRUMENTATION = "*"  # as OTEL_PYTHON_DISABLED_INSTRUMENTATIONS writes "every one"


def _instrumentation_name(wildcard: str, strict: bool) -> Callable[[str], str]:
    """An installed instrumentation, one opentelemetry-instrumentation knows (installed in another image), or the wildcard.

    Not ``strict`` (names switched off): any name is accepted unless it looks like a
    misspelling of an installed one, since upstream entry points are named otherwise than
    their packages (``grpc_client``, ``kafka``) and a name switched off that is not
    installed here is harmless, as with ``opentelemetry-instrument``.
    """

    def check(name: str) -> str:
        import difflib

        from otel_celery_launch.settings.instrumentations import installed_instrumentations, known_names

        installed = [item.name for item in installed_instrumentations()]
        if name == wildcard or name in installed or name in known_names():
            return name
        guess = difflib.get_close_matches(name, installed, n=1, cutoff=0.6)
        if not strict and not difflib.get_close_matches(name, installed, n=1, cutoff=0.75) and name.isascii() and name.isprintable():
            return name
        guess = guess or difflib.get_close_matches(name, known_names(), n=1, cutoff=0.6)
        hint = f"did you mean {guess[0]!r}? " if guess else ""
        raise ValueError(f"is not an instrumentation; {hint}allowed: {wildcard}, or one installed: {', '.join(installed) or '(none)'}")

    return check


EnabledName = Annotated[str, AfterValidator(_instrumentation_name(EVERY_INSTRUMENTATION, strict=True))]
DisabledName = Annotated[str, AfterValidator(_instrumentation_name(NO_INSTRUMENTATION, strict=False))]


class Section(BaseModel):
    """A YAML mapping: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSettings(Section):
    name: str | None = Field(None, max_length=SERVICE_MOST_CHARACTERS, description="service.name resource attribute")
    version: str | None = Field(None, max_length=SERVICE_MOST_CHARACTERS, description="service.version resource attribute")
    environment: str | None = Field(None, max_length=SERVICE_MOST_CHARACTERS, description="deployment.environment.name resource attribute")
    attributes: dict[str, str] = Field(default_factory=dict, description="further resource attributes")


class ExporterSettings(Section):
    protocol: Literal[PROTOCOLS] = Field(  # type: ignore[valid-type]
        "grpc", description="where spans go: OTLP over gRPC or HTTP, stdout, or nowhere"
    )
    endpoint: Endpoint | None = Field(
        None,
        description="collector base URL; http/protobuf appends /v1/traces (default port 4317 grpc, 4318 http)",
    )
    traces_endpoint: Endpoint | None = Field(None, description="full traces URL, used as given; wins over endpoint")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="sent with every export (names in lower case); values never printed"
    )
    timeout: Duration = Field(10.0, description="per-export timeout, e.g. 10s or 500ms")
    compression: Literal["gzip", "none"] = Field("none", description="export compression")
    insecure: StrictBool | None = Field(None, description="gRPC without TLS; default: true for http:// endpoints")
    certificate: ReadableFile | None = Field(None, description="CA bundle (PEM) to verify the collector")


class SamplerSettings(Section):
    type: Literal[SAMPLERS] = Field("parentbased_always_on", description="which spans are kept")  # type: ignore[valid-type]
    ratio: Fraction = Field(1.0, ge=0.0, le=1.0, description="fraction kept by the traceidratio samplers")


class BatchSettings(Section):
    schedule_delay: Duration = Field(5.0, description="longest wait before a batch is exported")
    export_timeout: Duration = Field(
        30.0, description="accepted as the SDK's; no effect: the sidecar retries a batch until the collector answers, and drops the oldest items when its queue is full"
    )
    max_queue_size: Count = Field(2048, gt=0, le=1_000_000, description="spans (and log records, and metrics) the sidecar holds; beyond it the oldest are dropped and counted")
    max_export_batch_size: Count = Field(512, gt=0, le=100_000, description="spans per export")
    exit_timeout: Duration = Field(
        2.0, description="longest the sidecar tries to export what it holds once the program has ended"
    )

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> BatchSettings:
        if self.max_export_batch_size > self.max_queue_size:
            raise ValueError(f"max_export_batch_size ({self.max_export_batch_size}) must not exceed max_queue_size ({self.max_queue_size})")
        return self


class LogsSettings(Section):
    export: StrictBool = Field(
        False, description="also send every log record the launcher formats to the OTLP collector, with its trace and span ids"
    )
    format: Literal["auto", "json", "console", "off"] = Field(
        "auto", description="log lines with trace ids: json, console, auto (console on a terminal), off (untouched)"
    )
    level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", description="lowest level written for a program that configures no logging; its own levels are never changed"
    )
    task_data: StrictBool = Field(
        False, description="exported records keep task arguments and results (Celery's data), which are left out by default"
    )


class MetricsSettings(Section):
    enabled: StrictBool = Field(True, description="Celery's task, worker and queue metrics (and instrumentations' own) to the OTLP exporter")
    export_interval: Duration = Field(60.0, description="time between two exports of metrics by each process")
    queue_depth_interval: Duration = Field(
        30.0, ge=1.0, description="time between two polls of each queue's depth, by the main process of each worker (1s at least)"
    )
    flower_runtime: StrictBool = Field(
        False, description="also the Celery instrumentation's own flower.task.runtime.seconds histogram (the run time measured a second time); its own run handlers then make the run spans, at their cost"
    )


class InstrumentationsSettings(Section):
    enabled: list[EnabledName] = Field(
        default_factory=lambda: [EVERY_INSTRUMENTATION],
        description="instrumentations used when their library is imported: all installed, or a list",
    )
    disabled: list[DisabledName] = Field(
        default_factory=list, description="instrumentations never used; * for every one (Celery's spans too)"
    )

    def uses(self, name: str) -> bool:
        listed = EVERY_INSTRUMENTATION in self.enabled or name in self.enabled
        return listed and NO_INSTRUMENTATION not in self.disabled and name not in self.disabled


class Settings(BaseSettings):
    """Everything the launcher needs to know (the config file holds any part of it)."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    disabled: StrictBool = Field(False, description="start the command without any telemetry")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="the launcher's own diagnostics; debug shows trace context on the wire"
    )
    service: ServiceSettings = ServiceSettings()
    exporter: ExporterSettings = ExporterSettings()
    propagators: list[Propagator] = Field(
        default_factory=lambda: list(BUILTIN_PROPAGATORS), description="context formats carried in task headers"
    )
    sampler: SamplerSettings = SamplerSettings()
    batch: BatchSettings = BatchSettings()
    logs: LogsSettings = LogsSettings()
    metrics: MetricsSettings = MetricsSettings()
    instrumentations: InstrumentationsSettings = InstrumentationsSettings()


FieldPath = tuple[str, ...]
Shape = Literal["scalar", "list", "mapping"]


@dataclass(frozen=True)
class Leaf:
    """One settable key: flags, the ``check`` report and the README reference are built from these."""

    path: FieldPath
    info: FieldInfo
    shape: Shape

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def duration(self) -> bool:
        return _validated_by(self.info, parse_duration)

    @property
    def boolean(self) -> bool:
        return _validated_by(self.info, parse_strict_bool)


def _validated_by(info: FieldInfo, check: object) -> bool:
    """Whether the field's type (``Duration``, ``StrictBool``, also within ``X | None``) runs ``check``."""
    rules = list(info.metadata)
    for argument in get_args(info.annotation):
        rules += getattr(argument, "__metadata__", ())
    return any(getattr(rule, "func", None) is check for rule in rules)


def leaves(model: type[BaseModel] = Settings, prefix: FieldPath = ()) -> Iterator[Leaf]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from leaves(annotation, prefix + (name,))
            continue
        origin = get_origin(annotation)
        shape: Shape = "list" if origin is list else "mapping" if origin is dict else "scalar"
        yield Leaf(prefix + (name,), info, shape)
