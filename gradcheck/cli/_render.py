"""What every command shares: exit codes, the JSON schema's version, the console and JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Exit codes (docs/cli.md): every check passed; a closed form disagrees with
#: the references; usage, input or load error; inconclusive (the references
#: disagree with each other, so nothing is blamed); an internal error.
EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INCONCLUSIVE, EXIT_INTERNAL = 0, 1, 2, 3, 4
#: Exit code after Ctrl-C, as a shell reports a process killed by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
#: Version of the --json schema (docs/cli.md); bump on incompatible change.
JSON_SCHEMA = 1
#: The version of ``gradcheck check --loss``'s document: schema 1, plus the loss and where its problems
#: come from, and a counterexample of ``params`` and ``args`` (docs/cli.md). A document carries the
#: lowest version that describes it, so the seed network's reports stay at 1.
JSON_SCHEMA_LOSS = 2

#: Verdict colours on a terminal; rich drops them when stdout is not a
#: terminal or NO_COLOR is set.
VERDICT_COLOURS = {"pass": "green", "imprecise": "yellow", "mismatch": "red", "error": "red", "inconclusive": "yellow"}


#: Console width when the output is not a terminal (a file, a pipe, CI logs) and
#: COLUMNS is not set. rich would draw 80 columns there and cut or wrap the
#: cells that do not fit; an autograder's log must keep every submission path,
#: parameter name, diagnosis and claim whole, on one line. Tables are no wider
#: than their content, so this is only a bound that no report comes near.
UNBOUNDED_WIDTH = 1_000_000


def make_console(*, stderr: bool = False) -> Console:
    """The console a command prints its report to (stderr: for progress next to a JSON report).

    On a terminal, rich's own width (the terminal's, or COLUMNS). Elsewhere, COLUMNS
    if it is set, else `UNBOUNDED_WIDTH`: every table as wide as its content needs.
    """
    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = UNBOUNDED_WIDTH
    return console


def report_table(title: str, console: Console) -> Table:
    """A report table titled `title` (rich markup); off a terminal, wide enough for the title to stay on one line."""
    unbounded = console.width >= UNBOUNDED_WIDTH
    return Table(title=title, min_width=Text.from_markup(title).cell_len if unbounded else None)


def print_json(document: Any, *, allow_nan: bool = True) -> None:
    """Print a --json report, indented, as the whole of stdout."""
    print(json.dumps(document, indent=2, allow_nan=allow_nan))


def write_report(path: Path, data: bytes, flag: str, what: str) -> None:
    """Write a report file that `flag` named (making missing folders); say so on stderr.

    A file that cannot be written is a usage error (exit 2) naming `flag`, the
    path and the reason. The line on stderr leaves stdout to the report there.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise ValueError(
            f"`{flag} {path}`: cannot write it ({exc.strerror or exc}); pick a file in a folder you can write to"
        ) from None
    print(f"gradcheck: wrote {what} to {path}", file=sys.stderr)
