"""The references of a stack of same-shape problems, by NumPy: `check_batch` without a compile.

The same arithmetic as `_references.NumpyEvaluation`, for Q problems at once:
the jaxprs of `_trace.Program.stacked` (every input with a leading axis) run
once over all problems for autodiff, once over ``NOISE_SAMPLES * Q`` copies
for the Monte Carlo noise, and once over every problem's finite-difference
points. A batch of a few hundred problems costs tens of milliseconds this
way, against a second or more to compile the batched references; the
compiled path takes over for a shape once enough problems have been checked
there to repay it (`_batch_references.COMPILE_AFTER_WORK`). Large problems take their finite
differences along the compiled path's random directions.
"""

from __future__ import annotations

import numpy as np

from gradcheck import _tolerance
from gradcheck._references import Along, References, _finite_diff, _interpret, _noise, _trace


class StackedEvaluation:
    """Float64 references of Q problems: `leaves` and `data` carry the leading problem axis.

    With `directions` None the finite differences run along every coordinate;
    with an int D along D random +-1 directions (the same as the compiled
    path's), and `closed` (Q, P) gives the closed form's derivatives along them.
    With `screen`, the Monte Carlo runs are skipped and the noise is zero (`_references.SCREEN`).
    """

    def __init__(
        self,
        bound: _trace.Bound,
        leaves: list[np.ndarray],
        data: tuple[np.ndarray, ...],
        unit_roundoff: float,
        seed: int,
        closed: np.ndarray,
        directions: int | None = None,
        *,
        screen: bool = False,
    ):
        self.vg, self.loss = bound.program.stacked()
        self.dims = bound.dims
        q = leaves[0].shape[0]
        self.shapes = [leaf.shape[1:] for leaf in leaves]
        self.offsets = np.cumsum([0, *(int(np.prod(s)) for s in self.shapes)])
        self.theta = np.concatenate([leaf.reshape(q, -1) for leaf in leaves], axis=1)  # (Q, P)
        self.data = data
        f0, g = self._value_and_grad([*leaves, *data], q, None)
        self.f0 = f0
        if screen:  # no noise measured (`_references.SCREEN`)
            self.sigma_f, noise = np.zeros(q), np.zeros_like(g)
        else:
            # Monte Carlo arithmetic on NOISE_SAMPLES copies of every problem (as NumpyEvaluation).
            mca_u = max(unit_roundoff, _noise.MCA_ROUNDOFF)
            samples = _tolerance.NOISE_SAMPLES
            copies = [np.concatenate([a] * samples) for a in (*leaves, *data)]
            rng = np.random.default_rng([seed, 0x4D4341])
            f_s, g_s = self._value_and_grad(copies, samples * q, _interpret.Noise(rng, mca_u))
            # Over the finite runs, as NumpyEvaluation.
            self.sigma_f = np.nan_to_num(_noise.spread_numpy(f_s.reshape(samples, q), f0)) * (2.0**-53 / mca_u)
            noise = _noise.spread_numpy(g_s.reshape(samples, q, -1), g) * (unit_roundoff / mca_u)
            noise *= _tolerance.samples_safety(samples)
        p = self.theta.shape[1]
        if directions is None:
            rows, cols = np.repeat(np.arange(q), p), np.tile(np.arange(p), q)
            fd = self.finite_differences(rows, cols, 1.0)
            self.references = References(
                g, noise, fd.value.reshape(q, p), fd.error.reshape(q, p), np.asarray(fd.kink).reshape(q, p)
            )
            return
        # Rademacher directions from their own stream, the compiled path's (`reference_function`):
        # (D, P), shared by every problem.
        xi = _noise.uniform_numpy(0xFFFFFFFF - seed, directions * p)
        self.directions = np.where(xi >= 0, 1.0, -1.0).reshape(directions, p)
        self.largest = np.maximum(1.0, np.abs(self.theta).max(axis=1))  # (Q,): one step per problem
        rows, along = np.repeat(np.arange(q), directions), np.tile(np.arange(directions), q)
        fd = self.along_differences(rows, along, 1.0)
        nan = np.full_like(g, np.nan)
        self.references = References(
            g,
            noise,
            nan,
            nan,
            np.zeros(g.shape, bool),
            Along(
                g @ self.directions.T,  # (Q, D)
                closed @ self.directions.T,
                fd.value.reshape(q, directions),
                fd.error.reshape(q, directions),
                np.asarray(fd.kink).reshape(q, directions),
            ),
        )

    def _value_and_grad(
        self, inputs: list[np.ndarray], size: int, noise: _interpret.Noise | None
    ) -> tuple[np.ndarray, np.ndarray]:
        f, *grads = _interpret.evaluate(self.vg, inputs, {**self.dims, _trace.BATCH: size}, noise)
        return np.asarray(f, np.float64), np.concatenate([np.reshape(x, (size, -1)) for x in grads], axis=1)

    def finite_differences(self, rows: np.ndarray, cols: np.ndarray, scale: float) -> _finite_diff.FiniteDifferences:
        """Richardson's central differences of problem ``rows[d]`` along coordinate ``cols[d]``, for each d."""
        d, k = rows.size, _finite_diff.LEVELS
        at = self.theta[rows, cols]  # (D,)
        steps = scale * _finite_diff.FD_STEP * np.maximum(1.0, np.abs(at))
        h = steps[:, None] * _finite_diff.RATIO ** -np.arange(k, dtype=np.float64)  # (D, K)
        plus, minus = at[:, None] + h, at[:, None] - h
        points = np.broadcast_to(self.theta[rows][None, :, None, :], (2, d, k, self.theta.shape[1])).copy()
        points[0, np.arange(d)[:, None], np.arange(k)[None, :], cols[:, None]] = plus
        points[1, np.arange(d)[:, None], np.arange(k)[None, :], cols[:, None]] = minus
        f_plus, f_minus = self._losses(points.reshape(2 * d * k, -1), np.tile(np.repeat(rows, k), 2)).reshape(2, d, k)
        h_eff = np.abs(plus - minus) / 2.0
        return _finite_diff.combine(
            np, f_plus, f_minus, h, h_eff, steps, self.sigma_f[rows][:, None], self.f0[rows][:, None]
        )

    def along_differences(self, rows: np.ndarray, along: np.ndarray, scale: float) -> _finite_diff.FiniteDifferences:
        """Richardson's central differences of problem ``rows[d]`` along direction ``along[d]``, for each d."""
        d, k = rows.size, _finite_diff.LEVELS
        steps = scale * _finite_diff.FD_STEP * self.largest[rows]  # (D,)
        h = steps[:, None] * _finite_diff.RATIO ** -np.arange(k, dtype=np.float64)  # (D, K)
        move = h[:, :, None] * self.directions[along][:, None, :]  # (D, K, P)
        at = self.theta[rows][:, None, :]
        plus, minus = at + move, at - move
        f_plus, f_minus = self._losses(
            np.stack([plus, minus]).reshape(2 * d * k, -1), np.tile(np.repeat(rows, k), 2)
        ).reshape(2, d, k)
        # The step actually taken after rounding theta +- h (directions are +-1), as `directional` measures it.
        h_eff = np.abs(plus - minus).max(axis=2) / 2.0
        return _finite_diff.combine(
            np, f_plus, f_minus, h, h_eff, steps, self.sigma_f[rows][:, None], self.f0[rows][:, None]
        )

    def _losses(self, flat: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """The loss at each row of `flat` (M, P), over the data of problem ``owner[m]``, in float64."""
        m = flat.shape[0]
        parts = [flat[:, a:b].reshape(m, *s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]
        (values,) = _interpret.evaluate(
            self.loss, [*parts, *(a[owner] for a in self.data)], {**self.dims, _trace.BATCH: m}
        )
        return np.asarray(values, np.float64)

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        """The references with the finite differences retaken at `scale` where `doubt` (Q, P), or (Q, D)."""
        rows, cols = np.nonzero(doubt)
        along = self.references.along
        if along is not None:
            fd = self.along_differences(rows, cols, scale)
            value, error, kink = (np.array(a, copy=True) for a in along[2:5])
            value[rows, cols], error[rows, cols], kink[rows, cols] = fd.value, fd.error, fd.kink
            return self.references._replace(along=along._replace(finite_diff=value, fd_error=error, kink=kink))
        fd = self.finite_differences(rows, cols, scale)
        value, error, kink = (np.array(a, copy=True) for a in self.references[2:5])
        value[rows, cols], error[rows, cols], kink[rows, cols] = fd.value, fd.error, fd.kink
        return self.references._replace(finite_diff=value, fd_error=error, kink=kink)
