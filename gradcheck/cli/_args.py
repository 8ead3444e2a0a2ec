"""Argument types the commands' parsers share, each with a message naming its flag."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


def integer(flag: str, minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`, with a message naming `flag`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {minimum}, got {value}")
        return value

    return parse


def positive(flag: str) -> Callable[[str], int]:
    """An argparse type: a whole number of at least 1, with a message naming `flag`."""
    return integer(flag, 1)


def points(flag: str) -> Callable[[str], float]:
    """An argparse type: a finite number of points above 0 (a grade's total), with a message naming `flag`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            message = f"{flag} must be a number of points, got {text!r}; e.g. {flag} 100"
            raise argparse.ArgumentTypeError(message) from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a number of points above 0, got {text}; e.g. {flag} 100")
        return value

    return parse


def add_junit_xml(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cases: str) -> None:
    """The ``--junit-xml FILE`` flag of every command that reports to CI, one test case per `cases`."""
    parser.add_argument(
        "--junit-xml",
        type=output_file("--junit-xml", "gradcheck.xml"),
        default=None,
        metavar="FILE",
        help=f"also write a JUnit XML report to FILE, one test case per {cases} (as pytest's flag)",
    )


def output_file(flag: str, example: str) -> Callable[[str], Path]:
    """An argparse type: a file the command can write when it is done, with a message naming `flag`.

    Checked before the run, so that a long run does not end in a path it cannot
    write: not a folder, and in a folder that exists and is writable, or that
    can be created (missing folders are made when the file is written, as
    pytest's ``--junit-xml`` makes them). `example` is a file name to suggest.
    """

    def parse(text: str) -> Path:
        path = Path(text)
        fix = f"pick a file in a folder you can write to, e.g. {flag} {example}"
        if not text or path.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text!r} is a folder, not a file; {fix}")
        folder = path.absolute().parent
        while not folder.exists():  # the nearest folder that exists is where the missing ones would be made
            folder = folder.parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: `{folder}` is a file, not a folder; {fix}")
        target = path if path.exists() else folder
        if not os.access(target, os.W_OK) or not os.access(folder, os.X_OK):
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: `{target}` is not writable; {fix}")
        return path

    return parse
