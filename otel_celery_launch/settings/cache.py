"""The validated outcome of an earlier start, reused while nothing it was made from has changed.

Every start used to import pydantic-settings, build the model, validate and scan the installed
distributions' metadata: most of the launcher's start-up, paid again by every cron job,
``celery inspect`` and container restart with the same settings. A start that validated
cleanly leaves its plan and its warnings here; the next start with the same inputs takes
them back without importing any of that.

The key, taken before validating, covers everything the outcome depends on: the launcher's
code, the interpreter, ``sys.path`` with the names in each of its directories (installing,
upgrading or removing a distribution changes a ``*.dist-info`` name), the working directory,
the words before ``--`` and every ``OTEL_*`` variable. Checked on reading: the config file's
bytes against those validated, the values of the ``${VAR}``\\ s it reads, and the CA bundle still
being a readable file. Nothing is written when a credential took part (header values, an
endpoint's user information or query, in any source): the cache holds nothing that needs
protecting, not even a hash of it. The directory must be the user's own, not a link, and
writable by no one else; anything unexpected there is ignored and the start validates in full.
``check`` never uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict

from otel_celery_launch import __version__
from otel_celery_launch.handoff import Plan, secret_endpoint
from otel_celery_launch.settings.config_bytes import ConfigFileError, read_bounded

KEEP = 32  # outcomes kept; the oldest go first
_CODE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # the launcher's package
_SUFFIX = ".json"


def _directory() -> str | None:
    """Where outcomes are kept: under ``$XDG_CACHE_HOME``, or the user's own home's ``.cache``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not base:
        home = os.environ.get("HOME", "")
        try:
            if not os.path.isabs(home) or os.stat(home).st_uid != os.getuid():  # not someone else's home (su without -)
                return None
        except OSError:
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "otel-celery-launch") if os.path.isabs(base) else None


def _open_directory(create: bool) -> int | None:
    """A descriptor of the directory, if it is a real directory of this user's that no one else may write."""
    path = _directory()
    if path is None:
        return None
    try:
        if create:
            os.makedirs(path, mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if not _ours(os.fstat(descriptor)):
        os.close(descriptor)
        return None
    return descriptor


def _ours(found: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else: what another user cannot have planted."""
    return found.st_uid == os.getuid() and not found.st_mode & 0o022


def _listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path or os.curdir))
    except OSError:
        return []


def key(head: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """What a start looks like before it validates; None where nothing may be recalled or kept."""
    if _secret_variables(environ):
        return None
    code = sorted(f"{entry.path}={entry.stat().st_mtime_ns}" for folder in (_CODE, os.path.join(_CODE, "settings"))
                  for entry in os.scandir(folder) if entry.name.endswith(".py"))
    variables = sorted((name, value) for name, value in environ.items() if name.startswith("OTEL_"))
    try:
        material = [__version__, sys.executable, sys.version, os.getcwd(), list(head), variables, code,
                    [(entry, _listing(entry)) for entry in sys.path]]
    except OSError:  # the working directory is gone
        return None
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()[:40]


def _secret_variables(environ: Mapping[str, str]) -> bool:
    """Whether an ``OTEL_*`` variable holds a credential: any header, or an endpoint with user information or a query."""
    return any(value.strip() and ("HEADERS" in name or ("ENDPOINT" in name and secret_endpoint(value)))
               for name, value in environ.items() if name.startswith("OTEL_"))


def _variables_digest(variables: Collection[str], environ: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted((name, environ.get(name)) for name in variables)).encode()).hexdigest()


def _still_true(entry: dict, environ: Mapping[str, str]) -> bool:
    """What the outcome read besides the key is as it was: the file's bytes, its variables, the CA bundle."""
    if entry["config_file"]:
        try:
            if hashlib.sha256(read_bounded(entry["config_file"])).hexdigest() != entry["config_digest"]:
                return False
        except ConfigFileError:
            return False
    if _variables_digest(entry["variables"], environ) != entry["variables_digest"]:
        return False
    certificate = (entry["plan"] or {}).get("exporter", {}).get("certificate")
    return not certificate or (os.path.isfile(certificate) and os.access(certificate, os.R_OK))


def recall(start_key: str | None, environ: Mapping[str, str]) -> tuple[Plan | None, list[str]] | None:
    """The plan and warnings an earlier start with these inputs validated, or None."""
    if start_key is None:
        return None
    folder = _open_directory(create=False)
    if folder is None:
        return None
    try:
        descriptor = os.open(start_key + _SUFFIX, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        with open(descriptor, "rb") as file:
            found = os.fstat(descriptor)
            if not (_ours(found) and stat.S_ISREG(found.st_mode)):
                return None
            entry = json.loads(file.read(1 << 20))
        if not _still_true(entry, environ):
            return None
        plan = None if entry["plan"] is None else Plan.from_json(entry["plan"])
        return plan, [str(line) for line in entry["warnings"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    finally:
        os.close(folder)


def remember(start_key: str | None, environ: Mapping[str, str], config_file: str | None, config_digest: str,
             variables: Collection[str], plan: Plan | None, warnings: Sequence[str]) -> None:
    """Keep a clean outcome for the next start; the caller has made sure no credential took part. Never fails the start."""
    if start_key is None:
        return
    folder = _open_directory(create=True)
    if folder is None:
        return
    entry = {"plan": None if plan is None else asdict(plan), "warnings": list(warnings),
             "config_file": os.path.abspath(config_file) if config_file else None, "config_digest": config_digest,
             "variables": sorted(variables), "variables_digest": _variables_digest(variables, environ)}
    partial = f"{start_key}.{os.getpid()}.tmp"
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        with open(descriptor, "w") as file:
            json.dump(entry, file)
        os.replace(partial, start_key + _SUFFIX, src_dir_fd=folder, dst_dir_fd=folder)
        kept = sorted((item for item in os.scandir(folder) if item.name.endswith(_SUFFIX)), key=lambda item: item.stat().st_mtime_ns)
        for old in kept[:-KEEP]:
            os.unlink(old.name, dir_fd=folder)
    except (OSError, ValueError):
        try:
            os.unlink(partial, dir_fd=folder)
        except OSError:
            pass
    finally:
        os.close(folder)
