"""The Taylor remainder test: evidence that needs no tolerance and no step size.

For a direction v and steps h,

    r(h) = |L(theta + h v) - L(theta) - h g.v|

shrinks like h^2 when g is the gradient (the remainder is the curvature term)
and only like h when it is not (the error ``(g - grad L).v`` survives). The
slope of log r against log h over a range of h is the observed rate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: Steps h = 2^-k, largest to smallest, relative to max(1, |theta|_inf).
STEPS = 2.0 ** -np.arange(3, 17)
#: Remainders below this many ulps of |L| are rounding, not Taylor, and are dropped.
ROUNDING_ULPS = 1e3


class Remainders(NamedTuple):
    """The remainders r(h) at each step of `STEPS`, and which of them rise above rounding."""

    steps: np.ndarray  # (K,)  h, relative to max(1, |theta|_inf)
    remainder: np.ndarray  # (K,)  |L(theta + h v) - L(theta) - h g.v|
    usable: np.ndarray  # (K,)  bool: above ROUNDING_ULPS ulps of |L|, so fitted


def remainders(
    losses: Callable[[np.ndarray], np.ndarray],
    theta: np.ndarray,
    g: np.ndarray,
    v: np.ndarray,
) -> Remainders:
    """The first-order Taylor remainder along `v` at every step of `STEPS`.

    ``losses(points)`` gives the float64 loss at each row of `points` (M, P),
    as the references' `Evaluation.losses` does; `v` is rescaled to the
    length ``max(1, |theta|_inf)``.
    """
    scale = max(1.0, float(np.abs(theta).max()))
    v = v / float(np.linalg.norm(v)) * scale
    points = theta[None, :] + STEPS[:, None] * v[None, :]
    values = np.asarray(losses(np.concatenate([theta[None, :], points])), dtype=np.float64)
    base, values = float(values[0]), values[1:]
    remainder = np.abs(values - base - STEPS * float(np.dot(g, v)))
    usable = remainder > ROUNDING_ULPS * np.finfo(float).eps * max(abs(base), np.abs(values).max())
    return Remainders(STEPS, remainder, usable)


def jax_losses(
    flat_loss: Callable[[jax.Array, tuple[jax.Array, ...]], jax.Array], args: tuple[np.ndarray, ...]
) -> Callable[[np.ndarray], np.ndarray]:
    """``losses(points)`` for `remainders` from a JAX ``flat_loss(theta, args)``, vmapped in float64."""

    def losses(points: np.ndarray) -> np.ndarray:
        with jax.enable_x64(True):
            jargs = tuple(jnp.asarray(a) for a in args)
            return np.asarray(jax.vmap(lambda t: flat_loss(t, jargs))(jnp.asarray(points)))

    return losses


def slope(r: Remainders) -> float:
    """Least-squares slope of log r against log h over the usable steps; NaN if fewer than 3."""
    if r.usable.sum() < 3:
        return float("nan")
    fitted, _ = np.polyfit(np.log(r.steps[r.usable]), np.log(r.remainder[r.usable]), 1)
    return float(fitted)


def rate(losses: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, g: np.ndarray, v: np.ndarray) -> float:
    """Observed convergence rate of the first-order Taylor remainder along `v`.

    Returns NaN when too few steps rise above rounding to fit a slope.
    """
    return slope(remainders(losses, theta, g, v))


def describe(observed: float, *, mismatch: bool = False, mistake_confirmed: bool = False) -> str:
    """One line for a report.

    On a `mismatch` a rate near 2 does not contradict the verdict: the Taylor test sees an error only when
    it outgrows the curvature term at the steps it can use, and a small one does not. The line says so,
    and says that the wide evaluation (`_precision`) found the error to be a mistake, not rounding, when
    `mistake_confirmed`.
    """
    if np.isnan(observed):
        return "Taylor remainder: below rounding at every step (no rate)"
    if observed <= 1.5:
        return f"Taylor remainder shrinks like h^{observed:.2f} (as for a wrong gradient: 2 if right, 1 if wrong)"
    if not mismatch:
        return f"Taylor remainder shrinks like h^{observed:.2f} (as for a correct gradient: 2 if right, 1 if wrong)"
    found = "; evaluated in wider arithmetic it stays: a mistake, not rounding" if mistake_confirmed else ""
    return (
        f"Taylor remainder shrinks like h^{observed:.2f}, as for a correct gradient: the error is too small "
        f"against the curvature for this test to see (it resolves errors of about 1e-3 relative){found}"
    )


def along_error(cf: np.ndarray, ad: np.ndarray, rng: Any) -> np.ndarray:
    """The direction that shows a wrong gradient best: its error, else a random one."""
    error: np.ndarray = cf - ad
    norm = float(np.linalg.norm(error))
    return error / norm if np.isfinite(norm) and norm > 0 else np.asarray(rng.standard_normal(cf.shape))
