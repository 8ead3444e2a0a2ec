"""The references by NumPy, of one problem or of a stack of same-shape problems: the jaxprs of
`_trace.program`, run by `_interpret`, with no compile.

One arithmetic serves both. Its arrays carry a leading problem axis Q (Q = 1 for one problem):

- autodiff, with its rounding noise measured over ``NOISE_SAMPLES`` Monte Carlo runs of every problem
  (`_noise.measured`);
- Richardson's finite differences, along coordinates (`coordinate_differences`) or along random +-1
  directions (`StackedEvaluation.along_differences`), every point of every problem in one NumPy evaluation.

`NumpyEvaluation` is one problem's (`check_gradients`: `_references.evaluation` takes it until a shape
has been checked often enough for a compile to pay); `StackedEvaluation` is Q problems' (`check_batch`,
until its compile pays: `_cost.COMPILE_AFTER_WORK`). A batch of a few hundred problems costs tens of
milliseconds this way, against a second or more to compile the batched references. The two differ only in
the jaxprs they run: one problem's program has unbatched data, a stack's a data axis per problem.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from gradcheck import _tolerance
from gradcheck._references import _finite_diff, _interpret, _noise, _trace
from gradcheck._references._evaluation import Along, Evaluation, Path, References

#: The loss at each row of points (M, P), over the data of problem ``owner[m]``: (M,) in float64.
Losses = Callable[[np.ndarray, np.ndarray], np.ndarray]


def coordinate_differences(
    theta: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    scale: float,
    losses: Losses,
    sigma_f: np.ndarray,
    f0: np.ndarray,
) -> _finite_diff.FiniteDifferences:
    """`_finite_diff.directional` of problem ``rows[d]`` (theta (Q, P), sigma_f and f0 (Q,)) along its
    coordinate ``cols[d]``, for each d, at `scale` times the step, with every point in one call of
    `losses`."""
    d, k, p = rows.size, _finite_diff.LEVELS, theta.shape[1]
    at = theta[rows, cols]  # (D,)
    steps = scale * _finite_diff.FD_STEP * np.maximum(1.0, np.abs(at))
    h = steps[:, None] * _finite_diff.RATIO ** -np.arange(k, dtype=np.float64)  # (D, K)
    plus, minus = at[:, None] + h, at[:, None] - h  # the moved coordinate, rounded as in float64
    points = np.broadcast_to(theta[rows][None, :, None, :], (2, d, k, p)).copy()
    rows_d, levels = np.arange(d)[:, None], np.arange(k)[None, :]
    points[0, rows_d, levels, cols[:, None]] = plus
    points[1, rows_d, levels, cols[:, None]] = minus
    f_plus, f_minus = losses(points.reshape(2 * d * k, p), np.tile(np.repeat(rows, k), 2)).reshape(2, d, k)
    # The step actually taken after rounding theta +- h, as `directional` measures it.
    h_eff = np.abs(plus - minus) / 2.0
    return _finite_diff.combine(np, f_plus, f_minus, h, h_eff, steps, sigma_f[rows][:, None], f0[rows][:, None])


def one_problem_differences(
    theta: np.ndarray,
    coordinates: np.ndarray,
    scale: float,
    losses: Callable[[np.ndarray], np.ndarray],
    sigma_f: float,
    f0: float,
) -> _finite_diff.FiniteDifferences:
    """`coordinate_differences` of one problem, theta (P,), along `coordinates`; ``losses(points)`` (M, P)."""
    return coordinate_differences(
        theta[None, :],
        np.zeros(coordinates.size, np.intp),
        coordinates,
        scale,
        lambda points, _owner: losses(points),
        np.array([sigma_f], np.float64),
        np.array([f0], np.float64),
    )


def patched(references: References, where: tuple[np.ndarray, ...], fd: _finite_diff.FiniteDifferences) -> References:
    """`references` with the finite differences at index `where` (of their arrays, or of `along`'s) retaken."""
    along = references.along
    arrays = references[2:5] if along is None else along[2:5]
    value, error, kink = (np.array(a, copy=True) for a in arrays)
    value[where], error[where], kink[where] = fd.value, fd.error, fd.kink
    if along is None:
        return references._replace(finite_diff=value, fd_error=error, kink=kink)
    return references._replace(along=along._replace(finite_diff=value, fd_error=error, kink=kink))


class _Stack:
    """The references' arithmetic over Q problems: theta (Q, P), f0 and sigma_f (Q,), the losses by
    `_losses`; the one-problem and the stacked evaluators differ in what they evaluate."""

    theta2: np.ndarray  # (Q, P)
    f0s: np.ndarray  # (Q,)
    sigma_fs: np.ndarray  # (Q,)

    def _losses(self, points: np.ndarray, owner: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _copies(self, inputs: list[np.ndarray], samples: int) -> list[np.ndarray]:
        """`samples` copies of every problem, one after another (leading axis S * Q)."""
        return [np.concatenate([a] * samples) for a in inputs]

    def _autodiff(
        self, inputs: list[np.ndarray], samples: int, noise: _interpret.Noise | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The loss (S * Q,) and its gradient (S * Q, P) on `inputs`, S copies of each problem (leading axis
        S * Q on every input), with Monte Carlo `noise` or without."""
        raise NotImplementedError

    def _measure(
        self, inputs: list[np.ndarray], unit_roundoff: float, seed: int, screen: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Autodiff (Q, P) and its noise; `self.f0s` and `self.sigma_fs` set."""
        q = self.theta2.shape[0]
        self.f0s, g = self._autodiff(inputs, 1, None)
        if screen:  # no noise measured (`_references.SCREEN`)
            self.sigma_fs = np.zeros(q)
            return g, np.zeros_like(g)
        samples = _tolerance.NOISE_SAMPLES
        copies = self._copies(inputs, samples)
        rng = np.random.default_rng([seed, 0x4D4341])  # "MCA": a stream of its own for each seed
        f_s, g_s = self._autodiff(copies, samples, _interpret.Noise(rng, max(unit_roundoff, _noise.MCA_ROUNDOFF)))
        self.sigma_fs, noise = _noise.measured(
            np, f_s.reshape(samples, q), g_s.reshape(samples, q, -1), self.f0s, g, unit_roundoff
        )
        return g, noise

    def coordinate_differences(
        self, rows: np.ndarray, cols: np.ndarray, scale: float
    ) -> _finite_diff.FiniteDifferences:
        """Richardson's central differences of problem ``rows[d]`` along coordinate ``cols[d]``, for each d."""
        return coordinate_differences(self.theta2, rows, cols, scale, self._losses, self.sigma_fs, self.f0s)


def _split(points: np.ndarray, offsets: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Rows of flat points (M, P) as the parameters' leaves, each with the leading axis M."""
    m = points.shape[0]
    return [points[:, a:b].reshape(m, *s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]


class NumpyEvaluation(_Stack, Evaluation):
    """One problem's references, computed by `_interpret` from a symbolic `_trace.Program`: no compile."""

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
        self.theta2 = theta[None, :]
        self.unit_roundoff, self.seed, self.screened = unit_roundoff, seed, screen
        self.shapes = [leaf.shape for leaf in leaves]
        self.offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
        g, noise = self._measure([a[None] for a in (*leaves, *args)], unit_roundoff, seed, screen)
        fd = self._finite_differences(np.arange(theta.size), 1.0)
        self.references = References(g[0], noise[0], fd.value, fd.error, fd.kink)

    def _copies(self, inputs: list[np.ndarray], samples: int) -> list[np.ndarray]:
        """Views, not copies: one problem's inputs broadcast over the samples' axis."""
        return [np.broadcast_to(a, (samples, *a.shape[1:])) for a in inputs]

    def _autodiff(
        self, inputs: list[np.ndarray], samples: int, noise: _interpret.Noise | None
    ) -> tuple[np.ndarray, np.ndarray]:
        program, dims = self.bound
        if noise is None:  # the problem itself
            f, *grads = _interpret.evaluate(program.value_and_grad, [a[0] for a in inputs], dims)
        else:  # its noisy copies
            f, *grads = _interpret.evaluate(program.noisy(), inputs, dims, noise)
        g = np.concatenate([np.reshape(x, (samples, -1)) for x in grads], axis=1)
        return np.asarray(np.reshape(f, (samples,)), np.float64), g.astype(np.float64)

    @functools.cached_property
    def _measured(self) -> Evaluation:
        return NumpyEvaluation(self.bound, self.leaves, self.theta, self.args, self.unit_roundoff, self.seed)

    def measured(self) -> Evaluation:
        return self._measured if self.screened else self

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        return self._memo(("finer", scale, doubt.tobytes()), lambda: self._finer(scale, doubt))

    def _finer(self, scale: float, doubt: np.ndarray) -> References:
        where = np.flatnonzero(doubt)
        return patched(self.references, (where,), self._finite_differences(where, scale))

    def _finite_differences(self, coordinates: np.ndarray, scale: float) -> _finite_diff.FiniteDifferences:
        return self.coordinate_differences(np.zeros(coordinates.size, np.intp), coordinates, scale)

    def _losses(self, points: np.ndarray, owner: np.ndarray) -> np.ndarray:
        return self.losses(points)

    def losses(self, points: np.ndarray) -> np.ndarray:
        m = points.shape[0]
        program, dims = self.bound
        (values,) = _interpret.evaluate(
            program.batched_loss, [*_split(points, self.offsets, self.shapes), *self.args], {**dims, _trace.BATCH: m}
        )
        return np.asarray(values, dtype=np.float64)

    def gradients(self, points: np.ndarray) -> np.ndarray:
        m = points.shape[0]
        program, dims = self.bound
        _, *grads = _interpret.evaluate(
            program.batched_grad(), [*_split(points, self.offsets, self.shapes), *self.args], {**dims, _trace.BATCH: m}
        )
        return np.concatenate([np.reshape(x, (m, -1)) for x in grads], axis=1).astype(np.float64)


class StackedEvaluation(_Stack):
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
        self.theta2 = np.concatenate([leaf.reshape(q, -1) for leaf in leaves], axis=1)  # (Q, P)
        self.data = data
        g, noise = self._measure([*leaves, *data], unit_roundoff, seed, screen)
        p = self.theta2.shape[1]
        if directions is None:
            fd = self.coordinate_differences(np.repeat(np.arange(q), p), np.tile(np.arange(p), q), 1.0)
            self.references = References(
                g, noise, fd.value.reshape(q, p), fd.error.reshape(q, p), np.asarray(fd.kink).reshape(q, p)
            )
            return
        # Rademacher directions from their own stream, the compiled path's (`reference_function`):
        # (D, P), shared by every problem.
        xi = _noise.uniform_numpy(0xFFFFFFFF - seed, directions * p)
        self.directions = np.where(xi >= 0, 1.0, -1.0).reshape(directions, p)
        self.largest = np.maximum(1.0, np.abs(self.theta2).max(axis=1))
        fd = self.along_differences(np.repeat(np.arange(q), directions), np.tile(np.arange(directions), q), 1.0)
        nan = np.full_like(g, np.nan)
        along = Along(
            g @ self.directions.T,  # (Q, D)
            closed @ self.directions.T,
            fd.value.reshape(q, directions),
            fd.error.reshape(q, directions),
            np.asarray(fd.kink).reshape(q, directions),
        )
        self.references = References(g, noise, nan, nan, np.zeros(g.shape, bool), along)

    def along_differences(self, rows: np.ndarray, along: np.ndarray, scale: float) -> _finite_diff.FiniteDifferences:
        """Richardson's central differences of problem ``rows[d]`` along direction ``along[d]``, for each d."""
        d, k = rows.size, _finite_diff.LEVELS
        steps = scale * _finite_diff.FD_STEP * self.largest[rows]  # (D,)
        h = steps[:, None] * _finite_diff.RATIO ** -np.arange(k, dtype=np.float64)  # (D, K)
        move = h[:, :, None] * self.directions[along][:, None, :]  # (D, K, P)
        at = self.theta2[rows][:, None, :]
        plus, minus = at + move, at - move
        f_plus, f_minus = self._losses(
            np.stack([plus, minus]).reshape(2 * d * k, -1), np.tile(np.repeat(rows, k), 2)
        ).reshape(2, d, k)
        # The step actually taken after rounding theta +- h (directions are +-1), as `directional` measures it.
        h_eff = np.abs(plus - minus).max(axis=2) / 2.0
        return _finite_diff.combine(
            np, f_plus, f_minus, h, h_eff, steps, self.sigma_fs[rows][:, None], self.f0s[rows][:, None]
        )

    def _autodiff(
        self, inputs: list[np.ndarray], samples: int, noise: _interpret.Noise | None
    ) -> tuple[np.ndarray, np.ndarray]:
        size = samples * self.theta2.shape[0]
        f, *grads = _interpret.evaluate(self.vg, inputs, {**self.dims, _trace.BATCH: size}, noise)
        return np.asarray(f, np.float64), np.concatenate([np.reshape(x, (size, -1)) for x in grads], axis=1)

    def _losses(self, points: np.ndarray, owner: np.ndarray) -> np.ndarray:
        m = points.shape[0]
        (values,) = _interpret.evaluate(
            self.loss,
            [*_split(points, self.offsets, self.shapes), *(a[owner] for a in self.data)],
            {**self.dims, _trace.BATCH: m},
        )
        return np.asarray(values, np.float64)

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        """The references with the finite differences retaken at `scale` where `doubt` (Q, P), or (Q, D)."""
        rows, cols = np.nonzero(doubt)
        if self.references.along is not None:
            return patched(self.references, (rows, cols), self.along_differences(rows, cols, scale))
        return patched(self.references, (rows, cols), self.coordinate_differences(rows, cols, scale))
