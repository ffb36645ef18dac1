"""The already-validated plan the launcher hands to the bootstrap in the child.

The launcher validates with pydantic; the child must not pay for pydantic again, so the
plan crosses ``exec`` as one JSON environment variable holding plain values that need no
further checking. Standard library only: this module is imported on every child start.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

ENV_VAR = "OTEL_CELERY_LAUNCH_PLAN"


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


@dataclass(frozen=True)
class Plan:
    resource: dict[str, str]
    exporter: ExporterPlan
    propagators: list[str]
    sampler: str
    sampler_ratio: float
    batch: BatchPlan
    logs: LogsPlan = field(default_factory=LogsPlan)
    log_level: str = "info"
    prefix: str = ""  # sys.prefix of the launcher's Python: other interpreters that inherit the plan ignore it

    def to_env(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Plan | None:
        raw = environ.get(ENV_VAR)
        if not raw:
            return None
        data: dict[str, Any] = json.loads(raw)
        return cls(
            **{
                **data,
                "exporter": ExporterPlan(**data["exporter"]),
                "batch": BatchPlan(**data["batch"]),
                "logs": LogsPlan(**data.get("logs", {})),
            }
        )
