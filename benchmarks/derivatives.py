"""check_vjp and check_jacobian against torch.autograd.gradcheck and jax.test_util.check_grads, in one run.

Two hand-written derivatives, right, each tool with its defaults as a user
calls it:

- the softmax's VJP ``s * (c - <c, s>)`` at a point of size 8;
- the Jacobian of ``A tanh(x)``, A of shape (4, 6): ``A * (1 - tanh(x)^2)``.

torch checks a `torch.autograd.Function` whose backward is the hand-written
VJP (``c @ J`` for the Jacobian); jax checks a `jax.custom_vjp` whose backward
calls it through `jax.pure_callback` (float64, ``modes=["rev"]``). Reported:
the median time of one check (``--repeats``), and the smallest relative error
in the derivative's largest entry that the tool flags (bisection on
log10(rel) in [-17, 0], as benchmarks/peers.py).

Run: python benchmarks/derivatives.py [--repeats 20] [--markdown]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import check_jacobian, check_vjp

rng = np.random.default_rng(0)
Z = rng.normal(size=8)
A, X = rng.normal(size=(4, 6)), rng.normal(size=6)


def softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def softmax_vjp(z: np.ndarray, c: np.ndarray, rel: float) -> np.ndarray:
    s = softmax_np(z)
    g = s * (c - np.dot(c, s))
    k = int(np.argmax(np.abs(g)))
    g[k] *= 1 + rel
    return g


def jacobian(x: np.ndarray, rel: float) -> np.ndarray:
    j = A * (1 - np.tanh(x) ** 2)
    i, k = np.unravel_index(np.argmax(np.abs(j)), j.shape)
    j[i, k] *= 1 + rel
    return j


# Each case: (forward in NumPy, forward in jax.numpy, point, VJP in NumPy given (x, c, rel)).
CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any], np.ndarray, Callable[..., np.ndarray]]] = {
    "softmax VJP (8)": (softmax_np, jax.nn.softmax, Z, softmax_vjp),
    "Jacobian of A tanh(x) (4x6)": (
        lambda x: A @ np.tanh(x),
        lambda x: A @ jnp.tanh(x),
        X,
        lambda x, c, rel: c @ jacobian(x, rel),
    ),
}


def gradcheck_flags(name: str, rel: float) -> bool:
    _, f, x, vjp = CASES[name]
    if name.startswith("softmax"):
        return check_vjp(f, lambda p, c: (vjp(p[0], c, rel),), x).verdict == "mismatch"
    return check_jacobian(f, lambda x: jacobian(x, rel), x).verdict == "mismatch"


def torch_flags(name: str, rel: float, *, fast_mode: bool = False) -> bool:
    import torch

    f_np, _, x, vjp = CASES[name]

    class Hand(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(t)
            return torch.from_numpy(f_np(t.detach().numpy()))

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
            (t,) = ctx.saved_tensors
            return torch.from_numpy(vjp(t.detach().numpy(), grad_output.detach().numpy(), rel))

    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    return not torch.autograd.gradcheck(Hand.apply, (t,), fast_mode=fast_mode, raise_exception=False)


def jax_flags(name: str, rel: float) -> bool:
    from jax.test_util import check_grads

    _, f, x, vjp = CASES[name]

    @jax.custom_vjp
    def g(t: Any) -> Any:
        return f(t)

    def fwd(t: Any) -> Any:
        return f(t), t

    def bwd(t: Any, c: Any) -> Any:
        shape = jax.ShapeDtypeStruct(t.shape, t.dtype)
        return (jax.pure_callback(lambda t, c: vjp(np.asarray(t), np.asarray(c), rel), shape, t, c),)

    g.defvjp(fwd, bwd)
    with jax.enable_x64(True):
        try:
            check_grads(g, (jnp.asarray(x),), order=1, modes=["rev"])
        except AssertionError:
            return True
    return False


def smallest_flagged(flags: Callable[[float], bool], steps: int = 20) -> str:
    if flags(0.0):
        return "false alarm"
    if not flags(1.0):
        return "misses 1"
    lo, hi = -17.0, 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if flags(10**mid) else (mid, hi)
    return f"{10**hi:.1e}"


def median_ms(flags: Callable[[float], bool], repeats: int) -> float:
    flags(0.0)  # warm: first-call costs are benchmarks/cold.py's subject
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        flags(0.0)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    tools: dict[str, Callable[[str, float], bool]] = {"gradcheck": gradcheck_flags, "jax check_grads": jax_flags}
    if importlib.util.find_spec("torch") is not None:
        tools["torch gradcheck"] = torch_flags
        tools["torch gradcheck fast_mode"] = lambda n, r: torch_flags(n, r, fast_mode=True)
    rows = []
    for name in CASES:
        for tool, flags in tools.items():
            check = lambda rel, flags=flags, name=name: flags(name, rel)  # noqa: E731
            rows.append((name, tool, f"{median_ms(check, args.repeats):.2f}", smallest_flagged(check)))
    header = ("derivative", "tool", "ms per check", "smallest relative error flagged")
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in (header, *rows):
            print("  ".join(f"{c:<28}" for c in row))


if __name__ == "__main__":
    main()
