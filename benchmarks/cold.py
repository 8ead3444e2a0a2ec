"""The cold path: one check at a shape never seen before, against the peers, in one run.

What a property-based suite does: every example draws a new shape. Here
``--shapes`` distinct seed-network shapes (hidden 1-8, batch 1-39, inputs 2)
are checked once each, in one process, after the libraries have been imported
and warmed on another shape, for both tasks:

- ``check_gradients``, built-in loss (``mlp.loss``), first time at each shape
  (the default path: NumPy, no compile);
- ``check_gradients``, a user's own ``jax.numpy`` loss, first time at each
  shape (it is traced at every call, so that a loss that reads a global is
  never judged by a stale trace);
- ``check_gradients`` on the compiled path (``GRADCHECK_REFERENCES=xla``),
  first time at each shape: what every new shape cost before the cold path
  (on ``--compiled-shapes`` of them; each costs a compile);
- the same shapes again, on new problems (a problem checked again reuses its
  references): the default path's second check (NumPy), and the compiled path
  once compiled (what a shape checked ``COMPILE_AFTER`` times
  or more costs);
- the default path's second check with the screen off
  (``_references.unscreened``: the rounding noise measured by Monte Carlo
  runs in every check, as before the screen);
- ``torch.autograd.gradcheck`` (default, and ``fast_mode=True``) and
  ``scipy.optimize.check_grad`` on the same problems (as in benchmarks/peers.py).

Times are medians of milliseconds per check; "x torch" divides by the median
of ``torch.autograd.gradcheck`` (default mode) measured in the same run.

Run: python benchmarks/cold.py [--shapes 20] [--compiled-shapes 5] [--markdown]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import peers  # benchmarks/peers.py: the same peer checks as the peer table

from gradcheck import _references, check_gradients, mlp, problems


def user_loss(params: mlp.Params, x: Any, y: Any, *, task: mlp.Task) -> Any:
    """The seed network's loss as a user writes it with jax.numpy (not one of gradcheck's own)."""
    w1, b1, w2, b2 = params
    a1 = jax.nn.sigmoid(x @ w1.T + b1)
    z2 = (a1 @ w2.T + b2)[:, 0]
    if task == "regression":
        return jnp.mean(0.5 * (y - z2) ** 2)
    return jnp.mean(jax.nn.softplus(z2) - y * z2)


def shapes(count: int, seed: int) -> list[tuple[int, int]]:
    """`count` distinct (hidden, batch) pairs, hidden 1-8 and batch 1-39."""
    rng = np.random.default_rng(seed)
    seen: list[tuple[int, int]] = []
    while len(seen) < count:
        pair = (int(rng.integers(1, 9)), int(rng.integers(1, 40)))
        if pair not in seen:
            seen.append(pair)
    return seen


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def sweep(loss: Any, grad: Any, probs: list[problems.Problem]) -> list[float]:
    """Milliseconds of one `check_gradients` on each problem, in turn."""
    return [timed(partial(check_gradients, loss, grad, *p[:3])) for p in probs]


def new_problems(task: mlp.Task, sizes: list[tuple[int, int]], draw: int) -> list[problems.Problem]:
    """Problems at the given (hidden, batch) sizes, new for each `draw`: a problem checked again reuses its
    references, so each sweep at the same shapes checks problems of its own."""
    return [
        problems.sample(np.random.default_rng([task == "classification", k, draw]), task=task, hidden=h, batch=n)
        for k, (h, n) in enumerate(sizes)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=20)
    parser.add_argument("--compiled-shapes", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    has_torch = importlib.util.find_spec("torch") is not None
    rows: list[tuple[str, str, list[float]]] = []
    for task in mlp.TASKS:
        grad = partial(mlp.closed_form_gradients, task=task)
        losses = {"built-in loss": partial(mlp.loss, task=task), "own jax.numpy loss": partial(user_loss, task=task)}
        # Warm the libraries on a shape outside the sweep (hidden 9).
        warm = problems.sample(np.random.default_rng(99), task=task, hidden=9, batch=41)
        for loss in losses.values():
            check_gradients(loss, grad, *warm[:3])
        sizes = shapes(args.shapes, seed=1 if task == "regression" else 2)

        drawn = partial(new_problems, task, sizes)
        probs = drawn(0)
        for d, (name, loss) in enumerate(losses.items()):
            rows.append((task, f"check_gradients, {name}, first time at each shape", sweep(loss, grad, probs)))
            again = drawn(1 + d)
            rows.append(
                (task, f"check_gradients, {name}, the same shapes again (NumPy path)", sweep(loss, grad, again))
            )
        with _references.unscreened():
            rows.append(
                (
                    task,
                    "check_gradients, built-in loss, the same shapes again, screen off (noise always measured)",
                    sweep(losses["built-in loss"], grad, drawn(3)),
                )
            )
        compiled = probs[: args.compiled_shapes]
        with _references.forced("xla"):
            cold = sweep(losses["built-in loss"], grad, compiled)
            warm_compiled = sweep(losses["built-in loss"], grad, drawn(4)[: args.compiled_shapes])
        rows.append((task, "check_gradients, compiled path, first time at each shape", cold))
        rows.append((task, "check_gradients, compiled path, once compiled (warm)", warm_compiled))
        if has_torch:
            for fast in (False, True):
                checks = [peers.torch_check(p, grad, fast_mode=fast) for p in probs]
                label = f"torch.autograd.gradcheck{' fast_mode' if fast else ''}"
                rows.append((task, label, [timed(c) for c in checks]))
        checks = [peers.scipy_check(p, grad) for p in probs]
        rows.append((task, "scipy.optimize.check_grad", [timed(c) for c in checks]))
    render(rows, has_torch, args.markdown)


def render(rows: list[tuple[str, str, list[float]]], has_torch: bool, markdown: bool) -> None:
    torch_ms = {t: statistics.median(ms) for t, name, ms in rows if name == "torch.autograd.gradcheck"}
    header = ("task", "checker", "ms per check (median)", "range", "x torch")
    lines = []
    for task, name, ms in rows:
        median = statistics.median(ms)
        ratio = f"{median / torch_ms[task]:.2f}" if has_torch else "torch not installed"
        lines.append((task, name, f"{median:.2f}", f"{min(ms):.2f}-{max(ms):.2f}", ratio))
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
        for line in [header, *lines]:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)))
    print(f"\n{jax.devices()[0].platform} backend, jax {jax.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main()
