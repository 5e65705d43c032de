"""The ``influmatch`` command line.

Each command lives in its own module of this package, :mod:`experiments.cli`, with two functions,
``add_arguments(parser)`` and ``run(args) -> int``: it parses its arguments, calls the library
(:mod:`experiments` and the packages below it) and prints. Each can also be run as
``python -m experiments.cli.<command>``. Only the module of the command being run is imported, so
``influmatch market`` does not pay for torch. Nothing outside this package imports from it.

Errors a user can cause (a bad file, a bad value) are raised by the library as ``ValueError`` or
``OSError`` subclasses with a message naming the file, row, field or value; here they become one line on
stderr and exit code 2, with no traceback (``--traceback`` shows it, for developers).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from experiments.files import shorten

#: command -> (module, one-line help). Listed in the order a newcomer meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "market": (
        "experiments.cli.market",
        "generate an influencer pool and check it against the published figures",
    ),
    "demo": ("experiments.cli.demo", "run the shipped demo experiment end to end and write its HTML report"),
    "segment": ("experiments.cli.segment", "segment influencers with k-means and profile the segments"),
    "train": (
        "experiments.cli.train",
        "train one agent and write a run folder (model, learning curve, score)",
    ),
    "evaluate": (
        "experiments.cli.evaluate",
        "re-evaluate saved runs on their fixed campaigns and compare them",
    ),
    "plot": ("experiments.cli.plot", "draw learning curves, final scores, a CQI tree or segments from runs"),
    "sweep": (
        "experiments.cli.sweep",
        "run agents x variants x seeds from a YAML config (joblib or Ray), resumably",
    ),
    "report": ("experiments.cli.report", "write a self-contained HTML report of a sweep for a product team"),
    "log": ("experiments.cli.log", "log the matches a policy makes, with exact propensities"),
    "ope": ("experiments.cli.ope", "estimate a policy's value from logged matches (off-policy evaluation)"),
    "ope-backtest": (
        "experiments.cli.ope_backtest",
        "measure the off-policy estimators against the simulator's truth over a grid of scenarios",
    ),
    "timing": (
        "experiments.cli.timing",
        "when to hire: the planner's hire-now-or-wait table on a sweep's market, and where policies wait",
    ),
    "fit": (
        "experiments.cli.fit",
        "fit the market's outcome parameters to your influencers and logged matches",
    ),
    "bench": ("experiments.cli.bench", "measure every speed goal against a same-run reference"),
    "docs": (
        "experiments.cli.docs",
        "rerun the demo the README quotes and write its numbers and figures back",
    ),
}

USAGE_ERROR = 2
#: Longest error line printed (a value quoted in it is cut before this; no megabyte lines).
MAX_MESSAGE = 800


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: the problem and where to find help."""

    def error(self, message: str) -> NoReturn:  # argparse API
        message = shorten(" ".join(message.split()), MAX_MESSAGE)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default in ``--help`` (unless its help already says it, or it has none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default is argparse.SUPPRESS:
            return text
        if isinstance(default, list) and not default:
            return text
        return super()._get_help_string(action) or text


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = _Parser(
        prog="influmatch",
        description="Simulate and learn brand-influencer match policies.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"influmatch {_version()}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=_HelpFormatter
        )
        if name == command:
            importlib.import_module(module).add_arguments(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except BrokenPipeError:
        # The reader went away (``influmatch ... | head``): stop quietly, as Unix tools do.
        _silence_stdout()
        return 0
    except (ValueError, OSError, MemoryError) as exc:
        if args.traceback:
            raise
        print(f"influmatch {args.command}: error: {error_line(exc)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"influmatch {args.command}: interrupted", file=sys.stderr)
        return 130


def error_line(exc: BaseException) -> str:
    """The first line of an error's message, cut to :data:`MAX_MESSAGE` characters."""
    text = str(exc).strip()
    if isinstance(exc, MemoryError):
        text = f"out of memory{': ' + text if text else ''} (try a smaller size)"
    line = text.splitlines()[0] if text else type(exc).__name__
    return shorten(line, MAX_MESSAGE)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _version() -> str:
    try:
        return importlib.metadata.version("influmatch")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def run_module(command: str) -> None:
    """Entry point of ``python -m experiments.cli.<command>``."""
    raise SystemExit(main([command, *sys.argv[1:]]))


if __name__ == "__main__":
    raise SystemExit(main())
