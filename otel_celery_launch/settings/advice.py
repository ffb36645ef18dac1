"""Likely mistakes in settings that are valid: the command still runs, with a warning.

Each of these is legal but almost always wrong, and would show up only as spans that
never arrive. Messages name the key and never a secret (URLs are shown as scheme://host:port).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from otel_celery_launch.masking import host_port
from otel_celery_launch.settings.model import EVERY_INSTRUMENTATION, Settings
from otel_celery_launch.settings.resolve import TRACES_PATH, traces_url

_OTHER_PORT = {"grpc": (4318, "http/protobuf"), "http/protobuf": (4317, "grpc")}


def likely_mistakes(settings: Settings) -> list[str]:
    if settings.disabled:
        return []
    return _endpoint_mistakes(settings) + _instrumentation_mistakes(settings)


def _instrumentation_mistakes(settings: Settings) -> list[str]:
    """Instrumentations wanted that cannot run here: one line each, naming packages and versions."""
    from otel_celery_launch.settings.instrumentations import installed_instrumentations

    wanted = settings.instrumentations
    installed = {item.name: item for item in installed_instrumentations()}
    advice = [
        f"instrumentations: {item.name} is off: {item.problem}" + (" (otel-celery-launch requirements prints a coherent set)" if item.skewed else "")
        for item in installed.values()
        if item.problem is not None and wanted.uses(item.name) and (item.skewed or not item.problem.startswith("library not installed"))
    ]
    advice += [
        f"instrumentations.enabled: {name} is not installed here (pip install opentelemetry-instrumentation-{name.replace('_', '-')})"
        for name in wanted.enabled
        if name != EVERY_INSTRUMENTATION and name not in installed and wanted.uses(name)
    ]
    return advice


def _endpoint_mistakes(settings: Settings) -> list[str]:
    exporter = settings.exporter
    url = traces_url(exporter)
    if url is None:
        return []
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{host_port(url)}"
    key = "exporter.traces_endpoint" if exporter.traces_endpoint else "exporter.endpoint"
    advice = []
    port, protocol = _OTHER_PORT[exporter.protocol]
    if parts.port == port:
        advice.append(
            f"{key}: port {port} is where collectors speak {protocol}, but exporter.protocol is "
            f"{exporter.protocol} ({shown})"
        )
    if parts.scheme == "https" and exporter.insecure:
        advice.append(f"{key}: an https:// endpoint with exporter.insecure true; TLS is used anyway ({shown})")
    if exporter.protocol == "grpc" and parts.path not in ("", "/"):
        advice.append(f"{key}: gRPC ignores the path of the endpoint; only {shown} is used")
    if exporter.protocol == "http/protobuf" and parts.path.count(TRACES_PATH) > 1:
        advice.append(f"{key}: the path holds {TRACES_PATH} twice ({parts.path}); exporter.endpoint is a base URL to which "
                      f"{TRACES_PATH} is appended, exporter.traces_endpoint a full URL used as given")
    elif exporter.protocol == "http/protobuf" and not parts.path.rstrip("/").endswith(TRACES_PATH):
        advice.append(f"{key}: collectors take OTLP/HTTP spans at {TRACES_PATH}, but spans would go to {parts.path or '/'}")
    return advice
