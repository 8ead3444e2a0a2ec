"""`gradcheck plot --out DIR`: hands over to `gradcheck.plot`, which draws the docs' figures."""

from __future__ import annotations

import argparse


def build_plot_parser() -> argparse.ArgumentParser:
    """`gradcheck.plot`'s parser, imported on demand: only this command needs matplotlib."""
    from gradcheck import plot

    return plot.build_parser()


def plot_main(args: argparse.Namespace) -> int:
    """Draw the figures that `args` asks for; return the exit code."""
    from gradcheck import plot

    return plot.run(args)
