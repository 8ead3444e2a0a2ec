"""`check_gradients`: a closed form against autodiff and finite differences."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import math
import traceback
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from gradcheck import _diagnose, _finite_diff, _noise, _taylor, _tolerance, _validate, mlp, network
from gradcheck._report import GradientMismatch, ParamResult, ReferencesDisagree, Report

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


def check_gradients(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
) -> Report:
    """Check `grad_fn` against float64 autodiff and finite differences of `loss_fn`.

    Args:
        loss_fn: ``loss_fn(params, *args)`` returns a scalar; written with
            ``jax.numpy`` (or any code JAX can trace).
        grad_fn: ``grad_fn(params, *args)`` returns the gradient with the same
            structure as `params` (a NamedTuple, dict or tuple; a dict with the
            same field names as a NamedTuple also matches), as NumPy arrays.
        params: the point to check at, a pytree of real arrays.
        *args: further arguments of both functions (data, targets).
        seed: seeds the Monte Carlo arithmetic that measures rounding noise.

    Returns:
        A `Report`; ``report.ok`` is true when every parameter passes.

    Examples:
        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import check_gradients, mlp
        >>> p = mlp.init_params(0)
        >>> x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
        >>> loss = partial(mlp.loss, task="classification")
        >>> grads = partial(mlp.closed_form_gradients, task="classification")
        >>> check_gradients(loss, grads, p, x, y).ok
        True
    """
    for label, fn in (("loss_fn", loss_fn), ("grad_fn", grad_fn)):
        if not callable(fn):
            raise TypeError(f"`{label}` must be a function, got {type(fn).__name__} {fn!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an integer in [0, 2**32), got {seed!r}.")
    names, leaves, treedef = _flatten_params(params)
    ref_args = tuple(_validate.data_argument(f"args[{i}]", a) for i, a in enumerate(args))
    try:
        # The user's function gets its own copies: it may not move the data
        # that the references are computed from.
        returned = grad_fn(params, *(np.array(a, copy=True) for a in args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's code (even sys.exit): reported, not raised
        message = f"`grad_fn` raised {_describe(exc)}"
        return Report(tuple(ParamResult(n, leaf.shape, "error", message=message) for n, leaf in zip(names, leaves)))
    positional = isinstance(params, (tuple, list)) and isinstance(returned, (tuple, list))
    closed, problems = _match_structure(names, leaves, returned, positional=positional)
    precision = _tolerance.precision_of([c.dtype for c in closed.values()])
    eps = float(np.finfo(precision).eps)
    theta = np.concatenate([leaf.ravel() for leaf in leaves])
    cf = np.concatenate(
        [
            closed[n].astype(np.float64).ravel()
            if n in closed and closed[n].shape == leaf.shape
            else np.zeros(leaf.size)
            for n, leaf in zip(names, leaves)
        ]
    )
    cf = np.where(np.isfinite(cf), cf, 0.0)  # non-finite entries are reported apart
    traced = _trace_loss(loss_fn, treedef, tuple(leaf.shape for leaf in leaves), ref_args)
    with jax.enable_x64(True):
        refs = _references(traced, theta, ref_args, eps / 2, seed, cf, precision)
    report = _judge(names, leaves, closed, problems, refs, precision, cf)
    if report.verdict == "mismatch" and not problems:
        direction = _taylor.along_error(cf, refs.autodiff, np.random.default_rng(seed))
        observed = _taylor.rate(_flat_loss(traced), ref_args, theta, cf, direction)
        report = dataclasses.replace(report, notes=(*report.notes, _taylor.describe(observed)), taylor_rate=observed)
    return report


def assert_gradients(
    loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any, *args: Any, seed: int = 0
) -> Report:
    """Like `check_gradients`, but raise unless every parameter passes.

    Raises:
        GradientMismatch: the closed form disagrees with the references (an
            `AssertionError` whose message is the report).
        ReferencesDisagree: autodiff and finite differences disagree with each
            other (for example at a non-differentiable point).
    """
    report = check_gradients(loss_fn, grad_fn, params, *args, seed=seed)
    if report.verdict == "mismatch":
        raise GradientMismatch(report)
    if report.verdict == "inconclusive":
        raise ReferencesDisagree(report)
    return report


# --- inputs -------------------------------------------------------------------


def named_leaves(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
    """The leaves of `params` with their names ("w1", "layers.0.w"), checked real and finite, as float64."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not with_path:
        raise ValueError(f"`params` holds no arrays (got {params!r}); pass a NamedTuple, dict or tuple of arrays.")
    names = [jax.tree_util.keystr(path, simple=True, separator=".") or "params" for path, _ in with_path]
    leaves = [
        _validate.real_finite(f"params.{name}", leaf).astype(np.float64) for name, (_, leaf) in zip(names, with_path)
    ]
    return names, leaves, treedef


def _flatten_params(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
    names, leaves, treedef = named_leaves(params)
    for name, leaf in zip(names, leaves):
        if leaf.size == 0:
            raise ValueError(
                f"`params.{name}` is empty (shape {leaf.shape}); every parameter needs at least one entry."
            )
    return names, leaves, treedef


def _match_structure(
    names: list[str], leaves: list[np.ndarray], returned: Any, *, positional: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Pair the returned gradient with the parameters by name; collect problems.

    With `positional` (params and the result are both tuples or lists) entries
    are paired by position when the names differ, e.g. a tuple of four arrays
    for `mlp.Params`.
    """
    try:
        with_path, _ = jax.tree_util.tree_flatten_with_path(returned)
    except Exception as exc:  # noqa: BLE001 - any odd object is a user error here
        with_path = []
        structure_error = f"returned {type(returned).__name__}, which is not a pytree ({exc})"
    else:
        structure_error = f"returned {type(returned).__name__} with no entry for this parameter"
    got = {jax.tree_util.keystr(path, simple=True, separator=".") or "params": leaf for path, leaf in with_path}
    if set(got) != set(names):
        if positional and len(names) == len(with_path):
            got = dict(zip(names, (leaf for _, leaf in with_path)))
        elif got and not set(got) <= set(names):
            structure_error = f"returned entries {sorted(got)}, which do not match the parameters {sorted(names)}"
        elif got:
            structure_error = f"returned only {sorted(got)}, with no entry for this parameter"
    closed: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for name, leaf in zip(names, leaves):
        if name not in got:
            problems[name] = f"`grad_fn` {structure_error}"
            continue
        value = np.asarray(got[name])
        if not _validate.is_real(value):
            problems[name] = f"`grad_fn` returned dtype {value.dtype} for `{name}`; expected real numbers"
            continue
        if value.shape != leaf.shape:
            problems[name] = f"`grad_fn` returned shape {value.shape} for `{name}`, expected {leaf.shape}"
        elif (index := _validate.first_non_finite(value)) is not None:
            problems[name] = f"`grad_fn` returned {value[index].item()!r} for `{name}` at index {index}"
        closed[name] = value  # kept even when wrong: the diagnosis may explain it
    return closed, problems


# --- references ---------------------------------------------------------------


#: Where the references disagree, the finite differences are retaken with the
#: step scaled by each of these in turn, for the disagreeing coordinates (or
#: directions) only: a large step can straddle a kink beside the point, or
#: outrun Richardson's error estimate where the loss bends sharply.
REFINE = (2.0**-4, 2.0**-8)


def _references(
    traced: _TracedLoss,
    theta: np.ndarray,
    args: tuple[np.ndarray, ...],
    unit_roundoff: float,
    seed: int,
    closed: np.ndarray,
    precision: np.dtype,
) -> References:
    """Autodiff, its measured noise and the finite differences at the flat point `theta`."""
    large = theta.size > MAX_COORDINATES
    fn = _compiled(traced, DIRECTIONS if large else None, LARGE_NOISE_SAMPLES if large else _tolerance.NOISE_SAMPLES)
    # NumPy arrays go to the compiled function as they are: wrapping each in
    # jnp.asarray first is a dispatch apiece, a third of a small check's time.
    inputs = (theta, args, np.uint32(seed), unit_roundoff)
    refs = assemble(tuple(jax.device_get(fn(*inputs, closed, 1.0))))
    for scale in REFINE:
        tol = tolerances(refs.autodiff, refs.noise, precision)
        if refs.along is None:
            doubt = compare(closed, refs.autodiff, tol, refs.finite_diff, refs.fd_error, refs.kink).doubt
        else:
            doubt = along_doubt(refs.along, tol)
        if not doubt.any():
            break
        finer = assemble(tuple(jax.device_get(fn(*inputs, closed, scale))))
        refs = _refined(refs, finer, doubt)
    return refs


def _refined(refs: References, finer: References, doubt: np.ndarray) -> References:
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
    nan = np.full_like(g, np.nan)
    return References(g, noise, nan, nan, np.zeros(g.shape, bool), Along(*along))


class _TracedLoss(NamedTuple):
    """The loss traced for one set of shapes, and a key that identifies it exactly."""

    closed: Any  # jax ClosedJaxpr, inputs: the params' leaves, then the args
    shapes: tuple[tuple[int, ...], ...]
    key: Hashable  # the jaxpr's text and a digest of its constants


#: Losses known to read nothing but their arguments (gradcheck's own models):
#: their traces are cached by identity instead of being redone on every call.
PURE_LOSSES: set[Callable[..., Any]] = {mlp.loss, network.loss}
_PURE_TRACES: dict[Hashable, _TracedLoss] = {}

F = TypeVar("F", bound=Callable[..., Any])


def pure_loss(fn: F) -> F:
    """Mark one of gradcheck's own losses as reading nothing but its arguments."""
    PURE_LOSSES.add(fn)
    return fn


def _pure_key(loss_fn: Callable[..., Any]) -> Hashable | None:
    """An identity key for a `PURE_LOSSES` function or a partial of one with hashable arguments."""
    func, bound = (
        (loss_fn.func, (loss_fn.args, tuple(sorted(loss_fn.keywords.items()))))
        if isinstance(loss_fn, functools.partial)
        else (loss_fn, ())
    )
    if func not in PURE_LOSSES:
        return None
    try:
        hash(bound)
    except TypeError:
        return None
    return (func, bound)


def _trace_loss(
    loss_fn: Callable[..., Any], treedef: Any, shapes: tuple[tuple[int, ...], ...], args: tuple[np.ndarray, ...]
) -> _TracedLoss:
    pure = _pure_key(loss_fn)
    if pure is None:
        return _trace_fresh(loss_fn, treedef, shapes, args)
    key = (pure, treedef, shapes, tuple((a.shape, str(a.dtype)) for a in args))
    if key not in _PURE_TRACES:
        if len(_PURE_TRACES) >= COMPILED_CACHE_SIZE:
            _PURE_TRACES.clear()
        _PURE_TRACES[key] = _trace_fresh(loss_fn, treedef, shapes, args)
    return _PURE_TRACES[key]


def _trace_fresh(
    loss_fn: Callable[..., Any], treedef: Any, shapes: tuple[tuple[int, ...], ...], args: tuple[np.ndarray, ...]
) -> _TracedLoss:
    """Trace `loss_fn` now (a few ms), so that nothing is ever stale.

    Caching by the function's identity would freeze any global or attribute
    the loss reads at its first trace, and then pass a gradient that is wrong
    for today's value. The jaxpr and its constants say exactly what is
    computed, so they key the compiled references. Misuse is a `ValueError`
    naming `loss_fn`, not an error deep inside JAX.
    """
    params = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, np.float64) for s in shapes])
    structs = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in args]
    try:
        with jax.enable_x64(True):
            # A fresh wrapper each time: JAX caches traces by function identity.
            closed = jax.make_jaxpr(lambda *a: loss_fn(*a))(params, *structs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise ValueError(
            f"`loss_fn(params, *args)` failed under JAX tracing: {type(exc).__name__}: {exc}. "
            "Write it with jax.numpy, and bind non-array options with functools.partial."
        ) from exc
    outs = closed.out_avals
    shape = getattr(outs[0], "shape", None) if len(outs) == 1 else None
    if shape is None or math.prod(shape) != 1:
        got = f"shape {shape}" if shape is not None else f"{len(outs)} outputs"
        raise ValueError(f"`loss_fn` must return a scalar, got {got}; reduce it with a sum or mean.")
    consts = tuple(
        (np.shape(c), str(np.asarray(c).dtype), hashlib.blake2b(np.asarray(c).tobytes(), digest_size=16).digest())
        for c in closed.consts
    )
    return _TracedLoss(closed, shapes, (str(closed.jaxpr), consts))


def _flat_loss(traced: _TracedLoss) -> Callable[..., jax.Array]:
    """The traced loss as a function of one flat float64 vector and the args."""
    shapes = traced.shapes
    offsets = np.cumsum([0, *(math.prod(s) for s in shapes)])
    evaluate = jcore.jaxpr_as_fun(traced.closed)

    def flat_loss(theta: jax.Array, args: tuple[jax.Array, ...]) -> jax.Array:
        parts = [theta[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        return jnp.asarray(evaluate(*parts, *args)[0]).reshape(())

    return flat_loss


#: Compiled references kept (one per traced loss). Each holds an XLA
#: executable; the bound keeps memory flat when losses keep changing.
COMPILED_CACHE_SIZE = 128
_COMPILED: collections.OrderedDict[Hashable, Callable[..., tuple[jax.Array, ...]]] = collections.OrderedDict()


def _compiled(traced: _TracedLoss, directions: int | None, samples: int) -> Callable[..., tuple[jax.Array, ...]]:
    """The jitted references for `traced`, from a least-recently-used cache."""
    # Large models (directional mode) run long enough to repay XLA's full optimisation.
    large = directions is not None
    return cached(
        _COMPILED,
        (traced.key, directions, samples),
        lambda: jax.jit(
            reference_function(traced, directions=directions, samples=samples, sequential=large),
            compiler_options=None if large else COMPILER_OPTIONS,
        ),
    )


V = TypeVar("V")


def cached(cache: collections.OrderedDict[Hashable, V], key: Hashable, build: Callable[[], V]) -> V:
    """``cache[key]``, built on a miss; at most `COMPILED_CACHE_SIZE` entries, least recently used evicted."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = build()
    if len(cache) > COMPILED_CACHE_SIZE:
        cache.popitem(last=False)
    return value


def reference_function(
    traced: _TracedLoss,
    *,
    directions: int | None = None,
    samples: int = _tolerance.NOISE_SAMPLES,
    sequential: bool = False,
) -> Callable[..., tuple[jax.Array, ...]]:
    """``(theta, args, seed, unit_roundoff, closed, step_scale) -> references`` for one problem, traceable.

    With `directions` None the finite differences run along every coordinate
    and `closed` is unused; with an int D they run along D random +-1
    directions drawn from `seed`, and the result carries the closed form's
    and autodiff's derivatives along them. `samples` Monte Carlo re-runs
    measure the noise; `step_scale` scales every finite-difference step;
    `sequential` evaluates the finite differences' points one at a time.
    Turn the output into `References` with `assemble`; jit it, or vmap it.
    """
    flat_loss = _flat_loss(traced)
    value_and_grad = jax.value_and_grad(flat_loss)

    def references(
        theta: jax.Array,
        args: tuple[jax.Array, ...],
        seed: jax.Array,
        unit_roundoff: jax.Array,
        closed: jax.Array,
        step_scale: jax.Array,
    ) -> tuple[jax.Array, ...]:
        f0, g = value_and_grad(theta, args)
        streams = seed * _tolerance.NOISE_SAMPLES + jnp.arange(samples, dtype=jnp.uint32)
        # One MCA run gives both: the gradient's noise at the closed form's
        # precision, and the loss's noise at float64 for the finite differences.
        # It runs at no finer than MCA_ROUNDOFF and is scaled back linearly.
        mca_u = jnp.maximum(unit_roundoff, _noise.MCA_ROUNDOFF)
        f_samples, g_samples = jax.vmap(_noise.perturbed(value_and_grad, mca_u), (0, None, None))(streams, theta, args)
        sigma_f = jnp.max(jnp.abs(f_samples - f0)) * (2.0**-53 / mca_u)
        noise = _noise.spread(g_samples, g) * (unit_roundoff / mca_u) * _tolerance.samples_safety(samples)
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


# --- verdict ------------------------------------------------------------------


def _judge(
    names: list[str],
    leaves: list[np.ndarray],
    closed: dict[str, np.ndarray],
    problems: dict[str, str],
    refs: References,
    precision: np.dtype,
    cf_flat: np.ndarray,
) -> Report:
    tol_flat = tolerances(refs.autodiff, refs.noise, precision)
    offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
    reference = {
        n: (refs.autodiff[a:b].reshape(leaf.shape), tol_flat[a:b].reshape(leaf.shape))
        for n, leaf, a, b in zip(names, leaves, offsets[:-1], offsets[1:])
    }
    # One comparison over the flat vector (`cf_flat` has zeros for the closed
    # form's missing, misshapen or non-finite entries: those are reported apart).
    c_flat = compare(
        cf_flat, refs.autodiff, tol_flat, refs.finite_diff, refs.fd_error, refs.kink, elementwise_fd=refs.along is None
    )
    results = []
    for name, leaf, a, b in zip(names, leaves, offsets[:-1], offsets[1:]):
        section = slice(a, b)
        ad, tol = reference[name]
        fd = refs.finite_diff[section].reshape(leaf.shape)
        fd_err = refs.fd_error[section].reshape(leaf.shape)
        kink = refs.kink[section].reshape(leaf.shape)
        if name in problems:
            diagnosis = _diagnose.diagnose(name, closed.get(name), ad, tol, reference)
            results.append(ParamResult(name, leaf.shape, "error", message=problems[name], diagnosis=diagnosis))
            continue
        c = Comparison(*(v[section].reshape(leaf.shape) for v in c_flat))
        results.append(
            _judge_param(name, cf_flat[section].reshape(leaf.shape), ad, tol, fd, fd_err, kink, reference, c)
        )
    notes = (
        [] if precision == np.float64 else [f"the closed form returned {precision}; judged at {precision} precision"]
    )
    if refs.along is not None:
        results, note = _judge_along(results, refs.along, tol_flat)
        notes.append(note)
    return Report(tuple(results), precision=str(precision), notes=tuple(notes))


def along_doubt(along: Along, tol: np.ndarray) -> np.ndarray:
    """Directions (..., D) along which autodiff and the finite differences disagree, or that cross a kink."""
    allowed = _tolerance.FD_SAFETY * along.fd_error + tol.sum(axis=-1, keepdims=True)
    doubt: np.ndarray = (np.abs(along.autodiff - along.finite_diff) > allowed) | along.kink | np.isnan(allowed)
    return doubt


def _judge_along(results: list[ParamResult], along: Along, tol: np.ndarray) -> tuple[list[ParamResult], str]:
    """Directional finite differences: they confirm autodiff, or put the verdicts in doubt.

    Along a +-1 direction d, a closed form within ``tol`` of autodiff
    elementwise is within ``sum(tol)`` of it along d, so the allowance is
    ``FD_SAFETY * fd_error + sum(tol)``.
    """
    allowed = _tolerance.FD_SAFETY * along.fd_error + tol.sum(axis=-1, keepdims=True)
    gap = np.abs(along.autodiff - along.finite_diff)
    doubt = along_doubt(along, tol)
    used = float((gap / allowed).max(initial=0.0))
    n = len(along.autodiff)
    if not doubt.any():
        return results, (
            f"finite differences along {n} random ±1 directions (the model has {tol.size} parameters, above "
            f"{MAX_COORDINATES}): autodiff agrees with them, using {used:.2g} of the allowance"
        )
    i = int(np.argmax(doubt))
    if along.kink[i]:
        message = (
            f"a non-differentiable point along random direction {i}: the one-sided slopes differ by a jump that "
            "does not shrink with the step, so the reference is in doubt and the closed form is not blamed"
        )
    else:
        message = (
            f"autodiff ({along.autodiff[i]:.6e}) and finite differences ({along.finite_diff[i]:.6e} ± "
            f"{along.fd_error[i]:.1e}) disagree along random direction {i}: the reference is in doubt, so the "
            "closed form is not blamed"
        )
    # The finite differences still blame the closed form where it is farther
    # from them than autodiff is, by more than the allowance, along some
    # direction: then its elementwise mismatches stand. Passes become doubts.
    confirmed = bool((np.abs(along.closed - along.finite_diff) > gap + allowed).any())
    doubted = [
        r
        if r.status == "error" or (r.status == "mismatch" and confirmed)
        else dataclasses.replace(r, status="doubt", message=message)
        for r in results
    ]
    return doubted, f"finite differences along {n} random ±1 directions (the model has {tol.size} parameters)"


def _judge_param(
    name: str,
    cf: np.ndarray,
    ad: np.ndarray,
    tol: np.ndarray,
    fd: np.ndarray,
    fd_err: np.ndarray,
    kink: np.ndarray,
    reference: dict[str, tuple[np.ndarray, np.ndarray]],
    c: Comparison,
) -> ParamResult:
    err_ad, err_fd, ratio_ad, ratio_fd, allowed, doubt = c.err_ad, c.err_fd, c.ratio_ad, c.ratio_fd, c.allowed, c.doubt
    if c.blamed.any():
        status = "mismatch"
    elif doubt.any():
        status = "doubt"
    else:
        status = "pass"
    flat_index = int(np.argmax(np.fmax(ratio_ad, ratio_fd))) if cf.size else 0
    index = tuple(int(i) for i in np.unravel_index(flat_index, cf.shape))
    message = None
    if status == "doubt":
        where = tuple(int(i) for i in np.argwhere(doubt)[0])
        if np.isnan(fd[where]) or np.isnan(fd_err[where]):
            message = (
                f"the loss is not finite at the finite-difference points around index {where}, even with the "
                "finest step: the reference is in doubt, so the closed form is not blamed"
            )
        elif kink[where]:
            message = (
                f"a non-differentiable point at index {where}: the one-sided slopes differ by a jump that "
                f"does not shrink with the step, so the reference is in doubt and the closed form is not blamed"
            )
        else:
            message = (
                f"autodiff ({ad[where]:.6e}) and finite differences ({fd[where]:.6e} ± {fd_err[where]:.1e}) "
                f"disagree at index {where}: the reference is in doubt (a non-differentiable point?), "
                f"so the closed form is not blamed"
            )
    diagnosis = _diagnose.diagnose(name, cf, ad, tol, reference) if status == "mismatch" else None
    return ParamResult(
        name,
        cf.shape,
        status,  # type: ignore[arg-type]
        index=index,
        closed_form=float(cf[index]),
        autodiff=float(ad[index]),
        finite_diff=float(fd[index]),
        fd_error=float(fd_err[index]),
        abs_error=float(err_ad[index]),
        rel_error=_relative(err_ad[index], ad[index]),
        tolerance=float(tol[index]),
        max_abs_err_autodiff=float(err_ad.max(initial=0.0)),
        max_rel_err_autodiff=_resolved_relative(err_ad, ad, tol),
        max_abs_err_fd=float(err_fd.max(initial=0.0)),
        max_rel_err_fd=_resolved_relative(err_fd, fd, allowed),
        tolerance_used=float(np.fmax(ratio_ad, ratio_fd).max(initial=0.0)),
        message=message,
        diagnosis=diagnosis,
    )


def tolerances(autodiff: np.ndarray, noise: np.ndarray, precision: np.dtype) -> np.ndarray:
    """The tolerance of every element of flat gradients (..., P): the scale is each problem's own."""
    scale = np.maximum(np.abs(autodiff).max(axis=-1, keepdims=True), noise.max(axis=-1, keepdims=True))
    return _tolerance.tolerance(noise, scale, float(np.finfo(precision).eps))


class Comparison(NamedTuple):
    """The closed form against both references, elementwise (any shape, e.g. (P,) or (B, P))."""

    err_ad: np.ndarray  # |cf - ad|
    err_fd: np.ndarray  # |cf - fd|
    ratio_ad: np.ndarray  # err_ad / tol: above 1 breaks the tolerance
    ratio_fd: np.ndarray  # err_fd / allowed
    allowed: np.ndarray  # FD_SAFETY * fd_err + tol: how far a finite difference may be
    doubt: np.ndarray  # the references disagree with each other, or a kink: nothing is blamed
    blamed: np.ndarray  # the closed form breaks a tolerance where the references agree


def compare(
    cf: np.ndarray,
    ad: np.ndarray,
    tol: np.ndarray,
    fd: np.ndarray,
    fd_err: np.ndarray,
    kink: np.ndarray,
    *,
    elementwise_fd: bool = True,
) -> Comparison:
    """The verdict's arithmetic, shared by `check_gradients` and `check_batch`.

    With `elementwise_fd` false the finite differences were taken along
    directions (NaN here by design); otherwise a NaN finite difference (the
    loss is not finite at theta +- h) puts its element in doubt.
    """
    err_ad = np.abs(cf - ad)
    err_fd = np.abs(cf - fd)
    ratio_ad = err_ad / np.maximum(tol, np.finfo(float).tiny)
    allowed = _tolerance.FD_SAFETY * fd_err + tol
    ratio_fd = err_fd / np.maximum(allowed, np.finfo(float).tiny)
    # A tolerance that cannot be measured (NaN noise) blames nothing either.
    # Elementwise NaN finite differences mean they were taken along directions.
    doubt = (np.abs(ad - fd) > allowed) | kink | np.isnan(tol)
    if elementwise_fd:
        doubt |= np.isnan(fd) | np.isnan(fd_err)
    blamed = ((ratio_ad > 1.0) | (ratio_fd > 1.0)) & ~doubt
    return Comparison(err_ad, err_fd, ratio_ad, ratio_fd, allowed, doubt, blamed)


def _resolved_relative(error: np.ndarray, reference: np.ndarray, tol: np.ndarray) -> float:
    """Largest elementwise relative error among elements the reference resolves (|ref| > tol)."""
    resolved = np.abs(reference) > tol
    return float((error[resolved] / np.abs(reference[resolved])).max(initial=0.0))


def _relative(error: float, reference: float) -> float:
    if error == 0.0:
        return 0.0
    return float(error / abs(reference)) if reference != 0.0 else math.inf


def _describe(exc: BaseException) -> str:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(frames[-3:]).rstrip()
