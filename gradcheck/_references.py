"""References: float64 autodiff, its measured rounding noise, and finite differences.

Two paths compute the same `References`:

- **NumPy** (`NumpyEvaluation`): the jaxprs of `_trace.program`, traced once
  per pattern of shapes, run by `_interpret`. No XLA compile: a shape never
  seen before costs about as much as any other.
- **Compiled** (`CompiledEvaluation`): `reference_function`, jitted by XLA.
  It costs 0.1-0.7 s to compile, then runs in well under a millisecond.

`evaluation` chooses as in the ski-rental problem: the NumPy path runs at
a shape until it has cost about what one compile costs (`COMPILE_AFTER`
checks of one loss at one shape), and then the compiled path takes over
there. That never costs much more than twice the better choice made in
hindsight. It counts calls rather than timing them, so that a run's output
does not depend on the machine's load. Large models (above
`MAX_COORDINATES` parameters, directional finite differences) and losses
with a primitive that has no NumPy rule always compile.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _caches, _finite_diff, _interpret, _noise, _tolerance, _trace

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
#: The screen of `check_gradients` (and of `check_batch`, for its large
#: problems): every check is first judged without the Monte Carlo runs, which
#: cost more than the rest of a NumPy check's references, and each about six
#: backward passes at 3.2 million parameters. The gradient's noise and the
#: loss's are taken as zero. That leaves every tolerance at its floor, every
#: finite-difference error bound at its least (truncation and
#: `_finite_diff.EVAL_ULPS`), and every kink test at its most sensitive. The
#: measured noise only widens the first two and narrows the third (a run that
#: is not finite is left out of it, and noise that cannot be measured allows
#: the floor alone: `_noise.spread`, `_judge.tolerances`), so a pass with no
#: kink found is a pass of the full check. Anything else is judged again with
#: the noise measured (`Evaluation.measured`), and on that alone.
SCREEN = True


#: The references are compiled once per shape, and tests and the CLI meet many
#: small shapes: XLA's cheapest backend optimisation halves compile time
#: (about 0.9 s to 0.5 s) for a 1.3x slower run (0.4 to 0.5 ms).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


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

#: Checks of one loss at one shape on the NumPy path before the compiled path takes over.
#: One XLA compile of the seed network's references costs 0.13-0.3 s on a 2-core machine,
#: one NumPy check 2-5 ms (benchmarks/cold.py measures both): a compile is worth about 64
#: NumPy checks, after which each compiled check saves 1-4 ms.
COMPILE_AFTER = 64


def refined(refs: References, finer: References, doubt: np.ndarray) -> References:
    """`refs` with the finite differences of `finer` where `doubt` (the autodiff and noise are the same)."""
    if refs.along is None or finer.along is None:
        fd = [np.where(doubt, new, old) for old, new in zip(refs[2:5], finer[2:5])]
        return refs._replace(finite_diff=fd[0], fd_error=fd[1], kink=fd[2])
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
    problem's (`Evaluation`: NumPy, compiled, a NumPy forward's), a stack's (`_stacked.StackedEvaluation`)
    and a compiled batch's (`_batch`); mypy checks each against it."""

    @property
    def references(self) -> References: ...

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        """The references with finite differences retaken at `scale` times the step (where `doubt`, at least)."""
        ...


# --- choosing the path ---------------------------------------------------------


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


#: Why the NumPy path failed where it did (a rule of ours that raised), by program key: the check went on
#: compiled. Tests read it; a bug report can quote it.
NUMPY_FAILURES: dict[Hashable, str] = _caches.registered({})
#: Checks run on the NumPy path, per loss and concrete shape, and the shapes it cannot run.
_COUNTS: collections.OrderedDict[Hashable, int] = _caches.registered(collections.OrderedDict())
_UNSUPPORTED: set[Hashable] = _caches.registered(set())
_FORCED: list[Path] = []


@contextlib.contextmanager
def forced(path: Path) -> Iterator[None]:
    """Within the block, every check takes `path` (tests and benchmarks compare the two)."""
    _FORCED.append(path)
    try:
        yield
    finally:
        _FORCED.pop()


@contextlib.contextmanager
def unscreened() -> Iterator[None]:
    """Within the block, `check_gradients` measures the noise of every check (`SCREEN` off)."""
    global SCREEN
    before, SCREEN = SCREEN, False
    try:
        yield
    finally:
        SCREEN = before


def evaluation(
    loss_fn: Callable[..., Any],
    treedef: Any,
    leaves: list[np.ndarray],
    args: tuple[np.ndarray, ...],
    unit_roundoff: float,
    seed: int,
    closed: np.ndarray,
    *,
    screen: bool = False,
) -> Evaluation:
    """The references at the point given by `leaves`, by the path that pays (module docstring).

    With `screen`, the noise is left unmeasured (`SCREEN`).
    """
    shapes = tuple(leaf.shape for leaf in leaves)
    theta = np.concatenate([leaf.ravel() for leaf in leaves])
    if theta.size > MAX_COORDINATES:
        return CompiledEvaluation(
            _trace.trace_loss(loss_fn, treedef, shapes, args), theta, args, unit_roundoff, seed, closed, screen=screen
        )
    bound = _trace.program(loss_fn, treedef, shapes, args)
    key = (bound.program.key, tuple(sorted(bound.dims.items())), shapes)
    # The same problem checked again (the next submission of a class, on the problems every passing
    # search draws): its references are the ones already taken, whichever path took them.
    if theta.size + sum(a.size for a in args) > EVALUATED_NUMBERS:  # too large to keep: taken afresh each time
        return _fresh_evaluation(loss_fn, treedef, leaves, theta, args, unit_roundoff, seed, closed, bound, key, screen)
    digest = hashlib.blake2b(theta.tobytes(), digest_size=16)
    for a in args:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    problem = (key, digest.digest(), unit_roundoff, seed, screen, preferred_path())
    if problem in _EVALUATIONS:
        _EVALUATIONS.move_to_end(problem)
        return _EVALUATIONS[problem]
    done = _fresh_evaluation(loss_fn, treedef, leaves, theta, args, unit_roundoff, seed, closed, bound, key, screen)
    _EVALUATIONS[problem] = done
    if len(_EVALUATIONS) > EVALUATIONS_KEPT:
        _EVALUATIONS.popitem(last=False)
    return done


#: Evaluations kept for a problem checked again, least recently used evicted: a class of 500 submissions
#: meets the same 2 x 100 problems (and a few generic ones) in every passing search. Only problems of at
#: most `EVALUATED_NUMBERS` numbers (parameters and data) are kept: tens of MiB in all at the most.
EVALUATIONS_KEPT = 2048
EVALUATED_NUMBERS = 4096
_EVALUATIONS: collections.OrderedDict[Hashable, Evaluation] = _caches.registered(collections.OrderedDict())


def _fresh_evaluation(
    loss_fn: Callable[..., Any],
    treedef: Any,
    leaves: list[np.ndarray],
    theta: np.ndarray,
    args: tuple[np.ndarray, ...],
    unit_roundoff: float,
    seed: int,
    closed: np.ndarray,
    bound: _trace.Bound,
    key: Hashable,
    screen: bool,
) -> Evaluation:
    """The references of a problem not seen before, by the path that the cost model chooses."""
    shapes = tuple(leaf.shape for leaf in leaves)
    count = _trace.cached(_COUNTS, key, int)
    want = preferred_path()
    if want is None:
        want = "xla" if key in _UNSUPPORTED or count >= COMPILE_AFTER else "numpy"
    if want == "numpy":
        try:
            done = NumpyEvaluation(bound, leaves, theta, args, unit_roundoff, seed, screen=screen)
        except _interpret.Unsupported:
            _UNSUPPORTED.add(key)
        except Exception as exc:  # noqa: BLE001 - a rule of ours that failed: never the user's verdict
            # The NumPy path never crashes a check: what failed is recorded, and XLA computes the references.
            _UNSUPPORTED.add(key)
            NUMPY_FAILURES[key] = f"{type(exc).__name__}: {exc}"
        else:
            _COUNTS[key] = count + 1
            return done
    traced = _trace.cached(_CONCRETE, key, lambda: _trace.trace_loss(loss_fn, treedef, shapes, args))
    return CompiledEvaluation(traced, theta, args, unit_roundoff, seed, closed, screen=screen)


def autodiff(loss_fn: Callable[..., Any], params: Any, *args: Any) -> Any:
    """Autodiff's gradient of ``loss_fn(params, *args)`` in float64, as `params`' structure of NumPy arrays.

    By the NumPy path (no compile) where it can; a primitive without a NumPy rule compiles.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    leaves = [np.asarray(leaf, np.float64) for leaf in leaves]
    data = tuple(np.asarray(a) for a in args)
    bound = _trace.program(loss_fn, treedef, tuple(leaf.shape for leaf in leaves), data)
    try:
        _, *grads = _interpret.evaluate(bound.program.value_and_grad, [*leaves, *data], bound.dims)
    except _interpret.Unsupported:
        with jax.enable_x64(True):
            grads = jax.tree_util.tree_leaves(
                jax.jit(jax.grad(loss_fn))(jax.tree_util.tree_unflatten(treedef, leaves), *data)
            )
    return jax.tree_util.tree_unflatten(treedef, [np.asarray(g, np.float64) for g in grads])


#: Environment variable that fixes the path for a whole run: "numpy", "xla" or "auto" (the default).
ENVIRONMENT = "GRADCHECK_REFERENCES"


def preferred_path() -> Path | None:
    """The path fixed by `forced` or by `GRADCHECK_REFERENCES`, or None for the cost model's choice."""
    return _FORCED[-1] if _FORCED else _from_environment()


def _from_environment() -> Path | None:
    value = os.environ.get(ENVIRONMENT, "auto").strip().lower()
    if value in ("numpy", "xla"):
        return value  # type: ignore[return-value]
    if value in ("auto", ""):
        return None
    raise ValueError(f"`{ENVIRONMENT}` must be numpy, xla or auto, got {value!r}; unset it for the default (auto).")


#: Forget every trace, program, compiled function and cost record: the next check is a first one.
clear_caches = _caches.clear


#: Concrete traces of losses that went over to the compiled path, by the program's key and shape.
_CONCRETE: collections.OrderedDict[Hashable, _trace.TracedLoss] = _caches.registered(collections.OrderedDict())


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


class CompiledEvaluation(Evaluation):
    """The references computed by `reference_function`, jitted by XLA (cached per traced loss)."""

    path: Path = "xla"

    def __init__(
        self,
        traced: _trace.TracedLoss,
        theta: np.ndarray,
        args: tuple[np.ndarray, ...],
        unit_roundoff: float,
        seed: int,
        closed: np.ndarray,
        *,
        screen: bool = False,
    ):
        large = theta.size > MAX_COORDINATES
        self.traced, self.theta, self.args, self.closed = traced, theta, args, closed
        self.screened = screen
        self.fn = _compiled(
            traced,
            DIRECTIONS if large else None,
            LARGE_NOISE_SAMPLES if large else _tolerance.NOISE_SAMPLES,
            gradient_noise=not screen,
        )
        # NumPy arrays go to the compiled function as they are: wrapping each in
        # jnp.asarray first is a dispatch apiece, a third of a small check's time.
        self.inputs = (theta, args, np.uint32(seed), unit_roundoff)
        self.references = assemble(tuple(jax.device_get(self.fn(*self.inputs, closed, 1.0))))

    @functools.cached_property
    def _measured(self) -> Evaluation:
        theta, args, seed, unit_roundoff = self.inputs
        return CompiledEvaluation(self.traced, theta, args, unit_roundoff, int(seed), self.closed)

    def measured(self) -> Evaluation:
        return self._measured if self.screened else self

    def finer(self, scale: float, doubt: np.ndarray) -> References:
        # Every coordinate is retaken, whichever are in doubt.
        return self._memo(
            ("finer", scale), lambda: assemble(tuple(jax.device_get(self.fn(*self.inputs, self.closed, scale))))
        )

    def losses(self, points: np.ndarray) -> np.ndarray:
        flat_loss = _trace.flat_loss(self.traced)
        with jax.enable_x64(True):
            jargs = tuple(jnp.asarray(a) for a in self.args)
            return np.asarray(jax.vmap(lambda t: flat_loss(t, jargs))(jnp.asarray(points)), dtype=np.float64)

    def gradients(self, points: np.ndarray) -> np.ndarray:
        grad = _trace.cached(
            _COMPILED,
            (self.traced.key, "gradients"),
            lambda: jax.jit(jax.vmap(jax.grad(_trace.flat_loss(self.traced)), (0, None))),
        )
        with jax.enable_x64(True):
            return np.asarray(grad(points, self.args), dtype=np.float64)


_COMPILED: collections.OrderedDict[Hashable, Callable[..., tuple[jax.Array, ...]]] = _caches.registered(
    collections.OrderedDict()
)


def _compiled(
    traced: _trace.TracedLoss, directions: int | None, samples: int, *, gradient_noise: bool = True
) -> Callable[..., tuple[jax.Array, ...]]:
    """The jitted references for `traced`, from a least-recently-used cache."""
    # Large models (directional mode) run long enough to repay XLA's full optimisation.
    large = directions is not None
    return _trace.cached(
        _COMPILED,
        (traced.key, directions, samples, gradient_noise),
        lambda: jax.jit(
            reference_function(
                traced, directions=directions, samples=samples, sequential=large, gradient_noise=gradient_noise
            ),
            compiler_options=None if large else COMPILER_OPTIONS,
        ),
    )


def reference_function(
    traced: _trace.TracedLoss,
    *,
    directions: int | None = None,
    samples: int = _tolerance.NOISE_SAMPLES,
    sequential: bool = False,
    gradient_noise: bool = True,
) -> Callable[..., tuple[jax.Array, ...]]:
    """``(theta, args, seed, unit_roundoff, closed, step_scale) -> references`` for one problem, traceable.

    With `directions` None the finite differences run along every coordinate
    and `closed` is unused; with an int D they run along D random +-1
    directions drawn from `seed`, and the result carries the closed form's
    and autodiff's derivatives along them. `samples` Monte Carlo re-runs
    measure the noise; `step_scale` scales every finite-difference step;
    `sequential` evaluates the finite differences' points, and the Monte Carlo
    runs, one at a time. Without `gradient_noise` there are no Monte Carlo
    runs: the noise of the gradient and of the loss are taken as zero (`SCREEN`).
    Turn the output into `References` with `assemble`; jit it, or vmap it.
    """
    flat_loss = _trace.flat_loss(traced)
    value_and_grad = jax.value_and_grad(flat_loss)

    def measure_noise(
        theta: jax.Array, args: tuple[jax.Array, ...], seed: jax.Array, unit_roundoff: jax.Array, f0: Any, g: Any
    ) -> tuple[jax.Array, jax.Array]:
        streams = seed * _tolerance.NOISE_SAMPLES + jnp.arange(samples, dtype=jnp.uint32)
        # One MCA run gives both: the gradient's noise at the closed form's precision, and
        # the loss's noise at float64 for the finite differences.
        # It runs at no finer than MCA_ROUNDOFF and is scaled back linearly.
        mca_u = jnp.maximum(unit_roundoff, _noise.MCA_ROUNDOFF)
        run = _noise.perturbed(value_and_grad, mca_u)
        if sequential:  # one run at a time: vmapped, a large model's products become batched ones, several times slower
            f_samples, g_samples = jax.lax.map(lambda stream: run(stream, theta, args), streams)
        else:
            f_samples, g_samples = jax.vmap(run, (0, None, None))(streams, theta, args)
        # The loss's noise over the finite runs; none finite: none measured, the least allowance (as the screen).
        sigma_f = jnp.nan_to_num(_noise.spread(f_samples, f0)) * (2.0**-53 / mca_u)
        noise = _noise.spread(g_samples, g) * (unit_roundoff / mca_u) * _tolerance.samples_safety(samples)
        return noise, sigma_f

    def references(
        theta: jax.Array,
        args: tuple[jax.Array, ...],
        seed: jax.Array,
        unit_roundoff: jax.Array,
        closed: jax.Array,
        step_scale: jax.Array,
    ) -> tuple[jax.Array, ...]:
        f0, g = value_and_grad(theta, args)
        if gradient_noise:
            noise, sigma_f = measure_noise(theta, args, seed, unit_roundoff, f0, g)
        else:  # the screen: no noise measured
            noise, sigma_f = jnp.zeros_like(g), jnp.zeros_like(f0)
        if directions is None:
            steps = step_scale * _finite_diff.FD_STEP * jnp.maximum(1.0, jnp.abs(theta))
            fd = _finite_diff.directional(
                lambda t: flat_loss(t, args), theta, jnp.eye(theta.shape[0], dtype=theta.dtype), steps, sigma_f, f0
            )
            return g, noise, fd.value, fd.error, fd.kink
        # Rademacher directions from their own stream (the MCA streams are seed * 8 + 0..7).
        xi = _noise.uniform(jnp.uint32(0xFFFFFFFF) - seed, directions * theta.shape[0])
        d = jnp.where(xi >= 0, 1.0, -1.0).reshape(directions, theta.shape[0]).astype(theta.dtype)
        steps = jnp.full(directions, step_scale * _finite_diff.FD_STEP * jnp.maximum(1.0, jnp.max(jnp.abs(theta))))
        fd = _finite_diff.directional(lambda t: flat_loss(t, args), theta, d, steps, sigma_f, f0, sequential=sequential)
        return g, noise, d @ g, d @ closed, fd.value, fd.error, fd.kink

    return references
