"""Where the time of a compiled check goes: each part of the references, timed alone, against the whole.

The references of a check are four computations, compiled by XLA:

- autodiff: one value and gradient of the loss (float64);
- Monte Carlo: the same with every operation perturbed, once per sample
  (8 samples; 2 above `MAX_COORDINATES` parameters);
- finite differences: 2 * LEVELS loss evaluations per coordinate (6 per
  parameter), or per random direction above `MAX_COORDINATES` parameters;
- the whole reference function, as `check_batch` and `check_gradients` run it;
  for a large model also as its screen runs it (`_references.SCREEN`: no
  Monte Carlo runs).

Each is jitted alone and timed warm (median wall time), for three workloads:

- batch: 2,048 typical seed-network problems (inputs 2, hidden 3, batch 8),
  vmapped as `check_batch` runs them;
- one: one seed-network problem, as a warm `check_gradients` runs it;
- large: one network of inputs 784, hidden ``--hidden``, batch 64, with
  directional finite differences.

The "ceiling" column is what the part alone allows: problems per second for
the batch, checks per second otherwise. A target above the ceiling of a part
that the check must run cannot be met without dropping that part.

Run: python benchmarks/components.py [--hidden 512] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _references, _tolerance, mlp, problems
from gradcheck._references import _finite_diff, _noise, _trace


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # compiles
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def parts(task: mlp.Task, params: Any, x: np.ndarray, y: np.ndarray, *, stacked: bool) -> dict[str, Callable[..., Any]]:
    """The reference parts of `mlp.loss` as functions of (theta, args), one problem each."""
    loss = partial(mlp.loss, task=task)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    one = [leaf[0] for leaf in leaves] if stacked else leaves
    data = (x[0], y[0]) if stacked else (x, y)
    traced = _trace.trace_loss(loss, treedef, tuple(np.shape(leaf) for leaf in one), data)
    flat_loss = _trace.flat_loss(traced)
    p = sum(np.size(leaf) for leaf in one)
    large = p > _references.MAX_COORDINATES
    samples = _references.LARGE_NOISE_SAMPLES if large else _tolerance.NOISE_SAMPLES
    directions = _references.DIRECTIONS if large else None
    value_and_grad = jax.value_and_grad(flat_loss)
    streams = jnp.arange(samples, dtype=jnp.uint32)
    run = _noise.perturbed(value_and_grad, 2.0**-40)

    def monte_carlo(theta: jax.Array, args: Any) -> Any:
        if large:
            return jax.lax.map(lambda s: run(s, theta, args), streams)
        return jax.vmap(run, (0, None, None))(streams, theta, args)

    def finite_differences(theta: jax.Array, args: Any) -> Any:
        if large:
            d = jnp.where(_noise.uniform(jnp.uint32(7), directions * p) >= 0, 1.0, -1.0).reshape(directions, p)
        else:
            d = jnp.eye(p, dtype=theta.dtype)
        steps = jnp.full(d.shape[0], _finite_diff.FD_STEP)
        return _finite_diff.directional(lambda t: flat_loss(t, args), theta, d, steps, 1e-16, 1.0, sequential=large)

    def whole(gradient_noise: bool) -> Callable[..., Any]:
        fn = _references.reference_function(
            traced, directions=directions, samples=samples, sequential=large, gradient_noise=gradient_noise
        )
        return lambda theta, args: fn(theta, args, jnp.uint32(0), 2.0**-53, jnp.zeros_like(theta), 1.0)

    out = {
        "loss": flat_loss,
        "autodiff": value_and_grad,
        f"Monte Carlo ({samples} samples)": monte_carlo,
        f"finite differences ({2 * _finite_diff.LEVELS * (directions or p)} losses)": finite_differences,
        "whole reference function": whole(True),
    }
    if large:  # the screen (`_references.SCREEN`): no Monte Carlo runs
        out["whole reference function, screened"] = whole(False)
    return out


def table(
    label: str, task: mlp.Task, params: Any, x: np.ndarray, y: np.ndarray, *, stacked: bool, repeats: int
) -> None:
    leaves = jax.tree_util.tree_leaves(params)
    n = leaves[0].shape[0] if stacked else 1
    theta = np.concatenate([np.reshape(leaf, (n, -1)) for leaf in leaves], axis=1) if stacked else None
    if theta is None:
        theta = np.concatenate([np.ravel(leaf) for leaf in leaves])
    unit = "problems/s" if stacked else "checks/s"
    print(f"\n{label} ({task}):\n")
    print(f"| part | time | ceiling ({unit}) |")
    print("|---|---|---|")
    with jax.enable_x64(True):
        args = (jnp.asarray(x), jnp.asarray(y))
        th = jnp.asarray(theta)
        for name, fn in parts(task, params, x, y, stacked=stacked).items():
            f = jax.jit(jax.vmap(fn) if stacked else fn)
            ms = median_ms(lambda f=f: f(th, args), repeats)  # type: ignore[misc]
            print(f"| {name} | {ms:.3g} ms | {n / ms * 1e3:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    task: mlp.Task = "classification"
    probs = [problems.sample(np.random.default_rng([1, i]), task=task, regime="typical") for i in range(2048)]
    params = mlp.Params(*(np.stack([getattr(p.params, f) for p in probs]) for f in mlp.Params._fields))
    x, y = np.stack([p.x for p in probs]), np.stack([p.y for p in probs])
    table("batch: 2,048 seed-network problems", task, params, x, y, stacked=True, repeats=args.repeats)
    one = probs[0]
    table("one seed-network problem", task, one.params, one.x, one.y, stacked=False, repeats=args.repeats * 20)
    rng = np.random.default_rng(0)
    big = mlp.init_params(0, inputs=784, hidden=args.hidden)
    bx, by = rng.normal(size=(64, 784)), rng.normal(size=64)
    p = sum(a.size for a in big)
    table(
        f"large: inputs 784, hidden {args.hidden}, batch 64 ({p:,} parameters)",
        "regression",
        big,
        bx,
        by,
        stacked=False,
        repeats=args.repeats,
    )


if __name__ == "__main__":
    main()
