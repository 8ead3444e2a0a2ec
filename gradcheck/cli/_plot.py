"""`gradcheck plot --out DIR`: the docs' figures, drawn by `gradcheck.plot` (imported on demand: only this
command needs matplotlib, and its module JAX's and NumPy's plotting data)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradcheck import mlp


def build_plot_parser() -> argparse.ArgumentParser:
    """The parser of `gradcheck plot`."""
    parser = argparse.ArgumentParser(
        prog="gradcheck plot",
        description=(
            "Draw the docs' figures on a fixed seeded problem of the seed network: the finite-difference "
            "V-curve (error against step size) and the Taylor remainder of a correct and a wrong gradient."
        ),
        epilog='Needs matplotlib: pip install "gradcheck[plot]". Exit codes: 0 written, 2 usage error.',
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the figures to (created)")
    parser.add_argument(
        "--task", choices=mlp.TASKS, default="classification", help="the seed network's task (default classification)"
    )
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the problem and the direction (default 0)")
    parser.add_argument("--format", choices=("png", "svg"), default="png", help="image format (default png)")
    return parser


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--seed must be at least 0, got {value}")
    return value


def plot_main(args: argparse.Namespace) -> int:
    """Compute both figures' data, draw them into ``args.out``; return the exit code."""
    from gradcheck import plot

    try:
        import matplotlib  # noqa: F401 - only to fail early, before minutes of work
    except ImportError:
        print(
            'gradcheck plot: error: matplotlib is not installed; install it with: pip install "gradcheck[plot]"',
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"gradcheck plot: error: cannot create `--out` {str(out)!r}: {exc}", file=sys.stderr)
        return 2
    prob = plot.seed_problem(args.task, args.seed)
    where = (
        f"seed network (inputs 2, hidden 3, batch 8), task {args.task}, problem seed {args.seed}\n"
        f"drawn by: gradcheck plot --task {args.task} --seed {args.seed}"
    )

    v = plot.vcurve(prob)
    path = out / f"fd_vcurve.{args.format}"
    plot.draw_vcurve(v, path, title=f"Finite differences on {v.coordinate} (g = {v.gradient:.6g})\n{where}")
    slopes = ", ".join(f"{k} {plot.slope_text(s)}" for k, s in v.slopes.items())
    print(f"wrote {path}: coordinate {v.coordinate}, fitted truncation slopes: {slopes}")
    print(
        f"  gradcheck's step h = {v.chosen_step:.3g}: Richardson relative error {v.chosen_error:.1e}, "
        f"error bound {v.chosen_bound:.1e}"
    )

    t = plot.taylor(prob, args.seed)
    path = out / f"taylor_remainder.{args.format}"
    plot.draw_taylor(t, path, title=f"Taylor remainder along a random direction\n{where}")
    print(
        f"wrote {path}: fitted slopes: correct gradient {t.correct_slope:.2f}, {plot.WRONG_LABEL} {t.wrong_slope:.2f}"
    )
    return 0
