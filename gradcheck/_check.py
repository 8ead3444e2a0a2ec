"""`check_gradients`: a closed form against autodiff and finite differences."""

from __future__ import annotations

import dataclasses
import functools
import math
import traceback
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _diagnose, _finite_diff, _noise, _taylor, _tolerance, _validate
from gradcheck._report import GradientMismatch, ParamResult, ReferencesDisagree, Report

#: Above this many parameters the references are still computed, but the
#: finite differences would need 2 * LEVELS * P loss evaluations; refuse
#: rather than silently take minutes.
MAX_COORDINATES = 4096


#: The references are compiled once per shape, and tests and the CLI meet many
#: small shapes: XLA's cheapest backend optimisation halves compile time
#: (about 0.9 s to 0.5 s) for a 1.3x slower run (0.4 to 0.5 ms).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


class References(NamedTuple):
    """The float64 references for one problem, as flat NumPy vectors of length P."""

    autodiff: np.ndarray  # (P,)  jax.grad in float64
    noise: np.ndarray  # (P,)  MCA spread of the autodiff gradient
    finite_diff: np.ndarray  # (P,)  Richardson-extrapolated central differences
    fd_error: np.ndarray  # (P,)  their error bound


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
    names, leaves, treedef = _flatten_params(params)
    args = tuple(_validate.real_finite(f"args[{i}]", a).astype(np.float64) for i, a in enumerate(args))
    try:
        returned = grad_fn(params, *args)
    except Exception as exc:  # noqa: BLE001 - the user's code: any failure is reported, not raised
        message = f"`grad_fn` raised {_describe(exc)}"
        return Report(tuple(ParamResult(n, leaf.shape, "error", message=message) for n, leaf in zip(names, leaves)))
    closed, problems = _match_structure(names, leaves, returned)
    precision = _tolerance.precision_of([c.dtype for c in closed.values()])
    eps = float(np.finfo(precision).eps)
    with jax.enable_x64(True):
        refs = _references(loss_fn, leaves, treedef, args, eps / 2, seed)
    report = _judge(names, leaves, closed, problems, refs, precision)
    if report.verdict == "mismatch" and not problems:
        cf = np.concatenate([closed[n].astype(np.float64).ravel() for n in names])
        flat = _flat_loss(_LossKey.of(loss_fn), treedef, tuple(leaf.shape for leaf in leaves))
        theta = np.concatenate([leaf.ravel() for leaf in leaves])
        direction = _taylor.along_error(cf, refs.autodiff, np.random.default_rng(seed))
        observed = _taylor.rate(flat, args, theta, cf, direction)
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


def _flatten_params(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
    with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not with_path:
        raise ValueError(f"`params` holds no arrays (got {params!r}); pass a NamedTuple, dict or tuple of arrays.")
    names = [jax.tree_util.keystr(path, simple=True, separator=".") or "params" for path, _ in with_path]
    leaves = [
        _validate.real_finite(f"params.{name}", leaf).astype(np.float64) for name, (_, leaf) in zip(names, with_path)
    ]
    return names, leaves, treedef


def _match_structure(
    names: list[str], leaves: list[np.ndarray], returned: Any
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Pair the returned gradient with the parameters by name; collect problems."""
    try:
        with_path, _ = jax.tree_util.tree_flatten_with_path(returned)
    except Exception as exc:  # noqa: BLE001 - any odd object is a user error here
        with_path = []
        structure_error = f"returned {type(returned).__name__}, which is not a pytree ({exc})"
    else:
        structure_error = f"returned {type(returned).__name__} with no entry for this parameter"
    got = {jax.tree_util.keystr(path, simple=True, separator=".") or "params": leaf for path, leaf in with_path}
    if len(names) == len(with_path) and set(got) != set(names):
        # Same number of leaves, other names (e.g. a plain tuple): pair by position.
        got = dict(zip(names, (leaf for _, leaf in with_path)))
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


def _references(
    loss_fn: Callable[..., Any],
    leaves: list[np.ndarray],
    treedef: Any,
    args: tuple[np.ndarray, ...],
    unit_roundoff: float,
    seed: int,
) -> References:
    theta = np.concatenate([leaf.ravel() for leaf in leaves])
    if theta.size > MAX_COORDINATES:
        raise ValueError(
            f"`params` has {theta.size} entries; coordinate-wise finite differences are limited to "
            f"{MAX_COORDINATES}. Check a smaller model."
        )
    shapes = tuple(leaf.shape for leaf in leaves)
    key = _LossKey.of(loss_fn)
    _check_loss(key, treedef, shapes, tuple((a.shape, a.dtype) for a in args))
    compiled = _compiled(key, treedef, shapes)
    out = compiled(jnp.asarray(theta), tuple(jnp.asarray(a) for a in args), jnp.uint32(seed), unit_roundoff)
    return References(*(np.asarray(o) for o in out))


@functools.lru_cache(maxsize=1024)
def _check_loss(loss: _LossKey, treedef: Any, shapes: tuple[tuple[int, ...], ...], arg_types: tuple[Any, ...]) -> None:
    """Misuse of `loss_fn` is a `ValueError` naming it, not an error deep inside JAX.

    Cached: a loss that traced cleanly for these shapes will again.
    """
    params = jax.tree_util.tree_unflatten(treedef, [jax.ShapeDtypeStruct(s, np.float64) for s in shapes])
    args = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in arg_types]
    try:
        out = jax.eval_shape(loss.fn, params, *args)
    except Exception as exc:  # the user's code: any failure is misuse, told as such
        raise ValueError(
            f"`loss_fn(params, *args)` failed under JAX tracing: {type(exc).__name__}: {exc}. "
            "Write it with jax.numpy, and bind non-array options with functools.partial."
        ) from exc
    shape = getattr(out, "shape", None)
    if shape is None or math.prod(shape) != 1:
        got = f"shape {shape}" if shape is not None else repr(out)
        raise ValueError(f"`loss_fn` must return a scalar, got {got}; reduce it with a sum or mean.")


class _LossKey:
    """Hashable identity of a loss function, so that equal partials share a compilation."""

    def __init__(self, fn: Callable[..., Any], key: Hashable):
        self.fn, self.key = fn, key

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> _LossKey:
        key: Hashable = id(fn)
        if isinstance(fn, functools.partial):
            candidate = (fn.func, fn.args, tuple(sorted(fn.keywords.items())))
            try:
                hash(candidate)
                key = candidate
            except TypeError:
                pass
        else:
            key = fn
        return cls(fn, key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LossKey) and self.key == other.key


def _flat_loss(loss: _LossKey, treedef: Any, shapes: tuple[tuple[int, ...], ...]) -> Callable[..., jax.Array]:
    """``loss(params, *args)`` as a function of one flat float64 vector."""
    sizes = [math.prod(s) for s in shapes]
    offsets = np.cumsum([0, *sizes])

    def unflatten(theta: jax.Array) -> Any:
        parts = [theta[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        return jax.tree_util.tree_unflatten(treedef, parts)

    def flat_loss(theta: jax.Array, args: tuple[jax.Array, ...]) -> jax.Array:
        return jnp.asarray(loss.fn(unflatten(theta), *args)).reshape(())

    return flat_loss


#: Compiled references kept (one per loss and shape). Each holds an XLA
#: executable; a bound keeps memory flat when a caller passes a fresh lambda
#: (which can never be reused) on every call.
COMPILED_CACHE_SIZE = 128


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compiled(
    loss: _LossKey, treedef: Any, shapes: tuple[tuple[int, ...], ...]
) -> Callable[..., tuple[jax.Array, ...]]:
    flat_loss = _flat_loss(loss, treedef, shapes)
    value_and_grad = jax.value_and_grad(flat_loss)

    @functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
    def references(
        theta: jax.Array, args: tuple[jax.Array, ...], seed: jax.Array, unit_roundoff: jax.Array
    ) -> tuple[jax.Array, ...]:
        f0, g = value_and_grad(theta, args)
        streams = seed * _tolerance.NOISE_SAMPLES + jnp.arange(_tolerance.NOISE_SAMPLES, dtype=jnp.uint32)
        # One MCA run gives both: the gradient's noise at the closed form's
        # precision, and the loss's noise at float64 for the finite differences.
        f_samples, g_samples = jax.vmap(_noise.perturbed(value_and_grad, unit_roundoff), (0, None, None))(
            streams, theta, args
        )
        sigma_f = jnp.max(jnp.abs(f_samples - f0)) * (2.0**-53 / unit_roundoff)
        steps = _finite_diff.FD_STEP * jnp.maximum(1.0, jnp.abs(theta))
        fd = _finite_diff.directional(
            lambda t: flat_loss(t, args), theta, jnp.eye(theta.shape[0], dtype=theta.dtype), steps, sigma_f
        )
        return g, _noise.spread(g_samples, g), fd.value, fd.error

    return references


# --- verdict ------------------------------------------------------------------


def _judge(
    names: list[str],
    leaves: list[np.ndarray],
    closed: dict[str, np.ndarray],
    problems: dict[str, str],
    refs: References,
    precision: np.dtype,
) -> Report:
    eps = float(np.finfo(precision).eps)
    scale = float(max(np.max(np.abs(refs.autodiff), initial=0.0), np.max(refs.noise, initial=0.0)))
    tol_flat = _tolerance.tolerance(refs.noise, scale, eps, float(np.finfo(precision).tiny))
    offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
    reference = {
        n: (refs.autodiff[a:b].reshape(leaf.shape), tol_flat[a:b].reshape(leaf.shape))
        for n, leaf, a, b in zip(names, leaves, offsets[:-1], offsets[1:])
    }
    results = []
    for name, leaf, a, b in zip(names, leaves, offsets[:-1], offsets[1:]):
        section = slice(a, b)
        ad, tol = reference[name]
        fd = refs.finite_diff[section].reshape(leaf.shape)
        fd_err = _tolerance.FD_SAFETY * refs.fd_error[section].reshape(leaf.shape)
        if name in problems:
            diagnosis = _diagnose.diagnose(name, closed.get(name), ad, tol, reference)
            results.append(ParamResult(name, leaf.shape, "error", message=problems[name], diagnosis=diagnosis))
            continue
        results.append(_judge_param(name, closed[name].astype(np.float64), ad, tol, fd, fd_err, reference))
    note = (
        () if precision == np.float64 else (f"the closed form returned {precision}; judged at {precision} precision",)
    )
    return Report(tuple(results), precision=str(precision), notes=note)


def _judge_param(
    name: str,
    cf: np.ndarray,
    ad: np.ndarray,
    tol: np.ndarray,
    fd: np.ndarray,
    fd_err: np.ndarray,
    reference: dict[str, tuple[np.ndarray, np.ndarray]],
) -> ParamResult:
    err_ad = np.abs(cf - ad)
    err_fd = np.abs(cf - fd)
    refs_gap = np.abs(ad - fd)
    ratio_ad = err_ad / np.maximum(tol, np.finfo(float).tiny)
    ratio_fd = err_fd / np.maximum(fd_err + tol, np.finfo(float).tiny)
    bad_ad, bad_fd = ratio_ad > 1.0, ratio_fd > 1.0
    doubt = refs_gap > fd_err + tol
    if (bad_ad & ~doubt).any() or (bad_fd & ~doubt).any():
        status = "mismatch"
    elif doubt.any():
        status = "doubt"
    else:
        status = "pass"
    flat_index = int(np.argmax(np.maximum(ratio_ad, ratio_fd))) if cf.size else 0
    index = tuple(int(i) for i in np.unravel_index(flat_index, cf.shape))
    message = None
    if status == "doubt":
        where = tuple(int(i) for i in np.argwhere(doubt)[0])
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
        max_rel_err_fd=_resolved_relative(err_fd, fd, fd_err + tol),
        tolerance_used=float(np.maximum(ratio_ad, ratio_fd).max(initial=0.0)),
        message=message,
        diagnosis=diagnosis,
    )


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
