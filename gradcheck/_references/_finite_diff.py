"""Finite differences: central differences, Richardson extrapolation, error estimates.

Every perturbation of every coordinate is evaluated in one batched call
(`jax.vmap` over the stacked points), never in a Python loop.

For a step ``h`` the central difference ``D(h) = (f(t + h) - f(t - h)) / 2h``
has error ``c2 h^2 + c4 h^4 + ...``. With ``LEVELS`` steps ``h, h/2, h/4``
Richardson's tableau cancels the ``h^2`` and ``h^4`` terms, leaving ``O(h^6)``.
Each estimate carries an error bound made of two parts:

- truncation: the change between the last two columns of the tableau, which
  bounds the error of the less accurate of them;
- rounding: the estimate is a fixed linear combination ``sum_k w_k (f+_k - f-_k)``
  of loss values, so an absolute noise ``s_k`` in each value moves it by at
  most ``sum_k 2 |w_k| s_k``. ``s_k`` is the larger of the noise ``sigma_f``
  measured at the point (see `_noise`) and ``EVAL_ULPS`` ulps of the values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: Largest step, relative to ``max(1, |t_i|)``. A power of two, so that ``t +- h``
#: is exact for most ``t``. Balances the O(h^6) truncation of a three-level
#: tableau against rounding, whose optimum is near ``eps^(1/7) ~ 6e-3``.
FD_STEP = 2.0**-7
#: Number of step sizes (h, h/2, h/4) in the Richardson tableau.
LEVELS = 3
#: Step ratio between levels.
RATIO = 2.0
#: Least rounding error assumed for one loss evaluation, in ulps of its value.
EVAL_ULPS = 4.0
#: A kink is declared when the one-sided slopes' gap at the smallest step is
#: at least this fraction of the gap at the largest (a smooth function's gap
#: falls to 1/RATIO^(LEVELS-1) = 1/4 of it) ...
KINK_PERSISTENCE = 0.5
#: ... and exceeds the gap that rounding alone could make, times this.
KINK_SAFETY = 16.0
#: Points evaluated in one vectorised call at most (`directional`): more are taken in chunks of this many,
#: one chunk after another. One at a time is the fastest measured on the CPU, for a convolution by far
#: (benchmarks/conv.py: a vmap over its 1,800 points makes one grouped convolution 270 times slower) and
#: for the seed network as well (50 ms against 72 at 64 hidden units, compiled).
VMAP_CHUNK = 1


class FiniteDifferences(NamedTuple):
    """Directional derivative estimates, one per direction, with error bounds."""

    value: Any  # (D,)  jax or NumPy arrays
    error: Any  # (D,)  truncation + rounding bound
    kink: Any  # (D,)  bool: the one-sided slopes disagree by a jump that does not shrink with h


def _tableau_weights(levels: int, ratio: float) -> np.ndarray:
    """Richardson's tableau as weights on the differences ``(f+_k - f-_k) / h0``.

    Row 0 gives the last entry of the last column (the estimate), row 1 the
    last entry of the column before it (for the truncation estimate).
    """
    # Column 0: D(h0 / ratio^k) = ratio^k / 2 * (f+_k - f-_k) / h0.
    columns = [[np.eye(levels)[k] * ratio**k / 2.0 for k in range(levels)]]
    for j in range(1, levels):
        c, prev = ratio ** (2 * j), columns[-1]
        columns.append([(c * prev[k] - prev[k - 1]) / (c - 1.0) for k in range(1, len(prev))])
    return np.stack([columns[-1][-1], columns[-2][-1]])


WEIGHTS = _tableau_weights(LEVELS, RATIO)  # (2, LEVELS): final column, the one before


def directional(
    f: Callable[[jax.Array], jax.Array],
    theta: jax.Array,
    directions: jax.Array,
    steps: jax.Array,
    sigma_f: jax.Array,
    f0: jax.Array,
    *,
    sequential: bool = False,
) -> FiniteDifferences:
    """Estimate ``grad f(theta) . v`` for each row ``v`` of `directions` (D, P).

    `steps` (D,) is the largest step for each direction; `sigma_f` is the
    absolute noise of one evaluation of `f`, and `f0` is ``f(theta)``.
    Traceable: call it under `jax.jit`. The 2 K D evaluations run in one
    vectorised call, or one after another with `sequential` (for large P,
    where the stacked points would take 2 K D copies of the parameters).

    A central difference averages the two one-sided slopes, so at a kink it
    can agree with autodiff's choice of one-sided derivative by accident.
    The one-sided slopes tell: their gap ``|f(t+h) - 2 f(t) + f(t-h)| / h`` is
    ``|f''| h`` for a smooth function, shrinking 4-fold from the largest step
    to the smallest, but a jump that stays put at a kink.
    """
    scales = RATIO ** -jnp.arange(LEVELS, dtype=theta.dtype)  # (K,)
    h = steps[:, None] * scales[None, :]  # (D, K)

    def taken(step: jax.Array, direction: jax.Array) -> jax.Array:
        # The step actually taken after rounding theta +- h: keep the quotient honest.
        return jnp.max(jnp.abs((theta + step * direction) - (theta - step * direction))) / (
            2 * jnp.max(jnp.abs(direction))
        )

    flat_h = h.reshape(-1)
    if sequential:  # one point at a time: memory and time stay those of one evaluation
        # Each loss gets a point of its own, picked by index inside the loop: XLA then
        # fuses theta + h d into the loss's parameters. A point shared by two
        # consumers (its two losses, or the loss and the step taken) is built apart
        # first, and the products that read it ran 4x slower (benchmarks/components.py).
        signed = jnp.concatenate([h, -h], axis=1)  # (D, 2K)
        values = jnp.stack([jax.lax.map(lambda s, d=d: f(theta + s * d), row) for d, row in zip(directions, signed)])
        f_plus, f_minus = values[:, :LEVELS], values[:, LEVELS:]
        # Along a +-1 direction the step taken is the same whatever its signs:
        # |fl(t + h) - fl(t - h)| swaps its two terms where d = -1. One pass over theta each.
        h_eff = jax.lax.map(lambda step: taken(step, jnp.ones_like(theta)), flat_h)
    else:  # every point in one vectorised call

        def evaluate(step: jax.Array, direction: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
            return f(theta + step * direction), f(theta - step * direction), taken(step, direction)

        stacked = (flat_h, jnp.repeat(directions, LEVELS, axis=0))
        if flat_h.shape[0] > VMAP_CHUNK:
            # In chunks, one after another: a vmap over thousands of points turns some operations into one
            # enormous batched one (a convolution becomes a grouped one with a group per point, which XLA
            # runs far slower than the same work point by point).
            f_plus, f_minus, h_eff = jax.lax.map(lambda a: evaluate(*a), stacked, batch_size=VMAP_CHUNK)
        else:
            f_plus, f_minus, h_eff = jax.vmap(evaluate)(*stacked)
    f_plus, f_minus, h_eff = (a.reshape(h.shape) for a in (f_plus, f_minus, h_eff))
    return combine(jnp, f_plus, f_minus, h, h_eff, steps, sigma_f, f0)


def combine(
    xp: Any,
    f_plus: Any,
    f_minus: Any,
    h: Any,
    h_eff: Any,
    steps: Any,
    sigma_f: Any,
    f0: Any,
) -> FiniteDifferences:
    """Richardson's tableau, its error bound and the kink test, from the loss at the points (D, K).

    `xp` is ``numpy`` or ``jax.numpy``: the same arithmetic serves the NumPy
    references and the compiled ones. `h` are the nominal steps, `h_eff` the
    steps actually taken after rounding ``theta +- h``.
    """
    eps = xp.finfo(f_plus.dtype).eps
    diffs = (f_plus - f_minus) * (h / h_eff)  # (D, K), as if taken with the nominal step
    weights = xp.asarray(WEIGHTS, f_plus.dtype)  # (2, K)
    final, before = (diffs @ weights.T / steps[:, None]).T
    # Each evaluation errs by the measured noise at theta, and by at least
    # EVAL_ULPS of its own magnitude (the points theta +- h are not theta).
    own = EVAL_ULPS * eps * xp.maximum(xp.abs(f_plus), xp.abs(f_minus))  # (D, K)
    noise = xp.maximum(sigma_f, own)
    rounding = 2.0 * xp.sum(xp.abs(weights[0]) * noise, axis=-1) / steps
    gap = xp.abs(f_plus - 2.0 * f0 + f_minus) / h_eff  # (D, K)
    gap_noise = KINK_SAFETY * 4.0 * xp.maximum(noise, EVAL_ULPS * eps * xp.abs(f0)) / h_eff
    kink = (gap[:, -1] > KINK_PERSISTENCE * gap[:, 0]) & (gap[:, -1] > gap_noise[:, -1])
    return FiniteDifferences(final, xp.abs(final - before) + rounding, kink)
