"""Argument types the commands' parsers share, each with a message naming its flag."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
