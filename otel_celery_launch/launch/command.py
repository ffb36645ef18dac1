"""Resolve the command on PATH and exec it: same PID, same streams, its exit status is ours."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

COMMAND_NOT_FOUND = 127
COMMAND_NOT_EXECUTABLE = 126


class LaunchError(Exception):
    """The command cannot be started; ``status`` follows the shell's conventions."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def resolve(name: str, environ: Mapping[str, str]) -> str:
    """The file ``name`` refers to, found the way a shell finds it."""
    if os.sep in name:
        candidates = [name]
    else:
        candidates = [os.path.join(directory or os.curdir, name) for directory in environ.get("PATH", os.defpath).split(os.pathsep)]
    found_but_not_executable = None
    for path in candidates:
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return path
            found_but_not_executable = found_but_not_executable or path
        elif os.path.isdir(path) and os.sep in name:
            raise LaunchError(COMMAND_NOT_EXECUTABLE, f"{name}: is a directory")
    if found_but_not_executable:
        raise LaunchError(COMMAND_NOT_EXECUTABLE, f"{found_but_not_executable}: permission denied (not executable)")
    raise LaunchError(COMMAND_NOT_FOUND, f"{name}: command not found")


def python_of(argv0: str, environ: Mapping[str, str]) -> str | None:
    """The Python that will run the command, or None if it is not run by a Python.

    Looks at the command itself (``python3``) or at a script's ``#!`` line (``celery``).
    """
    try:
        path = resolve(argv0, environ)
    except LaunchError:
        return None
    if os.path.basename(path).startswith("python"):
        return path
    words = shebang(path)
    if not words or not os.path.basename(words[0]).startswith("python"):
        return None
    return words[0] if os.sep in words[0] else _quiet_resolve(words[0], environ)


def shebang(path: str) -> list[str]:
    """The interpreter and its options from a script's ``#!`` line (past ``env``), or nothing."""
    try:
        with open(path, "rb") as script:
            first = script.readline(256).decode("utf-8", "replace")
    except OSError:
        return []
    words = first[2:].split() if first.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        words = words[1:]
    return words


def is_ours(interpreter: str) -> bool:
    """Whether ``interpreter`` is the Python of the launcher's own environment, where the bootstrap is."""
    if os.path.dirname(os.path.abspath(interpreter)) == os.path.dirname(os.path.abspath(sys.executable)):
        return True
    outside_a_venv = sys.prefix == sys.base_prefix  # then a link to the same binary is the same environment
    return outside_a_venv and os.path.realpath(interpreter) == os.path.realpath(sys.executable)


def skips_the_hook(argv: Sequence[str]) -> bool:
    """Whether Python's options (``-E``, ``-I``, ``-S``, alone or with others) skip sitecustomize."""
    arguments = iter(argv[1:])
    for argument in arguments:
        if not argument.startswith("-") or argument.startswith("--") or argument == "-":
            return False
        for position, letter in enumerate(argument[1:], start=1):
            if letter in "EIS":
                return True
            if letter in "cm":  # the rest is the program's
                return False
            if letter in "WX":  # takes a value, in this word or the next
                if position == len(argument) - 1:
                    next(arguments, None)
                break
    return False


def _quiet_resolve(name: str, environ: Mapping[str, str]) -> str | None:
    try:
        return resolve(name, environ)
    except LaunchError:
        return None


def exec_command(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Replace this process with the command; returns only by raising :class:`LaunchError`."""
    path = resolve(argv[0], environ)
    try:
        os.execve(path, list(argv), dict(environ))
    except OSError as error:
        raise LaunchError(COMMAND_NOT_EXECUTABLE, f"{argv[0]}: cannot execute ({error.strerror})") from None
