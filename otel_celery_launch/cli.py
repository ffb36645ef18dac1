"""``otel-celery-launch``: validate settings, then exec the command with the bootstrap in place.

Exit statuses: the command's own once it runs; 2 for bad usage or settings; 126 for a
command that cannot be executed; 127 for one that is not found.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from otel_celery_launch import __version__

if TYPE_CHECKING:
    from otel_celery_launch.handoff import Plan

USAGE_ERROR = 2
PROG = "otel-celery-launch"
_SETTING = "setting:"


class _Parser(argparse.ArgumentParser):
    """argparse, with hints for the two usual slips: a misspelled flag, and a command without ``--``."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            import difflib

            words = message.removeprefix("unrecognized arguments: ").split()
            flags = [option for action in self._actions for option in action.option_strings]
            for word in words:
                guess = difflib.get_close_matches(word.partition("=")[0], flags, n=1, cutoff=0.7) if word.startswith("--") else []
                if guess:
                    message += f"; did you mean {guess[0]}?"
                    break
            else:
                if self.prog == PROG and not words[0].startswith("-"):
                    message += f"; put the command after --, as in  {PROG} -- {' '.join(words)}"
        super().error(message)


def _parser(check: bool) -> argparse.ArgumentParser:
    from otel_celery_launch.settings.model import leaves
    from otel_celery_launch.settings.sources import CONFIG_ENV_VAR, flag_name

    parser = _Parser(
        prog=f"{PROG} check" if check else PROG,
        usage=f"{PROG} check [--config FILE] [setting flags]"
        if check
        else f"{PROG} [--config FILE] [setting flags] -- COMMAND [ARGS...]\n       {PROG} check [--json] [--config FILE] [setting flags]\n       {PROG} schema\n       {PROG} requirements\n       {PROG} view [--grpc-port N] [--http-port N]\n       {PROG} demo",
        description="Validate the settings and print them with the source of each value."
        if check
        else "Run COMMAND with OpenTelemetry tracing set up inside it before any of its code runs. "
        "Settings come from flags, then OTEL_* environment variables, then the YAML file, then defaults.",
    )
    if not check:
        parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--config", metavar="FILE", help=f"YAML settings file (or set {CONFIG_ENV_VAR})")
    group = parser.add_argument_group("setting flags", "each overrides the same key from the environment and the file")
    for leaf in leaves():
        if leaf.boolean:  # a switch: --disabled alone means true; --disabled false also works
            group.add_argument(flag_name(leaf), dest=_SETTING + leaf.dotted, nargs="?", const="true", metavar="BOOL",
                               help=leaf.info.description)
            continue
        metavar = "K=V,..." if leaf.shape == "mapping" else "A,B,..." if leaf.shape == "list" else "DURATION" if leaf.duration else "VALUE"
        group.add_argument(flag_name(leaf), dest=_SETTING + leaf.dotted, metavar=metavar, help=leaf.info.description)
    return parser


def _load(options: argparse.Namespace):  # -> LoadedSettings, or exits 2
    from otel_celery_launch.settings.errors import SettingsError
    from otel_celery_launch.settings.load import load_settings

    flags = {
        tuple(dest.removeprefix(_SETTING).split(".")): value
        for dest, value in vars(options).items()
        if dest.startswith(_SETTING) and value is not None
    }
    try:
        return load_settings(os.environ, flags, options.config)
    except SettingsError as error:
        for problem in error.problems:
            print(f"{PROG}: error: {problem}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None


def _warn(problems: Sequence[str]) -> None:
    for problem in problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)


def _check(argv: Sequence[str]) -> int:
    from otel_celery_launch.settings.advice import likely_mistakes
    from otel_celery_launch.settings.report import render_check, render_check_json

    parser = _parser(check=True)
    parser.add_argument("--json", action="store_true", help="print the report as JSON, for machines")
    options = parser.parse_args(argv)
    loaded = _load(options)
    warnings = likely_mistakes(loaded.settings)
    if options.json:
        print(render_check_json(loaded, warnings))
    else:
        print(render_check(loaded))
        _warn(warnings)
    return 0


def _schema(argv: Sequence[str]) -> int:
    _Parser(prog=f"{PROG} schema", description="Print the JSON Schema of the config file, for editors to complete "
            "and validate it.").parse_args(argv)
    import json

    from otel_celery_launch.settings.model import Settings

    print(json.dumps(Settings.model_json_schema(), indent=2))
    return 0


def _requirements(argv: Sequence[str]) -> int:
    parser = _Parser(prog=f"{PROG} requirements", description="Print the instrumentations to install for the libraries installed here, "
                     "one requirement per line, all of one contrib release that the package index has, with the OpenTelemetry SDK made "
                     f"with it, so that versions agree: pip install $({PROG} requirements). What it chose, and why, goes to stderr.")
    parser.add_argument("--offline", action="store_true", help="do not ask the package index (through pip) which releases it has: "
                        "pin to the release made with the installed SDK")
    options = parser.parse_args(argv)
    from otel_celery_launch.settings.requirements import Verdict, requirements_for_installed_libraries

    chosen = requirements_for_installed_libraries((lambda _: Verdict(False, unknown="not asked: --offline")) if options.offline else None)
    for line in chosen.lines:
        print(line)
    for note in chosen.notes:
        print(f"{PROG}: requirements: {note}", file=sys.stderr)
    return 0


def _run(argv: Sequence[str]) -> int:
    from otel_celery_launch.launch.command import LaunchError, exec_command, is_ours, python_of, resolve, shebang, skips_the_hook
    from otel_celery_launch.launch.environment import child_environment
    from otel_celery_launch.launch.sidecar import start_sidecar
    from otel_celery_launch.settings import cache

    split = argv.index("--") if "--" in argv else len(argv)
    head, command = argv[:split], argv[split + 1 :]
    start_key = cache.key(head, os.environ) if command else None  # taken before validating: what changes meanwhile misses next time
    recalled = cache.recall(start_key, os.environ)
    secret_variables: frozenset[str] = frozenset()
    if recalled is None:
        plan, warnings, secret_variables = _validate(head, command, start_key)
    else:
        plan, warnings = recalled
    _warn(warnings)
    environ = dict(os.environ)
    interpreter = python_of(command[0], environ)
    try:
        script = shebang(resolve(command[0], environ))
    except LaunchError:
        script = []
    ours = interpreter is not None and is_ours(interpreter) and not skips_the_hook(command) and not skips_the_hook(script)
    if plan is not None and interpreter and not is_ours(interpreter):
        _warn([f"{command[0]} runs {interpreter}, not the Python this launcher is installed in ({sys.executable}): "
               "the bootstrap cannot load there and the command will run untraced"])
    elif plan is not None and interpreter and not ours:
        _warn([f"{command[0]}: Python's -E, -I or -S skips the bootstrap; the command will run untraced"])
    try:
        resolve(command[0], environ)  # a command that cannot start needs no sidecar
        if plan is not None and plan.exports:
            plan = start_sidecar(plan, environ)
        exec_command(command, child_environment(environ, plan, secret_variables))
    except LaunchError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return error.status
    return 0  # not reached: exec replaced this process


def _validate(head: Sequence[str], command: Sequence[str], start_key: str | None) -> tuple[Plan | None, list[str], frozenset[str]]:
    """Exits 2 on bad input. The full path: flags parsed, every source validated, instrumentations scanned; a clean outcome is cached."""
    from otel_celery_launch.settings import cache
    from otel_celery_launch.settings.advice import likely_mistakes
    from otel_celery_launch.settings.resolve import build_plan

    parser = _parser(check=False)
    options = parser.parse_args(head)
    if not command:
        parser.error("no command given: put it after --, as in  otel-celery-launch -- celery -A tasks worker")
    loaded = _load(options)
    plan = None if loaded.settings.disabled else build_plan(loaded.settings)
    warnings = likely_mistakes(loaded.settings)
    if not loaded.holds_secret():
        cache.remember(start_key, os.environ, loaded.config_file, loaded.config_digest, loaded.variables, plan, warnings)
    return plan, warnings, loaded.secret_variables


def _subcommand(argv: list[str]) -> tuple[str | None, list[str]]:
    """``check``, ``schema``, ``requirements``, ``view`` or ``demo`` and the other words, wherever it stands before ``--``.

    A word counts as the subcommand only where it is not the value of the flag before it
    (``--service-name check`` names a service).
    """
    head = argv[: argv.index("--")] if "--" in argv else argv
    for index, word in enumerate(head):
        if word in _SUBCOMMANDS:
            rest = argv[:index] + argv[index + 1 :]
            parser = _parser(check=True)
            parser.exit_on_error = False
            try:
                parser.parse_known_args(argv[:index])
            except argparse.ArgumentError:
                continue  # the flag before it wants it as its value
            return word, rest
    return None, argv


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        word, rest = _subcommand(argv)
        status = _SUBCOMMANDS[word](rest) if word is not None else _run(argv)
        sys.stdout.flush()  # here, where a closed pipe can be caught
        return status
    except BrokenPipeError:  # `check --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _view(argv: Sequence[str]) -> int:
    parser = _Parser(prog=f"{PROG} view", description="A local OTLP collector for development: receives traces, metrics and logs "
                     "over gRPC and HTTP and prints each trace as a tree once it is complete, the log lines under their spans, "
                     "and a summary of the metrics now and then. Point programs at it with the default endpoint, or "
                     "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317.")
    parser.add_argument("--grpc-port", type=int, default=4317, metavar="N", help="OTLP/gRPC port (default 4317; 0 picks a free one)")
    parser.add_argument("--http-port", type=int, default=4318, metavar="N", help="OTLP/HTTP port (default 4318; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--settle", type=float, default=1.5, metavar="SECONDS",
                        help="a whole trace is printed once none of its spans has arrived for this long (default 1.5)")
    parser.add_argument("--wait-for-parent", type=float, default=7.0, metavar="SECONDS",
                        help="a trace whose parent span is missing waits this long after its latest span for it, then is printed "
                        "with a line naming the missing parent; longer than the programs' batch delay (default 7, for 5)")
    parser.add_argument("--metrics-every", type=float, default=10.0, metavar="SECONDS", help="time between two metrics summaries (default 10)")
    parser.add_argument("--max-spans", type=int, default=100_000, metavar="N",
                        help="spans and log lines held waiting to be printed; over it, the longest-waiting traces are dropped, "
                        "and counted (default 100000)")
    parser.add_argument("--remember", type=int, default=10_000, metavar="N",
                        help="printed traces remembered, so that their late spans print as a continuation (default 10000)")
    parser.add_argument("--max-series", type=int, default=10_000, metavar="N",
                        help="metric series (metric and attribute set) summed up; points of further ones are counted (default 10000)")
    options = parser.parse_args(argv)
    for name in ("grpc_port", "http_port"):
        if not 0 <= getattr(options, name) <= 65535:
            parser.error(f"--{name.replace('_', '-')} must be a port number from 0 to 65535")
    for name in ("settle", "wait_for_parent", "metrics_every"):
        if not 0 < getattr(options, name) <= 3600:
            parser.error(f"--{name.replace('_', '-')} must be more than 0 and at most 3600 seconds")
    for name in ("max_spans", "remember", "max_series"):
        if not 1 <= getattr(options, name) <= 100_000_000:
            parser.error(f"--{name.replace('_', '-')} must be from 1 to 100000000")
    try:
        from otel_celery_launch.view import Options, run_view

        return run_view(Options(**vars(options)))
    except KeyboardInterrupt:  # Ctrl-C while starting
        return 0


def _demo(argv: Sequence[str]) -> int:
    _Parser(prog=f"{PROG} demo", description="Run a producer and a worker under the launcher, with a broker made of files "
            "and an embedded collector, and print the trace they make. Needs no broker and no collector.").parse_args(argv)
    from otel_celery_launch.demo import run_demo

    return run_demo()


_SUBCOMMANDS = {"check": _check, "schema": _schema, "requirements": _requirements, "view": _view, "demo": _demo}
