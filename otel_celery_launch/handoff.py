"""The already-validated plan the launcher hands to the bootstrap in the child, and to the sidecar.

The launcher validates with pydantic; the child must not pay for pydantic again, so the
plan crosses ``exec`` as one JSON environment variable holding plain values that need no
further checking. Standard library only: this module is imported on every child start.

Header values, and an endpoint's user information and query, are secrets: only the sidecar
gets them (through a pipe), as it alone exports. The variable, which every descendant of the
program inherits and ``/proc/PID/environ`` shows, holds the plan without them, and the name
of the sidecar's socket.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

ENV_VAR = "OTEL_CELERY_LAUNCH_PLAN"
TRACES_PATH = "/v1/traces"  # where OTLP/HTTP takes spans; metrics and logs beside it


@dataclass(frozen=True)
class ExporterPlan:
    protocol: str  # grpc | http/protobuf | console | none
    endpoint: str | None = None  # final URL: for http/protobuf it already ends in the signal path
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    compression: str = "none"
    insecure: bool = False
    certificate: str | None = None


@dataclass(frozen=True)
class BatchPlan:
    schedule_delay: float = 5.0
    export_timeout: float = 30.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    exit_timeout: float = 2.0


@dataclass(frozen=True)
class LogsPlan:
    format: str = "auto"  # auto | json | console | off
    level: str = "info"
    export: bool = False  # records also go to the collector
    task_data: bool = False  # exported records keep task arguments and results


@dataclass(frozen=True)
class MetricsPlan:
    enabled: bool = True
    export_interval: float = 60.0
    queue_depth_interval: float = 30.0
    flower_runtime: bool = False


@dataclass(frozen=True)
class InstrumentationPlan:
    name: str  # as installed: celery, flask, ...
    target: str  # module:attribute of the instrumentor
    modules: tuple[str, ...]  # importing any of these activates it
    guards: tuple[str, ...] = ()  # top-level packages its set-up imports from (only their half-made modules hold it back)


@dataclass(frozen=True)
class Plan:
    resource: dict[str, str]
    exporter: ExporterPlan
    propagators: list[str]
    sampler: str
    sampler_ratio: float
    batch: BatchPlan
    logs: LogsPlan = field(default_factory=LogsPlan)
    metrics: MetricsPlan = field(default_factory=MetricsPlan)
    log_level: str = "info"
    instrumentations: tuple[InstrumentationPlan, ...] = ()  # those to activate: on, and able to run here
    prefix: str = ""  # sys.prefix of the launcher's Python: other interpreters that inherit the plan ignore it
    sidecar: str = ""  # name of the sidecar's socket; empty: nothing is exported
    main_pid: int = 0  # the program's main process (the launcher's PID); 0: not known, and each process speaks for itself

    @property
    def exports(self) -> bool:
        """Whether a sidecar exports for the program."""
        return self.exporter.protocol != "none"

    @property
    def sends_metrics(self) -> bool:
        """Metrics and logs go over OTLP only: on the console they would bury the spans."""
        return self.metrics.enabled and self.exporter.protocol in ("grpc", "http/protobuf") and bool(self.sidecar)

    @property
    def sends_logs(self) -> bool:
        return self.logs.export and self.exporter.protocol in ("grpc", "http/protobuf") and bool(self.sidecar)

    def to_env(self) -> str:
        """The plan without its secrets: header values, and an endpoint with credentials or a query."""
        data = asdict(self)
        data["exporter"]["headers"] = {}
        if self.exporter.endpoint and secret_endpoint(self.exporter.endpoint):
            data["exporter"]["endpoint"] = public_endpoint(self.exporter.endpoint)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Plan | None:
        raw = environ.get(ENV_VAR)
        return cls.from_json(json.loads(raw)) if raw else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """From the plain values of :meth:`to_env`, or of ``asdict`` (the sidecar's, secrets and all)."""
        return cls(
            **{
                **data,
                "exporter": ExporterPlan(**data["exporter"]),
                "batch": BatchPlan(**data["batch"]),
                "logs": LogsPlan(**data.get("logs", {})),
                "metrics": MetricsPlan(**data.get("metrics", {})),
                "instrumentations": tuple(
                    InstrumentationPlan(item["name"], item["target"], tuple(item["modules"]), tuple(item.get("guards", ())))
                    for item in data.get("instrumentations", ())
                ),
            }
        )


def secret_endpoint(url: str | None) -> bool:
    """Whether a URL carries what may be a credential: user information, a query or a fragment."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL (an unbalanced bracket): it may still hold one
        return True
    return "@" in parts.netloc or bool(parts.query or parts.fragment)


def public_endpoint(url: str) -> str:
    """The endpoint without user information, query or fragment: what the program's processes may see (nothing of one that is no URL)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
