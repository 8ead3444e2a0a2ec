"""Measure rounding noise by Monte Carlo arithmetic (MCA).

A closed-form gradient and JAX's autodiff compute the same function with
different operations, so they differ by rounding. How much depends on the
point: near a perfect fit ``a2 - y`` cancels and leaves only rounding. Rather
than guess, we measure: re-run a JAX function with every floating-point
result ``r`` replaced by ``r (1 + u xi)``, ``xi ~ U(-1, 1)``, where ``u`` is the
unit roundoff of the precision being judged (Parker's Monte Carlo arithmetic,
the idea behind Verificarlo and CESTAC). The spread over a few such runs is
the size of the rounding error that any reasonable algorithm can make there.

Sums are perturbed by the size of their *terms*, not of their result: an
addition ``a + b`` gets an absolute error of up to ``u (|a| + |b|)``, a sum of
n terms ``(n - 1) u sum |x_i|`` (Higham, Thm 4.4). Another evaluation of the
same formula may have rounded each term before adding it, even where this
graph happens to form a term exactly: a closed form that computes
``a2 = sigmoid(z2)`` and then ``a2 - y`` for a confident classifier (a2 near
y = 1) loses all but a few digits of a tiny output error, while the autodiff
of the stable loss adds ``1`` and ``-y``, exactly, and never rounds a2.

The function is traced to a jaxpr once; `perturbed` evaluates that jaxpr
with noise injected after each primitive, and is itself traceable, so it
composes with `jax.jit` and `jax.vmap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from gradcheck import _tolerance

# Primitives whose result is exact: they move or select values, never round.
EXACT = frozenset(
    {
        "broadcast_in_dim",
        "concatenate",
        "copy",
        "copy_p",
        "dynamic_slice",
        "dynamic_update_slice",
        "gather",
        "neg",
        "abs",
        "max",
        "min",
        # Selections too: a max is one of its inputs, and its gradient finds
        # it again by equality (a perturbed max would match no input and
        # divide by a count of zero).
        "reduce_max",
        "reduce_min",
        "argmax",
        "argmin",
        "sort",
        "pad",
        "reshape",
        "rev",
        "select_n",
        "sign",
        "slice",
        "squeeze",
        "expand_dims",
        "stop_gradient",
        "transpose",
        "iota",
    }
)
#: The finest perturbation MCA applies, 8 float64 unit roundoffs. A float64
#: value perturbed by at most u = 2^-53 of itself, in float64 arithmetic,
#: rounds straight back wherever it sits in the lower half of its binade's
#: rounding interval (1 + 6e-16 stays 1 + 6.7e-16), so noise that is
#: really there, a sum near 1 in a softmax's log-sum-exp, would measure as
#: zero. Perturbed at 8u it moves; the spread is scaled back by u / 8u,
#: rounding noise being linear in the perturbation at this size.
MCA_ROUNDOFF = 2.0**-50

# Higher-order primitives, and the parameter that holds the jaxpr they call.
CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr"}


def perturbed(fun: Callable[..., Any], unit_roundoff: Any) -> Callable[..., Any]:
    """Return ``g(stream, *args)``: `fun` evaluated with MCA noise of size `unit_roundoff`.

    `stream` is an integer; different streams give independent noise.

    Inputs are perturbed too (they stand for values rounded to the working
    precision). Integer and boolean values are left alone. All the noise is
    drawn in one call and sliced as needed, which keeps compilation fast.
    """

    def run(stream: jax.Array, *args: Any) -> Any:
        flat, tree = jax.tree_util.tree_flatten(args)
        closed = jax.make_jaxpr(lambda *leaves: fun(*jax.tree_util.tree_unflatten(tree, leaves)))(*flat)
        jitter = _Jitter(stream, unit_roundoff, _count(closed.jaxpr) + sum(_size(v.aval) for v in closed.jaxpr.invars))
        out = _eval(closed.jaxpr, closed.consts, jitter, [jitter(v) for v in flat])
        out_tree = jax.tree_util.tree_structure(jax.eval_shape(fun, *args))
        return jax.tree_util.tree_unflatten(out_tree, out)

    return run


class _Jitter:
    """Multiplies float values by ``1 + u xi``, ``xi ~ U(-1, 1)``, from one pre-drawn buffer."""

    def __init__(self, stream: jax.Array, u: Any, total: int):
        self.u, self.offset = u, 0
        self.xi = uniform(stream, max(total, 1))

    def _draw(self, value: jax.Array) -> jax.Array:
        xi = self.xi[self.offset : self.offset + value.size].reshape(value.shape).astype(value.dtype)
        self.offset += value.size
        return jnp.asarray(self.u, value.dtype) * xi

    def __call__(self, value: Any) -> Any:
        """``value (1 + u xi)``: one rounding, relative to the result."""
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.floating):
            return value
        return value * (1.0 + self._draw(value))

    def absolute(self, value: Any, bound: Any) -> Any:
        """``value + u xi bound``: an error bounded by `bound` units of roundoff."""
        value = jnp.asarray(value)
        if not jnp.issubdtype(value.dtype, jnp.floating):
            return value
        return value + self._draw(value) * bound


def uniform(stream: jax.Array, n: int) -> jax.Array:
    """`n` values uniform on [-1, 1) for the integer `stream`, from a counter-based hash.

    Chris Wellons' "lowbias32" integer hash of (counter, stream): statistically
    plenty for rounding noise, and a handful of integer operations, where
    `jax.random`'s threefry would double the compile time of a check.
    """
    x = jnp.arange(n, dtype=jnp.uint32) + jnp.asarray(stream, jnp.uint32) * jnp.uint32(0x9E3779B9)
    x ^= x >> 16
    x *= jnp.uint32(0x7FEB352D)
    x ^= x >> 15
    x *= jnp.uint32(0x846CA68B)
    x ^= x >> 16
    xi: jax.Array = (x >> 8).astype(jnp.float64) * 2.0**-23 - 1.0
    return xi


def uniform_numpy(stream: int, n: int) -> np.ndarray:
    """`uniform` by NumPy: the same values, bit for bit, with no trace or compile."""
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint32) + np.uint32(stream % 2**32) * np.uint32(0x9E3779B9)
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    xi: np.ndarray = (x >> np.uint32(8)).astype(np.float64) * 2.0**-23 - 1.0
    return xi


#: Sums: how many rounding errors a result accumulates, and the sum of its terms' magnitudes. A sum of n
#: terms errs by up to (n - 1) u sum|x_i| (Higham, Thm 4.4), and its errors can be correlated, so that
#: bound is used, not n independent relative errors. One table for both evaluators of a jaxpr: JAX's
#: (`perturbed`) and NumPy's (`gradcheck._interpret`).
SUMS = frozenset({"add", "sub", "add_any", "reduce_sum", "dot_general"})


def sum_terms(name: str, params: dict[str, Any], invals: list[Any], bind: Callable[..., Any]) -> tuple[int, Any]:
    """For a primitive `name` in `SUMS`: the count of rounding errors and the magnitude of the terms.

    `bind(*args, **params)` evaluates the primitive itself (JAX's ``bind``, or its NumPy rule), on the
    terms' absolute values. Works on JAX and NumPy arrays alike (``abs`` and ``+`` are both's).
    """
    if name == "reduce_sum":
        x = invals[0]
        n = math.prod(x.shape[a] for a in params["axes"])
        return max(n - 1, 1), bind(abs(x), **params)
    if name == "dot_general":
        lhs, rhs = invals
        (contract, _), _ = params["dimension_numbers"]
        n = math.prod(lhs.shape[a] for a in contract)
        return max(n, 1), bind(abs(lhs), abs(rhs), **params)
    return 1, abs(invals[0]) + abs(invals[1])  # add, sub, add_any


def subjaxpr(eqn: Any, calls: dict[str, str] = CALLS) -> tuple[Any, Sequence[Any]] | None:
    """The jaxpr that a call-like primitive (jit, custom_jvp_call, ...: `calls`) runs, and its constants."""
    param = calls.get(eqn.primitive.name)
    if param is None or param not in eqn.params:
        return None
    sub = eqn.params[param]
    return (sub.jaxpr, sub.consts) if hasattr(sub, "consts") else (sub, ())


class Noise:
    """Monte Carlo arithmetic in NumPy (`gradcheck._interpret`): each rounded result ``r`` becomes
    ``r (1 + u xi)``, ``xi ~ U(-1, 1)``, and a sum ``r + u xi bound``, as `perturbed` does in JAX."""

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

    def relative(self, value: np.ndarray) -> np.ndarray:
        if value.dtype.kind != "f":
            return value
        moved: np.ndarray = (value * (1.0 + self.u * self._xi(value.shape))).astype(value.dtype, copy=False)
        return moved

    def absolute(self, value: np.ndarray, bound: np.ndarray) -> np.ndarray:
        if value.dtype.kind != "f":
            return value
        moved: np.ndarray = (value + self.u * self._xi(value.shape) * bound).astype(value.dtype, copy=False)
        return moved


def _size(aval: Any) -> int:
    dtype = getattr(aval, "dtype", None)
    return int(math.prod(aval.shape)) if dtype is not None and jnp.issubdtype(dtype, jnp.floating) else 0


def _count(jaxpr: jcore.Jaxpr) -> int:
    """How many noise values `_eval` will draw for `jaxpr`."""
    total = 0
    for eqn in jaxpr.eqns:
        sub = subjaxpr(eqn)
        if sub is not None:
            total += _count(sub[0])
        elif eqn.primitive.name not in EXACT:
            total += sum(_size(v.aval) for v in eqn.outvars)
    return total


def _eval(jaxpr: jcore.Jaxpr, consts: Sequence[Any], jitter: _Jitter, args: Sequence[Any]) -> list[Any]:
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jcore.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        sub = subjaxpr(eqn)
        if sub is not None:
            outvals = _eval(sub[0], sub[1], jitter, invals)
        else:
            params = eqn.primitive.get_bind_params(eqn.params)
            result = eqn.primitive.bind(*invals, **params)
            outvals = list(result) if eqn.primitive.multiple_results else [result]
            if name in SUMS:
                terms, magnitude = sum_terms(name, params, invals, eqn.primitive.bind)
                outvals = [jitter.absolute(outvals[0], terms * magnitude)]
            elif name not in EXACT:
                outvals = [jitter(v) for v in outvals]
        env.update(zip(eqn.outvars, outvals))
    return [read(v) for v in jaxpr.outvars]


def spread(samples: Any, center: Any) -> Any:
    """Largest deviation of the MCA samples (leading axis) from the plain result, over the finite samples.

    A perturbation can push a value over a domain's edge (a square root's argument of 2^-52 below
    zero): that run is left out, and the others measure the noise. Where no run is finite the
    spread is NaN: the noise cannot be measured there (`_judge` then allows the floor alone, and
    holds an error beyond it in doubt rather than blaming it).
    """

    def one(s: jax.Array, c: jax.Array) -> jax.Array:
        return jnp.nanmax(jnp.where(jnp.isfinite(s), jnp.abs(s - c), jnp.nan), axis=0)

    return jax.tree_util.tree_map(one, samples, center)


def spread_numpy(samples: np.ndarray, center: np.ndarray | float) -> np.ndarray:
    """`spread` in NumPy: the largest deviation over the finite samples (leading axis), NaN where none is."""
    deviation = np.where(np.isfinite(samples), np.abs(samples - center), np.nan)
    spread: np.ndarray = np.fmax.reduce(deviation, axis=0)  # fmax: NaN only where every sample is NaN
    return spread


def measured(xp: Any, f_samples: Any, g_samples: Any, f0: Any, g: Any, unit_roundoff: Any) -> tuple[Any, Any]:
    """The loss's rounding noise at float64 and the gradient's at `unit_roundoff`, from Monte Carlo runs at
    ``max(unit_roundoff, MCA_ROUNDOFF)`` (samples on the leading axis): one set of runs gives both, scaled
    back linearly, the gradient's widened by `_tolerance.samples_safety` for the number of runs.

    `xp` is ``numpy`` (the NumPy references, one problem or a stack) or ``jax.numpy`` (the compiled ones).
    The loss's noise is over the finite runs; where none is finite, none is measured, and the least
    allowance stands, as under the screen.
    """
    spread_of = spread_numpy if xp is np else spread
    mca_u = xp.maximum(unit_roundoff, MCA_ROUNDOFF)
    sigma_f = xp.nan_to_num(spread_of(f_samples, f0)) * (2.0**-53 / mca_u)
    noise = spread_of(g_samples, g) * (unit_roundoff / mca_u) * _tolerance.samples_safety(f_samples.shape[0])
    return sigma_f, noise
