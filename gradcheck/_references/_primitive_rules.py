"""The NumPy rules of `_interpret`: one function per JAX primitive, taking the primitive's parameters.

Each rule computes what the primitive computes (XLA's semantics: C-style
integer division, clamped dynamic slices, gather and scatter with the index
vector last); `tests/test_interpret.py` checks them against JAX. A primitive
that is not in `RULES` is not evaluated by NumPy at all (`_interpret.Unsupported`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class Unsupported(Exception):
    """A primitive (or a form of one) that has no NumPy rule here."""


#: NumPy's functions are typed loosely; results are arrays (or NumPy scalars).
Array = Any


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
    dtype = np.dtype(preferred_element_type) if preferred_element_type is not None else np.result_type(lhs, rhs)
    if lb:
        return _batched_matmul(lhs, rhs, lc, rc, lb, rb).astype(dtype, copy=False)
    letters = iter("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    lhs_sub = [next(letters) for _ in range(lhs.ndim)]
    rhs_sub = [next(letters) for _ in range(rhs.ndim)]
    for a, b in (*zip(lc, rc), *zip(lb, rb)):
        rhs_sub[b] = lhs_sub[a]
    batch = [lhs_sub[a] for a in lb]
    free_l = [s for i, s in enumerate(lhs_sub) if i not in lc and i not in lb]
    free_r = [s for i, s in enumerate(rhs_sub) if i not in rc and i not in rb]
    spec = f"{''.join(lhs_sub)},{''.join(rhs_sub)}->{''.join(batch + free_l + free_r)}"
    return np.einsum(spec, lhs, rhs).astype(dtype, copy=False)


def _batched_matmul(
    lhs: np.ndarray, rhs: np.ndarray, lc: Sequence[int], rc: Sequence[int], lb: Sequence[int], rb: Sequence[int]
) -> Array:
    """`dot_general` with batch dimensions as one stacked ``np.matmul`` (B, M, K) @ (B, K, N): a stack of
    small products (a vmapped or stacked loss) runs about ten times faster than by ``np.einsum``."""
    free_l = [i for i in range(lhs.ndim) if i not in lc and i not in lb]
    free_r = [i for i in range(rhs.ndim) if i not in rc and i not in rb]
    batch = [lhs.shape[i] for i in lb]
    m, k, n = ([shape[i] for i in dims] for shape, dims in ((lhs.shape, free_l), (lhs.shape, lc), (rhs.shape, free_r)))
    left = np.transpose(lhs, (*lb, *free_l, *lc)).reshape(math.prod(batch), math.prod(m), math.prod(k))
    right = np.transpose(rhs, (*rb, *rc, *free_r)).reshape(math.prod(batch), math.prod(k), math.prod(n))
    return np.matmul(left, right).reshape((*batch, *m, *n))


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
    stacked = np.stack(pieces).reshape((*indices.shape[:-1], *window_shape))
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
