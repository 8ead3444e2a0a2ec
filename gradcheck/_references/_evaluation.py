"""The references of one problem and what an evaluator of them is: the types every path shares.

`References` (float64 autodiff, its measured rounding noise, finite differences and their error bounds,
kinks), `Along` for directional finite differences, the `Refinable` protocol that refining them needs, and
the `Evaluation` base class of one problem's evaluators: NumPy's (`_numpy_evaluation`), the compiled one
(`_compiled_evaluation`) and a NumPy forward's (`_forward`). `_references` chooses among them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import numpy as np

from gradcheck._references import _finite_diff

Path = Literal["numpy", "xla"]
V = TypeVar("V")


#: Up to this many parameters, finite differences are taken along every
#: coordinate (2 * LEVELS * P loss evaluations). Above it the cost would grow
#: with the model, so they are taken along `DIRECTIONS` random directions
#: instead, and the closed form is compared elementwise with autodiff alone.
#: At 512 coordinates the two cost about the same (benchmarks/scaling.py).
MAX_COORDINATES = 512
#: Random +-1 directions for the directional finite differences: each costs
#: 2 * LEVELS loss evaluations, whatever the number of parameters.
DIRECTIONS = 2
#: Monte Carlo re-runs of autodiff for models above `MAX_COORDINATES`: each
#: costs about two backward passes, so the 8 of `_tolerance.NOISE_SAMPLES`
#: would dominate the check. The maximum of fewer samples sits lower in the
#: spread; `_tolerance.samples_safety` widens the tolerance to match.
LARGE_NOISE_SAMPLES = 2


class Along(NamedTuple):
    """Directional references: derivatives along D random +-1 directions."""

    autodiff: np.ndarray  # (D,)  autodiff gradient . direction
    closed: np.ndarray  # (D,)  closed form . direction
    finite_diff: np.ndarray  # (D,)  Richardson central differences along the direction
    fd_error: np.ndarray  # (D,)  their error bound
    kink: np.ndarray  # (D,)  bool


class References(NamedTuple):
    """The float64 references for one problem, as flat NumPy vectors of length P.

    For models above `MAX_COORDINATES` the finite differences are directional:
    `finite_diff`, `fd_error` are NaN and `kink` False elementwise, and
    `along` holds them.
    """

    autodiff: np.ndarray  # (P,)  jax.grad in float64
    noise: np.ndarray  # (P,)  MCA spread of the autodiff gradient
    finite_diff: np.ndarray  # (P,)  Richardson-extrapolated central differences
    fd_error: np.ndarray  # (P,)  their error bound
    kink: np.ndarray  # (P,)  bool: a non-differentiable point along this coordinate
    along: Along | None = None


#: Where the references disagree, the finite differences are retaken with the
#: step scaled by each of these in turn, for the disagreeing coordinates (or
#: directions) only: a large step can straddle a kink beside the point, or
#: outrun Richardson's error estimate where the loss bends sharply.
REFINE = (2.0**-4, 2.0**-8)


#: The kink test of `Evaluation.kinks_within_steps` compares autodiff's jump over the finest
#: step and over this fraction of it: a smooth gradient's change shrinks by this factor,
#: a kink's jump not at all; a jump that keeps at least KINK_PERSISTENCE of itself is a kink.
KINK_STEP_RATIO = 4.0
KINK_PERSISTENCE = 0.5


def refined(refs: References, finer: References, doubt: np.ndarray) -> References:
    """`refs` with the finite differences of `finer` where `doubt`, and its autodiff there: the same autodiff,
    unless the finite differences stand in for it (a NumPy forward's: `_forward`), when it is refined with them."""
    if refs.along is None or finer.along is None:
        fields = ("autodiff", "finite_diff", "fd_error", "kink")
        return refs._replace(**{f: np.where(doubt, getattr(finer, f), getattr(refs, f)) for f in fields})
    along = refs.along._replace(
        **{
            f: np.where(doubt, getattr(finer.along, f), getattr(refs.along, f))
            for f in ("finite_diff", "fd_error", "kink")
        }
    )
    return refs._replace(along=along)


def assemble(out: tuple[np.ndarray, ...]) -> References:
    """`References` from the outputs of a `reference_function` (of one problem, or stacked)."""
    if len(out) == 5:
        return References(*out, along=None)
    g, noise, *along = out
    # Read-only views, not arrays: a large model's elementwise finite differences are NaN throughout.
    nan = np.broadcast_to(np.nan, g.shape)
    return References(g, noise, nan, nan, np.broadcast_to(False, g.shape), Along(*along))


class Refinable(Protocol):
    """What refining the finite differences needs of an evaluation (`_judge.refined_until_agreed`): its
    references, and the finite differences retaken at a finer step. Every evaluator implements it: one
    problem's (`Evaluation`: NumPy, compiled, a NumPy forward's), a stack's (`_numpy_evaluation.StackedEvaluation`)
    and a compiled batch's (`_batch`); mypy checks each against it."""

    @property
    def references(self) -> References: ...

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        """The references with finite differences retaken at `scale` times the step (where `doubt`, at least)."""
        ...


class Evaluation:
    """The references of one problem, by one path; finer finite differences and losses on demand."""

    path: Path
    references: References
    theta: np.ndarray  # (P,)  the point, flat
    #: No rounding noise was measured (zeros in `references.noise`, and for the loss's): see `SCREEN`.
    screened: bool = False
    #: An error bound on `references.autodiff` where it is no autodiff but stands in for it (the finite
    #: differences of a loss JAX cannot trace: `_forward`); the tolerance widens by FD_SAFETY times it.
    reference_error: np.ndarray | None = None

    def measured(self) -> Evaluation:
        """This problem's references taken again, every part of them, with the noise measured (itself, unless
        `screened`)."""
        return self

    def _memo(self, key: Hashable, build: Callable[[], V]) -> V:
        """``build()``, once per `key` for this evaluation: a problem checked again (the next submission of a
        class: `evaluation` keeps the evaluations of the problems it met) asks the same questions of it."""
        memo: dict[Hashable, Any] = self.__dict__.setdefault("_memos", {})
        if key not in memo:
            memo[key] = build()
        return memo[key]  # type: ignore[no-any-return]

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        """The references with finite differences retaken at `scale` times the step (where `doubt`, at least)."""
        raise NotImplementedError

    def losses(self, points: np.ndarray) -> np.ndarray:
        """The loss at each row of `points` (M, P), in float64."""
        raise NotImplementedError

    def gradients(self, points: np.ndarray) -> np.ndarray:
        """Autodiff's gradient at each row of `points` (M, P), in float64: (M, P)."""
        raise NotImplementedError

    def kinks_within_steps(self, coordinates: np.ndarray, tol: np.ndarray) -> np.ndarray:
        """Which `coordinates` have a kink within the finest finite-difference steps.

        Where autodiff and the finite differences still disagree after every
        refinement, autodiff's own gradient along the coordinate tells why: at
        ``theta +- h e_i`` it moves from its value at theta by about
        ``|d2L/dtheta_i^2| h`` on a smooth loss, shrinking with h, but by a
        jump that stays put when a kink (a ReLU's, a max's) lies within h of
        theta. Taken at the two finest steps, a jump that keeps at least half
        its size and exceeds the tolerance is a kink. (The one-sided slopes of
        the loss, `_finite_diff`'s test, see the same jump, but through
        rounding amplified by 1/h, which can hide it when the loss is large
        and its gradient tiny.)
        """
        if coordinates.size == 0:
            return np.zeros(0, bool)
        key = ("kinks", coordinates.tobytes(), tol.tobytes())
        kink: np.ndarray = self._memo(key, lambda: self._kinks_within_steps(coordinates, tol)).copy()
        return kink

    def _kinks_within_steps(self, coordinates: np.ndarray, tol: np.ndarray) -> np.ndarray:
        theta = self.theta
        d = coordinates.size
        finest = _finite_diff.FD_STEP * REFINE[-1] * np.maximum(1.0, np.abs(theta[coordinates]))
        steps = np.stack([finest, finest / KINK_STEP_RATIO])  # (2, D)
        points = np.broadcast_to(theta, (2, 2, d, theta.size)).copy()  # (sign, step, D, P)
        rows = np.arange(d)
        for k in range(2):
            points[0, k, rows, coordinates] += steps[k]
            points[1, k, rows, coordinates] -= steps[k]
        g = self.gradients(points.reshape(-1, theta.size)).reshape(2, 2, d, theta.size)[..., rows, coordinates]
        jump = np.abs(g - self.references.autodiff[coordinates]).max(axis=0)  # (step, D)
        kink: np.ndarray = (jump[1] > KINK_PERSISTENCE * jump[0]) & (jump[1] > tol[coordinates])
        return kink
