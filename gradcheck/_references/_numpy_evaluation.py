"""One problem's references by NumPy: the jaxprs of `_trace.program`, run by `_interpret`, with no compile.

A shape never seen before costs about as much as any other; `_references.evaluation` takes this path until
a shape has been checked often enough for a compile to pay (`_references.COMPILE_AFTER`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from gradcheck import _tolerance
from gradcheck._references import _finite_diff, _interpret, _noise, _trace
from gradcheck._references._evaluation import Evaluation, Path, References


class NumpyEvaluation(Evaluation):
    """The references computed by `_interpret` from a symbolic `_trace.Program`: no compile."""

    path: Path = "numpy"

    def __init__(
        self,
        bound: _trace.Bound,
        leaves: list[np.ndarray],
        theta: np.ndarray,
        args: tuple[np.ndarray, ...],
        unit_roundoff: float,
        seed: int,
        *,
        screen: bool = False,
    ):
        self.bound, self.theta, self.args, self.leaves = bound, theta, args, leaves
        self.unit_roundoff, self.seed, self.screened = unit_roundoff, seed, screen
        self.shapes = [leaf.shape for leaf in leaves]
        self.offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
        program, dims = bound
        f0, *grads = _interpret.evaluate(program.value_and_grad, [*leaves, *args], dims)
        g = np.concatenate([np.ravel(x) for x in grads]).astype(np.float64)
        self.f0 = float(f0)
        if screen:  # no noise measured: see `SCREEN`
            self.sigma_f, noise = 0.0, np.zeros_like(g)
        else:
            # One MCA run gives both: the gradient's noise at the closed form's precision, and
            # the loss's noise at float64 for the finite differences (as `reference_function`).
            mca_u = max(unit_roundoff, _noise.MCA_ROUNDOFF)
            samples = _tolerance.NOISE_SAMPLES
            stacked = [np.broadcast_to(a, (samples, *np.shape(a))) for a in (*leaves, *args)]
            rng = np.random.default_rng([seed, 0x4D4341])  # "MCA": a stream of its own for each seed
            f_s, *g_s = _interpret.evaluate(program.noisy, stacked, dims, _interpret.Noise(rng, mca_u))
            g_samples = np.concatenate([np.reshape(x, (samples, -1)) for x in g_s], axis=1)
            # The loss's noise over the finite runs; none finite: none measured, the least allowance (as the screen).
            self.sigma_f = float(np.nan_to_num(_noise.spread_numpy(f_s, self.f0))) * (2.0**-53 / mca_u)
            noise = _noise.spread_numpy(g_samples, g) * (unit_roundoff / mca_u) * _tolerance.samples_safety(samples)
        fd = self._finite_differences(np.arange(theta.size), 1.0)
        self.references = References(g, noise, fd.value, fd.error, fd.kink)

    @functools.cached_property
    def _measured(self) -> Evaluation:
        return NumpyEvaluation(self.bound, self.leaves, self.theta, self.args, self.unit_roundoff, self.seed)

    def measured(self) -> Evaluation:
        return self._measured if self.screened else self

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        return self._memo(("finer", scale, doubt.tobytes()), lambda: self._finer(scale, doubt))

    def _finer(self, scale: float, doubt: np.ndarray) -> References:
        where = np.flatnonzero(doubt)
        fd = self._finite_differences(where, scale)
        value, error, kink = (np.array(a, copy=True) for a in self.references[2:5])
        value[where], error[where], kink[where] = fd.value, fd.error, fd.kink
        return self.references._replace(finite_diff=value, fd_error=error, kink=kink)

    def _leaves(self, points: np.ndarray) -> list[np.ndarray]:
        """Rows of flat points (M, P) as the parameters' leaves, each with the leading axis M."""
        m = points.shape[0]
        return [points[:, a:b].reshape(m, *s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    def losses(self, points: np.ndarray) -> np.ndarray:
        m, parts = points.shape[0], self._leaves(points)
        program, dims = self.bound
        (values,) = _interpret.evaluate(program.batched_loss, [*parts, *self.args], {**dims, _trace.BATCH: m})
        return np.asarray(values, dtype=np.float64)

    def gradients(self, points: np.ndarray) -> np.ndarray:
        m, parts = points.shape[0], self._leaves(points)
        program, dims = self.bound
        _, *grads = _interpret.evaluate(program.batched_grad(), [*parts, *self.args], {**dims, _trace.BATCH: m})
        return np.concatenate([np.reshape(x, (m, -1)) for x in grads], axis=1).astype(np.float64)

    def _finite_differences(self, coordinates: np.ndarray, scale: float) -> _finite_diff.FiniteDifferences:
        return coordinate_differences(self.theta, coordinates, scale, self.losses, self.sigma_f, self.f0)


def coordinate_differences(
    theta: np.ndarray,
    coordinates: np.ndarray,
    scale: float,
    losses: Callable[[np.ndarray], np.ndarray],
    sigma_f: float,
    f0: float,
) -> _finite_diff.FiniteDifferences:
    """`_finite_diff.directional` along the given coordinates of `theta`, at `scale` times the step, with every
    point in one call of ``losses(points)`` (the loss at each row of points (M, P), in float64)."""
    d, k = coordinates.size, _finite_diff.LEVELS
    steps = scale * _finite_diff.FD_STEP * np.maximum(1.0, np.abs(theta[coordinates]))  # (D,)
    h = steps[:, None] * _finite_diff.RATIO ** -np.arange(k, dtype=theta.dtype)  # (D, K)
    at = theta[coordinates][:, None]
    plus, minus = at + h, at - h  # the moved coordinate, rounded as in float64
    points = np.broadcast_to(theta, (2, d, k, theta.size)).copy()
    rows, levels = np.arange(d)[:, None], np.arange(k)[None, :]
    points[0, rows, levels, coordinates[:, None]] = plus
    points[1, rows, levels, coordinates[:, None]] = minus
    f_plus, f_minus = losses(points.reshape(2 * d * k, theta.size)).reshape(2, d, k)
    # The step actually taken after rounding theta +- h, as `directional` measures it.
    h_eff = np.abs(plus - minus) / 2.0
    return _finite_diff.combine(np, f_plus, f_minus, h, h_eff, steps, sigma_f, f0)
