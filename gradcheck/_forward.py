"""References for a loss written in NumPy: the finite differences alone, with their error bound.

Course code writes forward passes in NumPy (``x.dot(w)``, boolean masks,
``np.maximum``), which JAX cannot trace (`_trace.Untraceable`): there is no
autodiff reference. The loss is then evaluated as it is, one point at a time,
and the references are its Richardson finite differences along every
coordinate (`_references.one_problem_differences`, the same as for a traced
loss) with their error bound. They stand in for autodiff, and the tolerance
widens by ``FD_SAFETY`` times their error bound (`Evaluation.reference_error`):
a closed form passes within ``FD_SAFETY * fd_err + floor`` of them.

The loss's own rounding noise, which the bound needs, is measured by
evaluating it again at the point perturbed by a few units of roundoff
(``NOISE_SAMPLES`` times): the largest change is the noise (and a tiny true
change, which only widens it).

What it costs: the loss is called ``2 * LEVELS`` times per coordinate, in a
Python loop, so it is meant for the small problems a derivation is checked on
(`MAX_COORDINATES`). What it resolves: the finite differences' error, about
1e-10 of the gradient for a smooth loss, so mistakes of 1e-6 are caught and
1e-8 may not be; the report says so. Autodiff resolves 1e-8 and below: write
the loss with ``jax.numpy`` for that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gradcheck import _tolerance
from gradcheck._references import MAX_COORDINATES, Evaluation, References, one_problem_differences, patched

#: Units of roundoff by which the point is perturbed to measure the loss's rounding noise.
NOISE_ULPS = 4.0


class ForwardEvaluation(Evaluation):
    """The finite differences of a loss evaluated as it is (NumPy), standing in for autodiff."""

    path = "numpy"

    def __init__(
        self,
        loss_fn: Callable[..., Any],
        treedef: Any,
        leaves: list[np.ndarray],
        args: tuple[np.ndarray, ...],
        seed: int,
        untraceable: ValueError,
    ):
        """Raises `untraceable` (JAX's failure, with the NumPy one chained) if the loss fails on NumPy arrays too."""
        reason = getattr(untraceable, "reason", str(untraceable))
        self.loss_fn, self.treedef, self.args, self.reason = loss_fn, treedef, args, reason
        self.shapes = [leaf.shape for leaf in leaves]
        self.offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
        self.theta = np.concatenate([leaf.ravel() for leaf in leaves]).astype(np.float64)
        if self.theta.size > MAX_COORDINATES:
            raise ValueError(
                f"`loss_fn` cannot be traced by JAX ({reason}), and the model has {self.theta.size} parameters, "
                f"above {MAX_COORDINATES} for finite differences along every coordinate of a NumPy loss. Write the "
                "loss with jax.numpy (import jax.numpy as np often suffices), or check a smaller model."
            )
        try:
            self.f0 = float(self.losses(self.theta[None, :])[0])
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the user's loss fails on NumPy arrays too: JAX's error stands
            raise untraceable from exc
        rng = np.random.default_rng([seed, 0x464F52])  # "FOR": a stream of its own for each seed
        u = float(np.finfo(np.float64).eps) / 2
        jitter = rng.uniform(-1.0, 1.0, (_tolerance.NOISE_SAMPLES, self.theta.size))
        moved = self.theta * (1.0 + NOISE_ULPS * u * jitter)
        self.sigma_f = float(np.nan_to_num(np.abs(self.losses(moved) - self.f0).max(initial=0.0)))
        fd = one_problem_differences(self.theta, np.arange(self.theta.size), 1.0, self.losses, self.sigma_f, self.f0)
        value, error = np.asarray(fd.value, np.float64), np.asarray(fd.error, np.float64)
        self.references = References(value, np.zeros_like(value), value, error, np.asarray(fd.kink, bool))
        self.reference_error = error

    def losses(self, points: np.ndarray) -> np.ndarray:
        values = np.empty(points.shape[0])
        for m, row in enumerate(points):
            parts = [row[a:b].reshape(s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]
            params = jax.tree_util.tree_unflatten(self.treedef, parts)
            with np.errstate(all="ignore"):
                values[m] = float(np.asarray(self.loss_fn(params, *self.args)).reshape(()))
        return values

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        where = np.flatnonzero(doubt)
        fd = one_problem_differences(self.theta, where, scale, self.losses, self.sigma_f, self.f0)
        finer = patched(self.references, (where,), fd)
        # They stand in for autodiff: their error bound is its, each coordinate's as last refined.
        assert self.reference_error is not None
        self.reference_error = self.reference_error.copy()
        self.reference_error[where] = fd.error
        return finer._replace(autodiff=finer.finite_diff)

    def kinks_within_steps(self, coordinates: np.ndarray, tol: np.ndarray) -> np.ndarray:
        """No autodiff to tell a kink by: the one-sided slopes of the finite differences already did."""
        return np.zeros(coordinates.size, bool)

    def note(self) -> str:
        """What the report says of these references."""
        resolved = np.abs(self.references.finite_diff) > 0
        finest = (
            float(np.median(self.reference_error[resolved] / np.abs(self.references.finite_diff[resolved])))
            if self.reference_error is not None and resolved.any()
            else float("nan")
        )
        return (
            f"no autodiff reference: `loss_fn` cannot be traced by JAX ({self.reason}). Judged against finite "
            f"differences alone (Richardson, along every coordinate), within {_tolerance.FD_SAFETY:g} x their error "
            f"bound plus the floor: they resolve relative errors down to about {finest:.0e} here. The autodiff "
            "column shows the finite differences; write the loss with jax.numpy for an autodiff reference too"
        )
