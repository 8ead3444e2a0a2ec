"""References: float64 autodiff, its measured rounding noise, and finite differences.

Two paths compute the same `References`:

- **NumPy** (`NumpyEvaluation`): the jaxprs of `_trace.program`, traced once
  per pattern of shapes, run by `_interpret`. No XLA compile: a shape never
  seen before costs about as much as any other.
- **Compiled** (`CompiledEvaluation`): `reference_function`, jitted by XLA.
  It costs 0.1-0.7 s to compile, then runs in well under a millisecond.

`evaluation` chooses by the references' one cost model (`_cost`: ski
rental): the NumPy path runs at a shape until it has cost about what one
compile costs (`COMPILE_AFTER` checks of one loss at one shape), and then the
compiled path takes over there. Large models (above `MAX_COORDINATES`
parameters, directional finite differences) and losses with a primitive that
has no NumPy rule always compile.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import jax
import numpy as np

from gradcheck import _caches
from gradcheck._references import _cost, _interpret, _trace
from gradcheck._references._compiled_evaluation import COMPILER_OPTIONS, CompiledEvaluation, reference_function
from gradcheck._references._cost import COMPILE_AFTER, ENVIRONMENT, forced, preferred_path
from gradcheck._references._evaluation import (
    DIRECTIONS,
    KINK_PERSISTENCE,
    KINK_STEP_RATIO,
    LARGE_NOISE_SAMPLES,
    MAX_COORDINATES,
    REFINE,
    Along,
    Evaluation,
    Path,
    References,
    Refinable,
    assemble,
    refined,
)
from gradcheck._references._numpy_evaluation import (
    NumpyEvaluation,
    StackedEvaluation,
    one_problem_differences,
    patched,
)

# The references' types and evaluators, by the names the rest of the package has always used.
__all__ = [
    "COMPILER_OPTIONS",
    "COMPILE_AFTER",
    "DIRECTIONS",
    "ENVIRONMENT",
    "KINK_PERSISTENCE",
    "KINK_STEP_RATIO",
    "LARGE_NOISE_SAMPLES",
    "MAX_COORDINATES",
    "REFINE",
    "Along",
    "CompiledEvaluation",
    "Evaluation",
    "NumpyEvaluation",
    "Path",
    "References",
    "Refinable",
    "StackedEvaluation",
    "assemble",
    "autodiff",
    "clear_caches",
    "evaluation",
    "forced",
    "one_problem_differences",
    "patched",
    "preferred_path",
    "reference_function",
    "refined",
    "unscreened",
]


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


class _Count(list[int]):
    """A running total, as a one-entry list that `_caches.clear` sets back to 0."""

    def __init__(self) -> None:
        super().__init__([0])

    def clear(self) -> None:
        self[:] = [0]


#: Why the NumPy path failed where it did (a rule of ours that raised), by program key: the check went on
#: compiled. Tests read it; a bug report can quote it.
NUMPY_FAILURES: dict[Hashable, str] = _caches.registered({})


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
    numbers = theta.size + sum(a.size for a in args)
    if numbers > EVALUATED_NUMBERS:  # too large to keep: taken afresh each time
        return _fresh_evaluation(loss_fn, treedef, leaves, theta, args, unit_roundoff, seed, closed, bound, key, screen)
    digest = hashlib.blake2b(theta.tobytes(), digest_size=16)
    for a in args:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    problem = (key, digest.digest(), unit_roundoff, seed, screen, preferred_path())
    if problem in _EVALUATIONS:
        _EVALUATIONS.move_to_end(problem)
        return _EVALUATIONS[problem][0]
    done = _fresh_evaluation(loss_fn, treedef, leaves, theta, args, unit_roundoff, seed, closed, bound, key, screen)
    _EVALUATIONS[problem] = (done, numbers)
    _KEPT[0] += numbers
    while _KEPT[0] > NUMBERS_KEPT or len(_EVALUATIONS) > EVALUATIONS_KEPT:
        _KEPT[0] -= _EVALUATIONS.popitem(last=False)[1][1]
    return done


#: Evaluations kept for a problem checked again, least recently used evicted: a class of 500 submissions
#: meets the same 2 x 100 problems (and a few generic ones) in every passing search, a twelfth of them
#: of 2,048 samples. At most `EVALUATIONS_KEPT` of them, of at most `EVALUATED_NUMBERS` numbers each
#: (parameters and data), and `NUMBERS_KEPT` numbers in all: some 64 MiB of data at the most.
EVALUATIONS_KEPT = 2048
EVALUATED_NUMBERS = 1 << 16
NUMBERS_KEPT = 1 << 23
#: The numbers the kept evaluations hold, in all (one entry: a list, so that clearing the caches resets it).
_KEPT = _caches.registered(_Count())
_EVALUATIONS: collections.OrderedDict[Hashable, tuple[Evaluation, int]] = _caches.registered(collections.OrderedDict())


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
    if _cost.ONE_PROBLEM.path(key, 1) == "numpy":
        try:
            done = NumpyEvaluation(bound, leaves, theta, args, unit_roundoff, seed, screen=screen)
        except _interpret.Unsupported:
            _cost.ONE_PROBLEM.unsupported.add(key)
        except Exception as exc:  # noqa: BLE001 - a rule of ours that failed: never the user's verdict
            # The NumPy path never crashes a check: what failed is recorded, and XLA computes the references.
            _cost.ONE_PROBLEM.unsupported.add(key)
            NUMPY_FAILURES[key] = f"{type(exc).__name__}: {exc}"
        else:
            _cost.ONE_PROBLEM.spend(key, 1)
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


#: Forget every trace, program, compiled function and cost record: the next check is a first one.
clear_caches = _caches.clear


#: Concrete traces of losses that went over to the compiled path, by the program's key and shape.
_CONCRETE: collections.OrderedDict[Hashable, _trace.TracedLoss] = _caches.registered(collections.OrderedDict())
