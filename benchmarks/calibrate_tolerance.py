"""Calibrate the tolerance model: how much of the tolerance do correct gradients use?

For every regime and task, draw problems, compute each correct reformulation
of the gradient (tests/derivations.py), and report the worst ratios:

- ``err/noise``: |closed form - autodiff| / measured MCA noise (elements with
  noise > 0), which NOISE_SAFETY must exceed;
- ``used``: |closed form - autodiff| / tolerance, which must stay below 1;
- ``fd used``: (|closed form - finite diff| - |autodiff - finite diff|)+ / (FD_SAFETY fd_err + tol),
  the share of the allowance by which the closed form lies farther from the finite differences than autodiff;
- ``ref gap``: |autodiff - finite diff| / (FD_SAFETY fd_err + tol).

Run: python benchmarks/calibrate_tolerance.py [--problems 25]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradcheck import _check, _inputs, _references, _tolerance, mlp, problems
from tests.derivations import CORRECT


def calibrate(task: mlp.Task, regime: str, problems_per_regime: int = 25, seed: int = 0) -> dict[str, np.ndarray]:
    """The worst ratios (err/noise, used, fd used, ref gap) of each correct formulation on one regime and task."""
    rows = {name: np.zeros(4) for name in CORRECT}
    loss = partial(mlp.loss, task=task)  # equal partials share one compilation
    for i in range(problems_per_regime):
        rng = np.random.default_rng([seed, i])
        prob = problems.sample(
            rng, task=task, regime=regime, hidden=int(rng.choice([1, 3])), batch=int(rng.choice([1, 8]))
        )
        _, leaves, treedef = _inputs.flatten_params(prob.params)
        for name, fn in CORRECT.items():
            grad = fn(prob.params, prob.x, prob.y, task=task)
            grad = mlp.Params(**grad) if isinstance(grad, dict) else grad
            cf = np.concatenate([np.asarray(g, np.float64).ravel() for g in grad])
            precision = _tolerance.precision_of([np.asarray(g).dtype for g in grad])
            eps = float(np.finfo(precision).eps)
            # One path, whatever ran before in the process (tests regenerate one regime at a time): the
            # NumPy references, which new shapes take; tests/test_references.py holds the compiled ones to them.
            with jax.enable_x64(True), _references.forced("numpy"):
                evaluation = _references.evaluation(loss, treedef, leaves, (prob.x, prob.y), eps / 2, i, cf)
                refs, tol = _check.refine(evaluation, cf, precision)
            fd_tol = _tolerance.fd_allowance(refs.fd_error, tol)
            err = np.abs(cf - refs.autodiff)
            with np.errstate(divide="ignore", invalid="ignore"):
                r_noise = np.where(refs.noise > 0, err / refs.noise, 0.0).max()
            gap = np.abs(refs.autodiff - refs.finite_diff)
            ratios = np.array(
                [
                    r_noise,
                    (err / tol).max(),
                    (np.maximum(np.abs(cf - refs.finite_diff) - gap, 0) / fd_tol).max(),
                    (gap / fd_tol).max(),
                ]
            )
            rows[name] = np.maximum(rows[name], ratios)
    return rows


def markdown_row(regime: str, worst: np.ndarray) -> str:
    """One row of the summary table in docs/tolerances.md."""
    return f"| {regime} | " + " | ".join(f"{v:.3g}" for v in worst) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=25, help="problems per regime and task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'task':<15}{'regime':<20}{'variant':<25}{'err/noise':>10}{'used':>10}{'fd used':>10}{'ref gap':>10}")
    worst = {"err/noise": 0.0, "used": 0.0, "fd used": 0.0, "ref gap": 0.0}
    per_regime = {r: np.zeros(4) for r in problems.REGIMES}
    for task in mlp.TASKS:
        for regime in problems.REGIMES:
            rows = calibrate(task, regime, args.problems, args.seed)
            for name, r in rows.items():
                print(f"{task:<15}{regime:<20}{name:<25}" + "".join(f"{v:>10.3g}" for v in r))
                for k, v in zip(worst, r):
                    worst[k] = max(worst[k], float(v))
                per_regime[regime] = np.maximum(per_regime[regime], r)
    print("worst over all:", {k: f"{v:.3g}" for k, v in worst.items()})
    print("\n| regime | err/noise | used | fd used | ref gap |\n|---|---|---|---|---|")
    for regime, r in per_regime.items():
        print(markdown_row(regime, r))


if __name__ == "__main__":
    main()
