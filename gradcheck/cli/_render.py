"""What every command shares: exit codes, the JSON schema's version, the console and JSON output."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

#: Exit codes (docs/cli.md): every check passed; a closed form disagrees with
#: the references; usage, input or load error; inconclusive (the references
#: disagree with each other, so nothing is blamed); an internal error.
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL = 0, 1, 2, 3, 4
#: Exit code after Ctrl-C, as a shell reports a process killed by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
#: Version of the --json schema (docs/cli.md); bump on incompatible change.
JSON_SCHEMA = 1

#: Verdict colours on a terminal; rich drops them when stdout is not a
#: terminal or NO_COLOR is set.
VERDICT_COLOURS = {"pass": "green", "mismatch": "red", "inconclusive": "yellow"}


def make_console(*, stderr: bool = False) -> Console:
    """The console a command prints its report to (stderr: for progress next to a JSON report)."""
    return Console(highlight=False, stderr=stderr)


def print_json(document: Any, *, allow_nan: bool = True) -> None:
    """Print a --json report, indented, as the whole of stdout."""
    print(json.dumps(document, indent=2, allow_nan=allow_nan))
