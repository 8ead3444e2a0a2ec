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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.extend.core as jcore
import numpy as np

from gradcheck._references import _noise
from gradcheck._references._primitive_rules import RULES, Unsupported

__all__ = ["RULES", "Noise", "Unsupported", "evaluate"]

#: Monte Carlo arithmetic in NumPy: `_noise`'s, its one home.
Noise = _noise.Noise


def evaluate(
    closed: Any,
    args: Sequence[Any],
    dims: Mapping[str, int] | None = None,
    noise: Noise | None = None,
    watch: Callable[[Any, list[np.ndarray]], None] | None = None,
) -> list[np.ndarray]:
    """Run the ClosedJaxpr `closed` on NumPy `args`; `dims` gives each symbolic dimension its size.

    `watch(eqn, inputs)` is called for every custom_jvp/custom_vjp call, with its inputs.
    """
    env = dict(dims or {})
    args = [np.asarray(a) for a in args]
    if noise is not None:  # the inputs stand for values rounded to the working precision
        args = [noise.relative(a) for a in args]
    with np.errstate(all="ignore"):  # overflow to inf, 0/0 to NaN: as XLA does, reported downstream
        return _run(closed.jaxpr, [np.asarray(c) for c in closed.consts], args, env, noise, watch)


def _run(
    jaxpr: Any,
    consts: Sequence[Any],
    args: Sequence[Any],
    dims: dict[str, int],
    noise: Noise | None,
    watch: Callable[[Any, list[np.ndarray]], None] | None = None,
) -> list:
    values: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return np.asarray(v.val) if isinstance(v, jcore.Literal) else values[v]

    values.update(zip(jaxpr.constvars, consts))
    values.update(zip(jaxpr.invars, args))
    sizes = tuple(sorted(dims.items()))
    for eqn, name, sub, symbolic in _plan(jaxpr):
        invals = [read(v) for v in eqn.invars]
        if sub is not None:
            if watch is not None and name in _CUSTOM:
                watch(eqn, invals)
            outvals = _run(sub[0], sub[1], invals, dims, noise, watch)
        elif name == "cond":
            index = int(np.clip(invals[0], 0, len(eqn.params["branches"]) - 1))
            branch = eqn.params["branches"][index]
            outvals = _run(branch.jaxpr, [np.asarray(c) for c in branch.consts], invals[1:], dims, noise, watch)
        else:
            rule = RULES.get(name)
            if rule is None:
                raise Unsupported(name)
            params = _resolved(eqn, symbolic, sizes) if symbolic else eqn.params
            result = rule(*invals, **params)
            outvals = [np.asarray(r) for r in result] if eqn.primitive.multiple_results else [np.asarray(result)]
            if noise is not None and name not in _noise.EXACT:
                if name in _noise.SUMS:
                    # A sum of n terms errs by up to (n - 1) u sum|x_i| (Higham, Thm 4.4): `_noise` explains.
                    terms, magnitude = _noise.sum_terms(name, params, invals, rule)
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
        sub = _noise.subjaxpr(eqn, _CALLS)
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


#: Calls whose derivative is a rule written by hand (`_derivatives.check_custom_rule` checks them).
_CUSTOM = ("custom_jvp_call", "custom_vjp_call")
_CALLS = {
    **_noise.CALLS,
    "core_call": "call_jaxpr",
    "custom_vjp_call": "call_jaxpr",
    "custom_vjp_call_jaxpr": "fun_jaxpr",
    "remat": "jaxpr",
    "checkpoint": "jaxpr",
}
