"""`main`: picks the command from the first argument, and runs it so that no traceback escapes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gradcheck.cli._check import build_check_parser, check_main
from gradcheck.cli._main_job import build_parser, main_job
from gradcheck.cli._plot import build_plot_parser, plot_main
from gradcheck.cli._prove import build_prove_parser, prove_main
from gradcheck.cli._render import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

#: The subcommands, by their first argument: (parser, command). Anything else is the main job.
_SUBCOMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {
    "check": (build_check_parser, check_main),
    "prove": (build_prove_parser, prove_main),
    "plot": (build_plot_parser, plot_main),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _SUBCOMMANDS:
        build, command = _SUBCOMMANDS[argv[0]]
        return _guarded(build(), command, argv[1:])
    return _guarded(build_parser(), main_job, argv)


def _guarded(parser: argparse.ArgumentParser, command: Callable[[argparse.Namespace], int], argv: list[str]) -> int:
    """Parse, then run; usage errors exit 2, and no traceback ever escapes."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage error, or --help
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        return int(command(args))
    except ValueError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gradcheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as exc:  # noqa: BLE001 - never a raw traceback, and never a silent exit
        print(f"gradcheck: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("please report it with the command line that caused it", file=sys.stderr)
        return EXIT_INTERNAL
