"""One problem's references compiled by XLA: `reference_function`, jitted once per traced loss.

It costs 0.1-0.7 s to compile, then runs in well under a millisecond; `_references.evaluation` takes it
for a shape checked often, for a large model (above `MAX_COORDINATES` parameters: finite differences
along random directions) and for a loss with a primitive that has no NumPy rule.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _caches, _tolerance
from gradcheck._references import _finite_diff, _noise, _trace
from gradcheck._references._evaluation import (
    DIRECTIONS,
    LARGE_NOISE_SAMPLES,
    MAX_COORDINATES,
    Evaluation,
    Path,
    References,
    assemble,
)

#: The references are compiled once per shape, and tests and the CLI meet many
#: small shapes: XLA's cheapest backend optimisation halves compile time
#: (about 0.9 s to 0.5 s) for a 1.3x slower run (0.4 to 0.5 ms).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


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
        sigma_f, noise = _noise.measured(jnp, f_samples, g_samples, f0, g, unit_roundoff)
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
