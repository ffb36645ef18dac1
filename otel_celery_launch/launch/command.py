"""Resolve the command on PATH and exec it: same PID, same streams, its exit status is ours."""

from __future__ import annotations

import os
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


def exec_command(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Replace this process with the command; returns only by raising :class:`LaunchError`."""
    path = resolve(argv[0], environ)
    try:
        os.execve(path, list(argv), dict(environ))
    except OSError as error:
        raise LaunchError(COMMAND_NOT_EXECUTABLE, f"{argv[0]}: cannot execute ({error.strerror})") from None
