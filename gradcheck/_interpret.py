"""Evaluate JAX's own jaxprs with NumPy: the references without an XLA compile.

A check at a shape never seen before would otherwise pay 0.1-0.7 s to
compile its references, for a run that takes a millisecond. The jaxpr that
JAX traces (of the loss, of its gradient, of the loss vmapped over the
finite-difference points) says exactly what to compute; here each of its
primitives is carried out by the NumPy function with the same semantics, one
equation after another. The derivatives are still JAX's: only the
arithmetic of the traced program runs in NumPy.

- Shapes may be symbolic (``jax.export.symbolic_shape``): the jaxpr is traced
  once for a pattern of shapes, and each call resolves the dimension
  variables from `dims`.
- A primitive without a rule raises `Unsupported`; the caller compiles the
  references with XLA instead. Never a wrong answer, never a guess.
- With a `Noise`, every rounded result is perturbed as in `_noise` (Monte
  Carlo arithmetic): the same exact primitives, the same bound for sums.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.extend.core as jcore
import numpy as np

from gradcheck import _noise

#: NumPy's functions are typed loosely; results are arrays (or NumPy scalars).
Array = Any


class Unsupported(Exception):
    """A primitive (or a form of one) that has no NumPy rule here."""


class Noise:
    """Monte Carlo arithmetic: each rounded result ``r`` becomes ``r (1 + u xi)``, ``xi ~ U(-1, 1)``."""

    #: Uniforms drawn at a time: one draw serves many small results.
    CHUNK = 4096

    def __init__(self, rng: np.random.Generator, unit_roundoff: float):
        self.rng, self.u = rng, unit_roundoff
        self.buffer, self.used = np.empty(0), 0

    def _xi(self, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        if self.used + n > self.buffer.size:
            self.buffer, self.used = self.rng.uniform(-1.0, 1.0, max(n, self.CHUNK)), 0
        xi = self.buffer[self.used : self.used + n].reshape(shape)
        self.used += n
        return xi

    def relative(self, value: np.ndarray) -> Array:
        if value.dtype.kind != "f":
            return value
        return (value * (1.0 + self.u * self._xi(value.shape))).astype(value.dtype, copy=False)

    def absolute(self, value: np.ndarray, bound: np.ndarray) -> Array:
        if value.dtype.kind != "f":
            return value
        return (value + self.u * self._xi(value.shape) * bound).astype(value.dtype, copy=False)


def evaluate(
    closed: Any, args: Sequence[Any], dims: Mapping[str, int] | None = None, noise: Noise | None = None
) -> list[np.ndarray]:
    """Run the ClosedJaxpr `closed` on NumPy `args`; `dims` gives each symbolic dimension its size."""
    env = dict(dims or {})
    args = [np.asarray(a) for a in args]
    if noise is not None:  # the inputs stand for values rounded to the working precision
        args = [noise.relative(a) for a in args]
    with np.errstate(all="ignore"):  # overflow to inf, 0/0 to NaN: as XLA does, reported downstream
        return _run(closed.jaxpr, [np.asarray(c) for c in closed.consts], args, env, noise)


def _run(jaxpr: Any, consts: Sequence[Any], args: Sequence[Any], dims: dict[str, int], noise: Noise | None) -> list:
    values: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return np.asarray(v.val) if isinstance(v, jcore.Literal) else values[v]

    values.update(zip(jaxpr.constvars, consts))
    values.update(zip(jaxpr.invars, args))
    sizes = tuple(sorted(dims.items()))
    for eqn, name, sub, symbolic in _plan(jaxpr):
        invals = [read(v) for v in eqn.invars]
        if sub is not None:
            outvals = _run(sub[0], sub[1], invals, dims, noise)
        elif name == "cond":
            index = int(np.clip(invals[0], 0, len(eqn.params["branches"]) - 1))
            branch = eqn.params["branches"][index]
            outvals = _run(branch.jaxpr, [np.asarray(c) for c in branch.consts], invals[1:], dims, noise)
        else:
            rule = RULES.get(name)
            if rule is None:
                raise Unsupported(name)
            params = _resolved(eqn, symbolic, sizes) if symbolic else eqn.params
            result = rule(*invals, **params)
            outvals = [np.asarray(r) for r in result] if eqn.primitive.multiple_results else [np.asarray(result)]
            if noise is not None and name not in _noise.EXACT:
                if name in _TERMS:
                    # A sum of n terms errs by up to (n - 1) u sum|x_i| (Higham, Thm 4.4): `_noise` explains.
                    terms, magnitude = _TERMS[name](invals, params)
                    outvals = [noise.absolute(outvals[0], terms * magnitude)]
                else:
                    outvals = [noise.relative(v) for v in outvals]
        if len(outvals) != len(eqn.outvars):
            raise Unsupported(f"{name} returned {len(outvals)} values")
        values.update(zip(eqn.outvars, outvals))
    return [read(v) for v in jaxpr.outvars]


@functools.lru_cache(maxsize=1024)
def _plan(jaxpr: Any) -> list[tuple[Any, str, tuple[Any, list[np.ndarray]] | None, tuple[str, ...]]]:
    """Each equation: its primitive's name, the jaxpr it calls, and its parameters that hold symbolic sizes."""
    plan = []
    for eqn in jaxpr.eqns:
        sub = _subjaxpr(eqn)
        called = (sub[0], [np.asarray(c) for c in sub[1]]) if sub is not None else None
        symbolic = tuple(k for k, v in eqn.params.items() if _has_symbols(v))
        plan.append((eqn, eqn.primitive.name, called, symbolic))
    return plan


def _has_symbols(value: Any) -> bool:
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return any(_has_symbols(v) for v in value)
    if isinstance(value, dict):
        return any(_has_symbols(v) for v in value.values())
    return hasattr(value, "_evaluate")


@functools.lru_cache(maxsize=8192)
def _resolved(eqn: Any, symbolic: tuple[str, ...], sizes: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    """The parameters of `eqn` with every symbolic size given its value."""
    return {**eqn.params, **{k: _resolve(eqn.params[k], sizes) for k in symbolic}}


def _resolve(value: Any, sizes: tuple[tuple[str, int], ...]) -> Any:
    """`value` with every symbolic dimension replaced by its size."""
    if isinstance(value, (tuple, list)):
        return type(value)(_resolve(v, sizes) for v in value) if not hasattr(value, "_fields") else value
    if isinstance(value, dict):
        return {k: _resolve(v, sizes) for k, v in value.items()}
    if hasattr(value, "_evaluate"):
        return _dim(value, sizes)
    return value


@functools.lru_cache(maxsize=8192)
def _dim(expr: Any, sizes: tuple[tuple[str, int], ...]) -> int:
    """The value of a symbolic size (JAX's evaluation is slow; the same few come back often)."""
    return int(expr._evaluate(dict(sizes)))


def _subjaxpr(eqn: Any) -> tuple[Any, Sequence[Any]] | None:
    """The jaxpr that a call-like primitive (jit, custom_jvp_call, ...) runs, and its constants."""
    param = _CALLS.get(eqn.primitive.name)
    if param is None or param not in eqn.params:
        return None
    sub = eqn.params[param]
    return (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())


_CALLS = {
    **_noise.CALLS,
    "core_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
}


# --- rules: one NumPy function per primitive, with the primitive's parameters --


def _unary(f: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda x, **_: f(x).astype(x.dtype, copy=False) if x.dtype != bool else f(x)


def _binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def rule(x: np.ndarray, y: np.ndarray, **_: Any) -> Array:
        out = f(x, y)
        return out.astype(np.result_type(x, y), copy=False) if out.dtype != bool else out

    return rule


def _compare(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda x, y, **_: f(x, y)


def _logistic(x: np.ndarray) -> Array:
    # XLA's form, 1 / (1 + exp(-x)): exp overflows to inf for very negative x, giving 0.
    return 1.0 / (1.0 + np.exp(-x))


def _div(x: np.ndarray, y: np.ndarray) -> Array:
    if np.issubdtype(np.result_type(x, y), np.integer):  # C-style division rounds toward zero
        return np.trunc(x / y).astype(np.result_type(x, y))
    return np.divide(x, y)


def _integer_pow(x: np.ndarray, *, y: int, **_: Any) -> Array:
    return np.power(x, y).astype(x.dtype, copy=False)


def _select_n(which: np.ndarray, *cases: np.ndarray, **_: Any) -> Array:
    if len(cases) == 1:
        return cases[0]
    if which.dtype == bool:
        return np.where(which, cases[1], cases[0])
    return np.choose(which.astype(np.int64), np.broadcast_arrays(*cases))


def _convert(x: np.ndarray, *, new_dtype: Any, **_: Any) -> Array:
    return x.astype(np.dtype(new_dtype))


def _broadcast_in_dim(
    x: np.ndarray, *, shape: tuple[int, ...], broadcast_dimensions: tuple[int, ...], **_: Any
) -> Array:
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape)


def _reshape(x: np.ndarray, *, new_sizes: tuple[int, ...], dimensions: Any, **_: Any) -> Array:
    if dimensions is not None:
        x = np.transpose(x, dimensions)
    return x.reshape(new_sizes)


def _reduce(f: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda x, *, axes, **_: np.asarray(f(x, axis=tuple(axes))).astype(x.dtype, copy=False)


def _arg(f: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda x, *, axes, index_dtype, **_: f(x, axis=axes[0]).astype(np.dtype(index_dtype))


def _dot_general(
    lhs: np.ndarray, rhs: np.ndarray, *, dimension_numbers: Any, preferred_element_type: Any, **_: Any
) -> Array:
    (lc, rc), (lb, rb) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    lhs_sub = [next(letters) for _ in range(lhs.ndim)]
    rhs_sub = [next(letters) for _ in range(rhs.ndim)]
    for a, b in (*zip(lc, rc), *zip(lb, rb)):
        rhs_sub[b] = lhs_sub[a]
    batch = [lhs_sub[a] for a in lb]
    free_l = [s for i, s in enumerate(lhs_sub) if i not in lc and i not in lb]
    free_r = [s for i, s in enumerate(rhs_sub) if i not in rc and i not in rb]
    spec = f"{''.join(lhs_sub)},{''.join(rhs_sub)}->{''.join(batch + free_l + free_r)}"
    dtype = np.dtype(preferred_element_type) if preferred_element_type is not None else np.result_type(lhs, rhs)
    return np.einsum(spec, lhs, rhs).astype(dtype, copy=False)


def _slice(x: np.ndarray, *, start_indices: Any, limit_indices: Any, strides: Any, **_: Any) -> Array:
    steps = strides or (1,) * x.ndim
    return x[tuple(slice(a, b, s) for a, b, s in zip(start_indices, limit_indices, steps))]


def _starts(x: np.ndarray, starts: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[slice, ...]:
    # XLA clamps dynamic starts so that the window fits.
    return tuple(
        slice(s, s + n) for s, n in ((int(np.clip(int(s), 0, dim - n)), n) for s, n, dim in zip(starts, sizes, x.shape))
    )


def _dynamic_slice(x: np.ndarray, *starts: np.ndarray, slice_sizes: tuple[int, ...], **_: Any) -> Array:
    return x[_starts(x, starts, slice_sizes)]


def _dynamic_update_slice(x: np.ndarray, update: np.ndarray, *starts: np.ndarray, **_: Any) -> Array:
    out = x.copy()
    out[_starts(x, starts, update.shape)] = update
    return out


def _pad(x: np.ndarray, value: np.ndarray, *, padding_config: Any, **_: Any) -> Array:
    if any(interior for _, _, interior in padding_config):
        spread = [n + (n - 1) * i if n else 0 for n, (_, _, i) in zip(x.shape, padding_config)]
        inner = np.full(spread, value, dtype=x.dtype)
        inner[tuple(slice(None, None, i + 1) for _, _, i in padding_config)] = x
        x = inner
    lo_hi = [(max(lo, 0), max(hi, 0)) for lo, hi, _ in padding_config]
    out = np.pad(x, lo_hi, constant_values=value)
    crop = tuple(slice(-min(lo, 0), out.shape[d] + min(hi, 0)) for d, (lo, hi, _) in enumerate(padding_config))
    return out[crop]


def _iota(*, dtype: Any, shape: tuple[int, ...], dimension: int, **_: Any) -> Array:
    expanded = [1] * len(shape)
    expanded[dimension] = shape[dimension]
    return np.broadcast_to(np.arange(shape[dimension], dtype=np.dtype(dtype)).reshape(expanded), shape)


def _split(x: np.ndarray, *, sizes: Sequence[int], axis: int, **_: Any) -> list[np.ndarray]:
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def _cumulative(f: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def rule(x: np.ndarray, *, axis: int, reverse: bool, **_: Any) -> Array:
        if reverse:
            return np.flip(f(np.flip(x, axis), axis=axis), axis).astype(x.dtype, copy=False)
        return f(x, axis=axis).astype(x.dtype, copy=False)

    return rule


def _window_start(
    row: np.ndarray, index_map: Sequence[int], position: tuple[int, ...], batching: Sequence[tuple[int, int]], rank: int
) -> list[int]:
    """Where one window starts: from the index `row`, and for batching dimensions from the row's `position`."""
    start = [0] * rank
    for k, d in enumerate(index_map):
        start[d] = int(row[k])
    for operand_dim, index_dim in batching:
        start[operand_dim] = position[index_dim]
    return start


def _in_bounds(start: Sequence[int], sizes: Sequence[int], shape: Sequence[int]) -> bool:
    return all(0 <= s <= dim - n for s, n, dim in zip(start, sizes, shape))


def _gather(
    operand: np.ndarray,
    indices: np.ndarray,
    *,
    dimension_numbers: Any,
    slice_sizes: tuple[int, ...],
    mode: Any,
    fill_value: Any,
    **_: Any,
) -> Array:
    """XLA's gather, with the index vector on the last axis of `indices` (as JAX emits it)."""
    dn = dimension_numbers
    fill = "FILL" in str(mode).upper()
    batching = list(zip(dn.operand_batching_dims, dn.start_indices_batching_dims))
    dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
    window_shape = [n for d, n in enumerate(slice_sizes) if d not in dropped]
    if fill_value is None:
        fill_value = np.nan if np.issubdtype(operand.dtype, np.floating) else 0
    pieces = []
    for position in np.ndindex(*indices.shape[:-1]):
        start = _window_start(indices[position], dn.start_index_map, position, batching, operand.ndim)
        if fill and not _in_bounds(start, slice_sizes, operand.shape):
            pieces.append(np.full(window_shape, fill_value, dtype=operand.dtype))
            continue
        start = [int(np.clip(s, 0, dim - n)) for s, n, dim in zip(start, slice_sizes, operand.shape)]
        window = operand[tuple(slice(s, s + n) for s, n in zip(start, slice_sizes))]
        pieces.append(window.reshape(window_shape))
    stacked = np.stack(pieces).reshape(*indices.shape[:-1], *window_shape)
    rank = indices.ndim - 1 + len(window_shape)
    batch_positions = [d for d in range(rank) if d not in dn.offset_dims]
    return np.moveaxis(stacked, list(range(rank)), [*batch_positions, *dn.offset_dims])


def _scatter_add(
    operand: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, dimension_numbers: Any, mode: Any, **_: Any
) -> Array:
    """XLA's scatter with addition (the transpose of gather), index vector last."""
    dn = dimension_numbers
    clip = "CLIP" in str(mode).upper()
    batching = list(zip(dn.operand_batching_dims, dn.scatter_indices_batching_dims))
    scatter_dims = [d for d in range(updates.ndim) if d not in dn.update_window_dims]
    ordered = np.moveaxis(updates, [*scatter_dims, *dn.update_window_dims], list(range(updates.ndim)))
    window = ordered.shape[len(scatter_dims) :]
    full = [1] * operand.ndim
    it = iter(window)
    for d in range(operand.ndim):
        if d not in dn.inserted_window_dims and d not in dn.operand_batching_dims:
            full[d] = next(it)
    out = operand.copy()
    for position in np.ndindex(*indices.shape[:-1]):
        update = ordered[position]
        start = _window_start(indices[position], dn.scatter_dims_to_operand_dims, position, batching, operand.ndim)
        if clip:
            start = [int(np.clip(s, 0, dim - n)) for s, n, dim in zip(start, full, operand.shape)]
        elif not _in_bounds(start, full, operand.shape):
            continue  # out-of-bounds updates are dropped
        out[tuple(slice(s, s + n) for s, n in zip(start, full))] += update.reshape(full)
    return out


def _clamp(lo: np.ndarray, x: np.ndarray, hi: np.ndarray, **_: Any) -> Array:
    return np.clip(x, lo, hi)


def _identity(x: np.ndarray, **_: Any) -> Array:
    return x


RULES: dict[str, Callable[..., Any]] = {
    # elementwise, one input
    "neg": _unary(np.negative),
    "sign": _unary(np.sign),
    "floor": _unary(np.floor),
    "ceil": _unary(np.ceil),
    "abs": _unary(np.abs),
    "exp": _unary(np.exp),
    "exp2": _unary(np.exp2),
    "log": _unary(np.log),
    "log1p": _unary(np.log1p),
    "expm1": _unary(np.expm1),
    "tanh": _unary(np.tanh),
    "logistic": _unary(_logistic),
    "sin": _unary(np.sin),
    "cos": _unary(np.cos),
    "tan": _unary(np.tan),
    "asin": _unary(np.arcsin),
    "acos": _unary(np.arccos),
    "atan": _unary(np.arctan),
    "sinh": _unary(np.sinh),
    "cosh": _unary(np.cosh),
    "asinh": _unary(np.arcsinh),
    "acosh": _unary(np.arccosh),
    "atanh": _unary(np.arctanh),
    "sqrt": _unary(np.sqrt),
    "rsqrt": _unary(lambda x: 1.0 / np.sqrt(x)),
    "cbrt": _unary(np.cbrt),
    "square": _unary(np.square),
    "is_finite": lambda x, **_: np.isfinite(x),
    "not": lambda x, **_: np.logical_not(x) if x.dtype == bool else np.invert(x),
    "integer_pow": _integer_pow,
    "convert_element_type": _convert,
    "copy": _identity,
    "copy_p": _identity,
    "stop_gradient": _identity,
    "optimization_barrier": lambda *xs, **_: list(xs),
    # elementwise, two or more inputs
    "add": _binary(np.add),
    "add_any": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(_div),
    "rem": _binary(np.fmod),
    "pow": _binary(np.power),
    "max": _binary(np.maximum),
    "min": _binary(np.minimum),
    "atan2": _binary(np.arctan2),
    "nextafter": _binary(np.nextafter),
    "and": _binary(np.bitwise_and),
    "or": _binary(np.bitwise_or),
    "xor": _binary(np.bitwise_xor),
    "eq": _compare(np.equal),
    "ne": _compare(np.not_equal),
    "lt": _compare(np.less),
    "le": _compare(np.less_equal),
    "gt": _compare(np.greater),
    "ge": _compare(np.greater_equal),
    "select_n": _select_n,
    "clamp": _clamp,
    # shapes and data movement
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "transpose": lambda x, *, permutation, **_: np.transpose(x, permutation),
    "squeeze": lambda x, *, dimensions, **_: np.squeeze(x, axis=tuple(dimensions)),
    "expand_dims": lambda x, *, dimensions, **_: np.expand_dims(x, tuple(dimensions)),
    "rev": lambda x, *, dimensions, **_: np.flip(x, tuple(dimensions)),
    "slice": _slice,
    "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
    "concatenate": lambda *xs, dimension, **_: np.concatenate(xs, axis=dimension),
    "pad": _pad,
    "iota": _iota,
    "split": _split,
    "gather": _gather,
    "scatter-add": _scatter_add,
    "scatter_add": _scatter_add,
    "dim_as_value": lambda *, dim, **_: np.asarray(dim, dtype=np.int64),
    # reductions and contractions
    "reduce_sum": _reduce(np.sum),
    "reduce_max": _reduce(np.max),
    "reduce_min": _reduce(np.min),
    "reduce_prod": _reduce(np.prod),
    "reduce_and": lambda x, *, axes, **_: np.all(x, axis=tuple(axes)),
    "reduce_or": lambda x, *, axes, **_: np.any(x, axis=tuple(axes)),
    "argmax": _arg(np.argmax),
    "argmin": _arg(np.argmin),
    "cumsum": _cumulative(np.cumsum),
    "cumprod": _cumulative(np.cumprod),
    "cummax": _cumulative(np.maximum.accumulate),
    "cummin": _cumulative(np.minimum.accumulate),
    "dot_general": _dot_general,
}


def _sum_terms(invals: list[np.ndarray], params: dict[str, Any]) -> tuple[int, np.ndarray]:
    x = invals[0]
    n = math.prod(x.shape[a] for a in params["axes"])
    return max(n - 1, 1), RULES["reduce_sum"](np.abs(x), **params)


def _add_terms(invals: list[np.ndarray], params: dict[str, Any]) -> tuple[int, np.ndarray]:
    return 1, np.abs(invals[0]) + np.abs(invals[1])


def _dot_terms(invals: list[np.ndarray], params: dict[str, Any]) -> tuple[int, np.ndarray]:
    lhs, rhs = invals
    (contract, _), _ = params["dimension_numbers"]
    n = math.prod(lhs.shape[a] for a in contract)
    return max(n, 1), RULES["dot_general"](np.abs(lhs), np.abs(rhs), **params)


# Sums: how many rounding errors a result accumulates, and the sum of its terms' magnitudes (`_noise` explains).
_TERMS = {
    "add": _add_terms,
    "sub": _add_terms,
    "add_any": _add_terms,
    "reduce_sum": _sum_terms,
    "dot_general": _dot_terms,
}
