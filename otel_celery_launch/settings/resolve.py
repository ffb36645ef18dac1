"""Turn validated settings into the plan the child runs: every default and spec rule applied here, once."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from otel_celery_launch.handoff import TRACES_PATH, BatchPlan, ExporterPlan, InstrumentationPlan, LogsPlan, MetricsPlan, Plan
from otel_celery_launch.settings.instrumentations import installed_instrumentations
from otel_celery_launch.settings.model import ExporterSettings, ServiceSettings, Settings

DEFAULT_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}


def traces_url(exporter: ExporterSettings) -> str | None:
    """The URL spans are sent to, following the OTLP exporter specification.

    The per-signal endpoint is used as given; the generic endpoint gets ``/v1/traces``
    appended for http/protobuf; with neither, the default port of the protocol is used.
    """
    if exporter.protocol not in DEFAULT_ENDPOINTS:
        return None
    if exporter.traces_endpoint:
        return exporter.traces_endpoint
    base = exporter.endpoint or DEFAULT_ENDPOINTS[exporter.protocol]
    if exporter.protocol == "grpc":
        return base
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + TRACES_PATH))  # a query stays a query


def resource_attributes(service: ServiceSettings) -> dict[str, str]:
    named = {
        "service.name": service.name,
        "service.version": service.version,
        "deployment.environment.name": service.environment,
    }
    return {**service.attributes, **{key: value for key, value in named.items() if value is not None}}


def build_plan(settings: Settings) -> Plan:
    exporter = settings.exporter
    url = traces_url(exporter)
    scheme = urlsplit(url).scheme if url else None
    # https always means TLS (the exporters agree); otherwise http:// means none unless said
    insecure = scheme == "http" if exporter.insecure is None or scheme == "https" else exporter.insecure
    return Plan(
        resource=resource_attributes(settings.service),
        exporter=ExporterPlan(
            protocol=exporter.protocol,
            endpoint=url,
            headers={key: value.get_secret_value() for key, value in exporter.headers.items()},
            timeout=exporter.timeout,
            compression=exporter.compression,
            insecure=insecure,
            certificate=exporter.certificate,
        ),
        propagators=list(settings.propagators),
        sampler=settings.sampler.type,
        sampler_ratio=settings.sampler.ratio,
        batch=BatchPlan(**settings.batch.model_dump()),
        logs=LogsPlan(**settings.logs.model_dump()),
        metrics=MetricsPlan(**settings.metrics.model_dump()),
        log_level=settings.log_level,
        instrumentations=tuple(
            InstrumentationPlan(item.name, item.target, item.modules, item.guards)
            for item in installed_instrumentations()
            if item.problem is None and settings.instrumentations.uses(item.name)
        ),
    )
