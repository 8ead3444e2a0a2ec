"""gradcheck against its peers: speed and sensitivity on the same problems, in one run.

Every tool checks the same hand-derived gradient, `mlp.closed_form_gradients`,
of the seed network (inputs 2, hidden 3, batch 8: 13 parameters) for both
tasks, with its DEFAULT tolerances, as a user would call it. Reported per tool
and task:

- first call: the first check in this process (after ``jax.clear_caches()``),
  which includes tracing and compiling for the JAX-based tools;
- warm time per check: the median over repeats of the same check (at most
  ``--repeats``, and no more than fit in ``TIME_BUDGET_S``), and checks/s;
- x floor: the warm time over the floor, the median time of one NumPy
  ``mlp.loss`` plus one ``mlp.closed_form_gradients`` (what any check must
  at least compute once);
- smallest relative error flagged: the largest-magnitude entry of the closed
  form is multiplied by ``1 + rel`` and ``log10(rel)`` bisected in [-17, 0];
  median and worst over ``--problems`` typical problems. A tool that flags the
  correct closed form (rel = 0) raised a false alarm, and one that does not
  flag rel = 1 (the entry doubled) misses it: both are shown as such.

What "flagged" means for each tool (its defaults, documented in its own docs):

- gradcheck ``check_gradients``: ``report.verdict == "mismatch"``;
- ``torch.autograd.gradcheck`` (default and ``fast_mode=True``; eps 1e-6,
  atol 1e-5, rtol 1e-3): it returns False (``raise_exception=False``). The
  network is a ``torch.autograd.Function`` whose forward is the NumPy loss and
  whose backward returns the closed form times ``grad_output``, so torch checks
  the closed form, not its own autograd;
- ``jax.test_util.check_grads(f, (theta,), order=1, modes=["rev"])`` inside
  ``jax.enable_x64(True)`` (float64: atol = rtol = 1e-5, eps 1e-4, one random
  direction): it raises AssertionError. ``f`` is a ``jax.custom_vjp`` whose
  backward returns the closed form through ``jax.pure_callback``;
- ``scipy.optimize.check_grad`` returns ``err``, the 2-norm of the closed form
  minus a forward difference (step sqrt(eps) = 1.5e-8), and documents no
  threshold. We flag ``err > 1e-6 * max(1, ||g||)`` (``SCIPY_THRESHOLD``): a
  forward difference with that step is accurate to about 1e-8 per entry here,
  so this leaves a margin of about 10x over its own error (the note under the
  table gives err/||g|| on the correct closed form, so readers can judge);
- ``numdifftools.Gradient`` (central differences with Richardson
  extrapolation) with ``full_output=True``: flagged when some entry has
  ``|cf - nd| > atol + rtol |nd| + error_estimate`` with ``np.allclose``'s
  defaults (rtol 1e-5, atol 1e-8), i.e. ``np.allclose`` widened by the tool's
  own error estimate (which is about 1e-13 here, so it is ``np.allclose``).

A tool that is not installed gets "not installed (pip install ...)" rows.

Run: python benchmarks/peers.py [--problems 5] [--repeats 50] [--quick] [--markdown]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import numpy as np

import gradcheck
from gradcheck import mlp, problems

#: A gradient under test: ``grad_fn(params, x, y)``, like `mlp.closed_form_gradients` with its task bound.
GradFn = Callable[[mlp.Params, np.ndarray, np.ndarray], mlp.Params]
#: One run of a tool on one problem and gradient; True when the tool flags the gradient.
Check = Callable[[], bool]

#: Bisection interval for log10 of the injected relative error: 1e-17 is below
#: float64 resolution (1 + 1e-17 == 1), and 1 doubles the entry.
LOG10_REL_RANGE = (-17.0, 0.0)
#: Bisection steps: 25 halvings of 17 decades resolve the threshold to 1e-6 decades
#: (the smoke run's 8 to 0.07 decades, enough to show the order of magnitude).
BISECTION_STEPS = 25
QUICK_BISECTION_STEPS = 8
#: Warm timing stops after this many seconds per row (at least `MIN_REPEATS`), so slow tools stay affordable.
TIME_BUDGET_S = 2.0
MIN_REPEATS = 3
#: Repeats of the floor (one NumPy loss plus one closed form: tens of microseconds).
FLOOR_REPEATS = 2000
#: scipy's check_grad has no threshold; we flag ``err > SCIPY_THRESHOLD * max(1, ||g||)`` (see the docstring).
SCIPY_THRESHOLD = 1e-6


# --- the problem as a flat vector -----------------------------------------------


def flatten(params: Sequence[Any]) -> np.ndarray:
    """The leaves of a `Params`, raveled and concatenated (NumPy)."""
    return np.concatenate([np.ravel(np.asarray(a)) for a in params])


def unflatten(theta: Any, shapes: Sequence[tuple[int, ...]]) -> mlp.Params:
    """Inverse of `flatten`, for a NumPy or JAX vector (views, no copies)."""
    offsets = np.cumsum([0, *(math.prod(s) for s in shapes)])
    return mlp.Params(*(theta[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)))


@dataclass(frozen=True)
class Flat:
    """One problem and one gradient under test, as functions of the flat parameter vector."""

    prob: problems.Problem
    grad_fn: GradFn

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The shapes of the parameter leaves."""
        return [a.shape for a in self.prob.params]

    @property
    def theta(self) -> np.ndarray:
        """The point to check at, flat."""
        return flatten(self.prob.params)

    def loss(self, theta: Any) -> Any:
        """The loss at `theta`: a NumPy float for a NumPy vector, a JAX scalar for a JAX one."""
        return mlp.loss(unflatten(theta, self.shapes), self.prob.x, self.prob.y, task=self.prob.task)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """The gradient under test at `theta`, flat."""
        return flatten(self.grad_fn(unflatten(np.asarray(theta), self.shapes), self.prob.x, self.prob.y))


def nudged(task: mlp.Task, k: int, rel: float) -> GradFn:
    """The closed form with its flat entry `k` multiplied by ``1 + rel``."""

    def grad_fn(params: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = flatten(mlp.closed_form_gradients(params, x, y, task=task))
        g[k] *= 1 + rel
        return unflatten(g, [a.shape for a in params])

    return grad_fn


# --- the tools: each turns (problem, gradient under test) into a Check ----------


def gradcheck_check(prob: problems.Problem, grad_fn: GradFn) -> Check:
    loss = partial(mlp.loss, task=prob.task)
    return lambda: gradcheck.check_gradients(loss, grad_fn, *prob[:3]).verdict == "mismatch"


#: Problems per `check_batch` call in its row: the warm time per check is the
#: call's time divided by this.
BATCH = 1024


def gradcheck_batch_check(prob: problems.Problem, grad_fn: GradFn, size: int = BATCH) -> Check:
    """`check_batch` on `size` copies of the problem; flagged when problem 0 is a mismatch.

    The closed form runs on the whole stack (`mlp.closed_form_gradients` is
    batch-aware); the gradient under test differs from it by a fixed factor
    per entry (1 + rel on the nudged entry), applied to every problem.
    """
    exact = flatten(mlp.closed_form_gradients(*prob[:3], task=prob.task))
    factor = unflatten(
        np.where(exact != 0, flatten(grad_fn(*prob[:3])) / np.where(exact != 0, exact, 1), 1.0),
        [a.shape for a in prob.params],
    )
    params = mlp.Params(*(np.repeat(a[None], size, axis=0) for a in prob.params))
    x, y = np.repeat(prob.x[None], size, axis=0), np.repeat(prob.y[None], size, axis=0)

    def batched(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        return mlp.Params(*(g * f for g, f in zip(mlp.closed_form_gradients(p, x, y, task=prob.task), factor)))

    loss = partial(mlp.loss, task=prob.task)
    return lambda: gradcheck.check_batch(loss, batched, params, x, y).verdicts[0] == "mismatch"


def torch_check(prob: problems.Problem, grad_fn: GradFn, *, fast_mode: bool) -> Check:
    import torch

    flat = Flat(prob, grad_fn)

    class ClosedForm(torch.autograd.Function):
        """The loss, with the closed form (not torch's autograd) as its backward."""

        @staticmethod
        def forward(ctx: Any, theta: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(theta)
            return torch.tensor(float(flat.loss(theta.detach().numpy())), dtype=torch.float64)

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
            (theta,) = ctx.saved_tensors
            return grad_output * torch.from_numpy(flat.grad(theta.detach().numpy()))

    theta = torch.tensor(flat.theta, dtype=torch.float64, requires_grad=True)
    return lambda: not torch.autograd.gradcheck(ClosedForm.apply, (theta,), fast_mode=fast_mode, raise_exception=False)


def jax_check(prob: problems.Problem, grad_fn: GradFn) -> Check:
    from jax.test_util import check_grads

    flat = Flat(prob, grad_fn)

    @jax.custom_vjp
    def loss(theta: jax.Array) -> Any:
        return flat.loss(theta)

    def fwd(theta: jax.Array) -> tuple[Any, jax.Array]:
        return loss(theta), theta

    def bwd(theta: jax.Array, cotangent: jax.Array) -> tuple[jax.Array]:
        shape = jax.ShapeDtypeStruct(theta.shape, theta.dtype)
        return (cotangent * jax.pure_callback(flat.grad, shape, theta),)

    loss.defvjp(fwd, bwd)

    def check() -> bool:
        with jax.enable_x64(True):
            try:
                check_grads(loss, (jax.numpy.asarray(flat.theta),), order=1, modes=["rev"])
            except AssertionError:
                return True
        return False

    return check


def scipy_check(prob: problems.Problem, grad_fn: GradFn) -> Check:
    from scipy.optimize import check_grad

    flat = Flat(prob, grad_fn)
    theta = flat.theta

    def check() -> bool:
        err = check_grad(flat.loss, flat.grad, theta)
        return bool(err > SCIPY_THRESHOLD * max(1.0, float(np.linalg.norm(flat.grad(theta)))))

    return check


def numdifftools_check(prob: problems.Problem, grad_fn: GradFn) -> Check:
    import numdifftools as nd

    flat = Flat(prob, grad_fn)
    theta = flat.theta
    gradient = nd.Gradient(flat.loss, full_output=True)

    def check() -> bool:
        estimate, error, *_ = gradient(theta)
        tol = 1e-8 + 1e-5 * np.abs(estimate) + np.ravel(error)  # np.allclose's defaults, plus nd's error estimate
        return bool((np.abs(flat.grad(theta) - estimate) > tol).any())

    return check


@dataclass(frozen=True)
class Tool:
    """One row per task: a name, how to run it, and what it needs installed."""

    name: str
    prepare: Callable[[problems.Problem, GradFn], Check]
    requires: tuple[str, ...] = ()  # importable module names
    install: str = ""  # the pip command that provides them
    per_call: int = 1  # problems checked per call (the warm time is divided by it)
    # How to prepare the checks of the sensitivity search, if not as `prepare`.
    sensitivity: Callable[[problems.Problem, GradFn], Check] | None = None


def tools() -> list[Tool]:
    """The tools, in table order. A new row is one ``prepare(prob, grad_fn) -> Check`` function and one entry here."""
    torch_install = "pip install torch"
    return [
        Tool("gradcheck check_gradients", gradcheck_check),
        # Its sensitivity search uses 4 copies: every flagged copy is re-checked on its own.
        Tool(
            f"gradcheck check_batch (B={BATCH})",
            gradcheck_batch_check,
            per_call=BATCH,
            sensitivity=partial(gradcheck_batch_check, size=4),
        ),
        Tool("torch gradcheck", partial(torch_check, fast_mode=False), ("torch",), torch_install),
        Tool("torch gradcheck fast_mode", partial(torch_check, fast_mode=True), ("torch",), torch_install),
        Tool("jax check_grads (rev)", jax_check),
        Tool("scipy check_grad", scipy_check, ("scipy",), "pip install scipy"),
        Tool("numdifftools Gradient", numdifftools_check, ("numdifftools",), "pip install numdifftools"),
    ]


# --- measurement ------------------------------------------------------------------


def median_time(fn: Callable[[], object], repeats: int, budget_s: float = math.inf) -> float:
    """Median seconds per call of `fn` over `repeats` calls, or fewer once `budget_s` is spent."""
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < MIN_REPEATS or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def floor_time(prob: problems.Problem, repeats: int) -> float:
    """One NumPy loss and one closed-form gradient: what every check computes at least once."""

    def once() -> None:
        mlp.loss(*prob[:3], task=prob.task)
        mlp.closed_form_gradients(*prob[:3], task=prob.task)

    return median_time(once, repeats)


def smallest_flagged(tool: Tool, prob: problems.Problem, steps: int) -> float:
    """The smallest relative error in the largest gradient entry that `tool` flags.

    NaN when the tool flags the correct closed form (a false alarm), inf when
    it does not flag the entry doubled.
    """
    k = int(np.argmax(np.abs(flatten(mlp.closed_form_gradients(*prob[:3], task=prob.task)))))

    def flagged(rel: float) -> bool:
        return (tool.sensitivity or tool.prepare)(prob, nudged(prob.task, k, rel))()

    lo, hi = LOG10_REL_RANGE
    if flagged(0.0):
        return math.nan
    if not flagged(10**hi):
        return math.inf
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if flagged(10**mid) else (mid, hi)
    return float(10**hi)


@dataclass(frozen=True)
class Row:
    tool: str
    task: str
    first_s: float
    warm_s: float
    floor_s: float
    limits: list[float]  # smallest relative error flagged, per problem


def measure(tool: Tool, task: mlp.Task, args: argparse.Namespace, floor_s: float) -> Row:
    prob = problems.sample(np.random.default_rng(0), task=task)
    check = tool.prepare(prob, partial(mlp.closed_form_gradients, task=task))
    jax.clear_caches()
    t0 = time.perf_counter()
    check()
    first = time.perf_counter() - t0
    warm = median_time(check, args.repeats, TIME_BUDGET_S) / tool.per_call
    samples = [problems.sample(np.random.default_rng(s), task=task) for s in range(args.problems)]
    limits = [smallest_flagged(tool, p, args.steps) for p in samples]
    return Row(tool.name, task, first, warm, floor_s, limits)


def scipy_baseline(task: mlp.Task, count: int) -> list[float]:
    """err / ||g|| of scipy's check_grad on the correct closed form, per problem."""
    from scipy.optimize import check_grad

    out = []
    for s in range(count):
        flat = Flat(problems.sample(np.random.default_rng(s), task=task), partial(mlp.closed_form_gradients, task=task))
        out.append(check_grad(flat.loss, flat.grad, flat.theta) / np.linalg.norm(flat.grad(flat.theta)))
    return out


# --- output -------------------------------------------------------------------------


def seconds(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    return f"{t * 1e3:.3g} ms" if t >= 1e-3 else f"{t * 1e6:.3g} µs"


def limit_summary(limits: list[float]) -> tuple[str, str]:
    """Median and worst smallest relative error flagged, or how the tool failed."""
    alarms = sum(math.isnan(v) for v in limits)
    if alarms:
        return f"false alarm on {alarms}/{len(limits)}", ""
    misses = sum(math.isinf(v) for v in limits)
    worst = f"> 1 (missed on {misses}/{len(limits)})" if misses else f"{max(limits):.1e}"
    return f"{statistics.median(limits):.1e}", worst


def versions() -> str:
    parts = []
    for dist in ("gradcheck", "numpy", "jax", "jaxlib", "torch", "scipy", "numdifftools"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{dist} not installed")
    return ", ".join(parts)


def table(header: list[str], rows: list[list[str]], *, markdown: bool) -> str:
    if markdown:
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


HEADER = ["tool", "task", "first call", "warm / check", "checks/s", "x floor", "rel. error flagged: median", "worst"]


def cells(row: Row) -> list[str]:
    median, worst = limit_summary(row.limits)
    return [
        row.tool,
        row.task,
        seconds(row.first_s),
        seconds(row.warm_s),
        f"{1 / row.warm_s:.0f}",
        f"{row.warm_s / row.floor_s:.2g}",
        median,
        worst,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--problems", type=int, help="typical problems for the sensitivity search (default 5)")
    parser.add_argument("--repeats", type=int, help="most warm checks timed per row (default 50)")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table (for the docs)")
    args = parser.parse_args(argv)
    args.problems = args.problems or (1 if args.quick else 5)
    args.repeats = args.repeats or (MIN_REPEATS if args.quick else 50)
    args.steps = QUICK_BISECTION_STEPS if args.quick else BISECTION_STEPS

    floors = {t: floor_time(problems.sample(np.random.default_rng(0), task=t), FLOOR_REPEATS) for t in mlp.TASKS}
    body: list[list[str]] = []
    for tool in tools():
        missing = [m for m in tool.requires if importlib.util.find_spec(m) is None]
        for task in mlp.TASKS:
            if missing:
                body.append([tool.name, task, f"not installed ({tool.install})", *[""] * (len(HEADER) - 3)])
            else:
                body.append(cells(measure(tool, task, args, floors[task])))

    print(
        f"Seed network (inputs 2, hidden 3, batch 8: 13 parameters). Sensitivity: {args.problems} typical "
        f"problem(s), {args.steps} bisection steps. Warm: median of at most {args.repeats} checks "
        f"({TIME_BUDGET_S:g} s budget per row)."
    )
    print(
        f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"Versions: {versions()}")
    floor_text = ", ".join(f"{task} {seconds(s)}" for task, s in floors.items())
    print(f"Floor (one NumPy loss + one closed-form gradient): {floor_text}")
    print()
    print(table(HEADER, body, markdown=args.markdown))
    print()
    print(
        f"Flagged: scipy check_grad when err > {SCIPY_THRESHOLD:g} * max(1, ||g||); numdifftools when "
        "|cf - nd| > 1e-8 + 1e-5 |nd| + error_estimate; the others by their own verdicts (see the docstring)."
    )
    if importlib.util.find_spec("scipy") is not None:
        for task in mlp.TASKS:
            ratios = scipy_baseline(task, args.problems)
            print(
                f"scipy check_grad on the correct closed form ({task}): err/||g|| median "
                f"{statistics.median(ratios):.1e}, worst {max(ratios):.1e}"
            )


if __name__ == "__main__":
    main()
