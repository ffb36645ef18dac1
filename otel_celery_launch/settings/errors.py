"""User mistakes in settings, reported all at once, one line each, never with a traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    where: str  # a YAML path, an environment variable, a flag or a file
    message: str  # what is wrong and what is allowed; never a secret value

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class SettingsError(Exception):
    """Raised before anything runs; the launcher prints each problem and exits 2."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems
