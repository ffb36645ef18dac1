"""The launched command's environment: the user's, plus the plan and the start-up hook, less the secrets."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Collection, Mapping

from otel_celery_launch.handoff import ENV_VAR, Plan, public_endpoint, secret_endpoint

HOOK_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "bootstrap", "site")
_HEADERS = re.compile(r"OTEL_EXPORTER_OTLP_(TRACES_|METRICS_|LOGS_)?HEADERS")
_ENDPOINT = re.compile(r"OTEL_EXPORTER_OTLP_(TRACES_|METRICS_|LOGS_)?ENDPOINT")


def child_environment(environ: Mapping[str, str], plan: Plan | None, secret_variables: Collection[str] = ()) -> dict[str, str]:
    """Without a plan (telemetry disabled) the hook and any inherited plan are taken out.

    With a sidecar, the credentials are the sidecar's alone: header variables, and the
    variables the config file put into header values or endpoints (``secret_variables``), are
    left out, and endpoints lose their user information and query, so no process of the
    program (each inherits this environment, and ``/proc/PID/environ`` shows it) holds them.

    The user's PYTHONPATH is kept, after the hook directory; processes the command starts
    inherit both, so ``celery multi`` workers are bootstrapped too. The SDK reads
    ``OTEL_SDK_DISABLED`` itself: when a flag or the file overrode it, the child gets the
    value the launcher decided, so that what ``check`` says is what the child does.
    """
    env = dict(environ)
    given = env.pop("PYTHONPATH", "")  # kept entry for entry: an empty entry means the working directory
    user_paths = [entry for entry in given.split(os.pathsep) if entry != HOOK_DIR] if given else []
    env.pop(ENV_VAR, None)
    if plan is not None:
        user_paths.insert(0, HOOK_DIR)
        plan = dataclasses.replace(plan, prefix=sys.prefix)
        env[ENV_VAR] = plan.to_env()
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":  # a flag said enabled: the SDK must agree
            env["OTEL_SDK_DISABLED"] = "false"
        if plan.sidecar:
            for name in list(env):
                if _HEADERS.fullmatch(name) or name in secret_variables:
                    del env[name]
                elif _ENDPOINT.fullmatch(name) and secret_endpoint(env[name]):
                    env[name] = public_endpoint(env[name])
    else:
        env["OTEL_SDK_DISABLED"] = "true"  # disabled, by whichever source: the program's own SDK agrees too
    if user_paths:
        env["PYTHONPATH"] = os.pathsep.join(user_paths)
    return env
