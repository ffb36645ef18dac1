"""The validated outcome of an earlier start, reused while nothing it was made from has changed.

Every start used to import pydantic-settings, build the model, validate and scan the installed
distributions' metadata: most of the launcher's start-up, paid again by every cron job,
``celery inspect`` and container restart with the same settings. A start that validated
cleanly leaves its plan and its warnings here; the next start with the same inputs takes
them back without importing any of that.

The key covers everything the outcome depends on: the launcher's code, the interpreter,
``sys.path`` and each of its directories' modification time (installing, upgrading or removing
a distribution changes its directory), the working directory, the words before ``--``, every
``OTEL_*`` variable, and, checked on reading, the config file's bytes and the variables it
interpolates. Outcomes that carry a secret (header values, credentials in an endpoint) are
never written, nor is anything derived from a header variable: the cache holds nothing that
needs protecting. Stored with the user's own permissions, in a directory only the user may
write; anything unexpected there is ignored and the start validates in full. ``check`` never
uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict

from otel_celery_launch import __version__
from otel_celery_launch.handoff import Plan, secret_endpoint

KEEP = 32  # outcomes kept; the oldest go first
_CODE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # the launcher's package


def _directory() -> str | None:
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache") if os.environ.get("HOME") else "")
    return os.path.join(base, "otel-celery-launch") if os.path.isabs(base) else None


def _ours(stat: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else: what another user cannot have planted."""
    return stat.st_uid == os.getuid() and not stat.st_mode & 0o022


def _stamp(path: str) -> str:
    try:
        stat = os.stat(path)
    except OSError:
        return "-"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _key(head: Sequence[str], environ: Mapping[str, str]) -> str:
    code = sorted(f"{entry.path}={_stamp(entry.path)}" for folder in (_CODE, os.path.join(_CODE, "settings"))
                  for entry in os.scandir(folder) if entry.name.endswith(".py"))
    variables = sorted((name, value) for name, value in environ.items() if name.startswith("OTEL_") and "HEADERS" not in name)
    material = [__version__, sys.executable, sys.version, os.getcwd(), list(head), variables, code,
                [(entry, _stamp(entry)) for entry in sys.path]]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:40]


def _inputs_digest(config_file: str | None, variables: Collection[str], environ: Mapping[str, str]) -> str | None:
    """What the outcome read besides the key: the file's bytes and the values of its ``${VAR}``s."""
    digest = hashlib.sha256()
    if config_file:
        try:
            with open(config_file, "rb") as file:
                digest.update(file.read())
        except OSError:
            return None
    digest.update(json.dumps(sorted((name, environ.get(name)) for name in variables)).encode())
    return digest.hexdigest()


def _secret(plan: Plan | None, environ: Mapping[str, str]) -> bool:
    """Whether the outcome or its inputs hold a credential, which is never written down."""
    headers = any(value.strip() for name, value in environ.items() if name.startswith("OTEL_") and "HEADERS" in name)
    return headers or (plan is not None and bool(plan.exporter.headers or secret_endpoint(plan.exporter.endpoint)))


def recall(head: Sequence[str], environ: Mapping[str, str]) -> tuple[Plan | None, list[str]] | None:
    """The plan and warnings an earlier start with these inputs validated, or None."""
    folder = _directory()
    if folder is None or _secret(None, environ):
        return None
    try:
        with open(os.path.join(folder, f"{_key(head, environ)}.json"), "rb") as file:
            if not (_ours(os.fstat(file.fileno())) and _ours(os.stat(folder))):
                return None
            entry = json.loads(file.read())
        if entry["inputs"] != _inputs_digest(entry["config_file"], entry["variables"], environ):
            return None
        plan = None if entry["plan"] is None else Plan.from_json(entry["plan"])
        warnings = [str(line) for line in entry["warnings"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return plan, warnings


def remember(head: Sequence[str], environ: Mapping[str, str], config_file: str | None, variables: Collection[str],
             plan: Plan | None, warnings: Sequence[str]) -> None:
    """Keep a clean outcome for the next start, unless it holds a secret; never fails the start."""
    folder = _directory()
    if folder is None or _secret(plan, environ):
        return
    config_file = os.path.abspath(config_file) if config_file else None
    entry = {"plan": None if plan is None else asdict(plan), "warnings": list(warnings), "config_file": config_file,
             "variables": sorted(variables), "inputs": _inputs_digest(config_file, variables, environ)}
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if not _ours(os.stat(folder)):
            return
        path = os.path.join(folder, f"{_key(head, environ)}.json")
        partial = f"{path}.{os.getpid()}.tmp"
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            json.dump(entry, file)
        os.replace(partial, path)
        kept = sorted((entry for entry in os.scandir(folder) if entry.name.endswith(".json")), key=lambda entry: entry.stat().st_mtime_ns)
        for old in kept[:-KEEP]:
            os.unlink(old.path)
    except (OSError, ValueError):
        return
