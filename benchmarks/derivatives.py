"""Every check in gradcheck/_derivatives.py against torch.autograd.gradcheck and jax.test_util.check_grads, in one run.

Five hand-written derivatives, right, each tool with its defaults as a user
calls it:

- check_vjp: the softmax's VJP ``s * (c - <c, s>)`` at a point of size 8;
- check_jacobian: the Jacobian of ``A tanh(x)``, A of shape (4, 6):
  ``A * (1 - tanh(x)^2)``;
- check_jvp: the elementwise JVP of ``tanh`` at a point of size 6:
  ``t * (1 - tanh(x)^2)``;
- check_hessian: the logistic-regression Hessian ``X^T diag(s(1 - s)) X / N``
  (X of shape (20, 5), s = sigmoid(X w));
- check_custom_rule: a `jax.custom_vjp` log-sum-exp whose rule returns
  ``c * softmax(x)`` (size 8).

How each peer is wired to the hand-written rule:

- VJP and Jacobian: torch checks a `torch.autograd.Function` whose backward is
  the hand-written VJP (``c @ J`` for the Jacobian); jax checks a
  `jax.custom_vjp` whose backward calls it through `jax.pure_callback`
  (``modes=["rev"]``).
- JVP: torch checks a `torch.autograd.Function` with a `jvp` staticmethod (its
  forward-mode rule; the forward saves the input with ``ctx.save_for_forward``)
  with ``check_forward_ad=True, check_backward_ad=False`` (the Function has no
  backward, and ``check_undefined_grad`` is a backward check, so it is off);
  jax checks a `jax.custom_jvp` whose rule calls the JVP through
  `jax.pure_callback` (``modes=["fwd"]``).
- Hessian: a torch user with a hand-written gradient and Hessian writes two
  Functions: the loss, whose backward returns ``grad_output * Gradient(w)``,
  and ``Gradient``, whose forward is the hand-written gradient and whose
  backward is the hand-written Hessian-vector product ``H^T v``. The loss is
  then twice differentiable through the hand-written rules, and
  `torch.autograd.gradgradcheck` on it compares the Hessian with finite
  differences of the hand-written gradient (and does not check the gradient
  itself: ``gradcheck`` does that). jax checks the same construction with
  `jax.custom_vjp` and `jax.pure_callback` (``order=2, modes=["rev"]``: the
  first order checks the gradient, the second the Hessian).
- Custom rule: the natural peer is ``check_grads`` on the `jax.custom_vjp`
  function itself, which compares its rule with finite differences only; torch
  checks the equivalent `torch.autograd.Function` (forward
  ``torch.logsumexp``, backward the same rule in torch ops). gradcheck's
  ``check_custom_rule`` compares the rule with autodiff of the function's own
  implementation, the rule removed, and with finite differences. The
  `jax.custom_vjp` function is built once per ``rel`` and reused, as a
  user's module defines it once; the other cases' wrappers (the Functions,
  the custom_vjp/custom_jvp around a callback) are built anew in each check,
  as before.

All jax checks run in float64 (``jax.enable_x64(True)``: atol = rtol = 1e-5,
eps 1e-4); torch's in float64 with its defaults (eps 1e-6, atol 1e-5, rtol
1e-3), in default and ``fast_mode=True``. Reported: the median time of one
check, warm (``--repeats``), and the smallest relative error in the
derivative's largest entry that the tool flags (bisection on log10(rel) in
[-17, 0], as benchmarks/peers.py; the Hessian's largest entry is on its
diagonal, a positive semi-definite matrix's, so the wrong Hessian stays
symmetric).

Run: python benchmarks/derivatives.py [--repeats 20] [--markdown]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import check_custom_rule, check_hessian, check_jacobian, check_jvp, check_vjp

rng = np.random.default_rng(0)
Z = rng.normal(size=8)
A, X = rng.normal(size=(4, 6)), rng.normal(size=6)
T = rng.normal(size=6)  # the JVP's point
XS, YS, W = rng.normal(size=(20, 5)), rng.integers(0, 2, size=20).astype(float), rng.normal(size=5) * 0.5
L = rng.normal(size=8)  # the log-sum-exp's point


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


def tanh_jvp(x: np.ndarray, t: np.ndarray, rel: float) -> np.ndarray:
    d = 1 - np.tanh(x) ** 2  # the Jacobian's diagonal
    d[int(np.argmax(np.abs(d)))] *= 1 + rel
    return d * t


def logistic_loss(w: Any, X: Any, y: Any) -> Any:
    z = X @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def logistic_gradient(w: np.ndarray) -> np.ndarray:
    s = 1 / (1 + np.exp(-XS @ w))
    return XS.T @ (s - YS) / len(YS)


def logistic_hessian(w: np.ndarray, rel: float) -> np.ndarray:
    s = 1 / (1 + np.exp(-XS @ w))
    h = XS.T @ (XS * (s * (1 - s))[:, None]) / len(YS)
    i, k = np.unravel_index(np.argmax(np.abs(h)), h.shape)
    h[i, k] *= 1 + rel
    return h


@functools.cache
def logsumexp_rule(rel: float) -> Callable[..., Any]:
    """A `jax.custom_vjp` log-sum-exp whose rule's largest entry is off by ``1 + rel`` (one function per rel)."""

    @jax.custom_vjp
    def logsumexp(x: Any) -> Any:
        m = jnp.max(x)
        return m + jnp.log(jnp.sum(jnp.exp(x - m)))

    def fwd(x: Any) -> Any:
        return logsumexp(x), x

    def bwd(x: Any, c: Any) -> Any:
        s = jax.nn.softmax(x)
        return (c * s * (1 + rel * (jnp.arange(x.size) == jnp.argmax(s))),)

    logsumexp.defvjp(fwd, bwd)
    return logsumexp


# The VJP and Jacobian cases: (forward in NumPy, forward in jax.numpy, point, VJP in NumPy given (x, c, rel)).
CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any], np.ndarray, Callable[..., np.ndarray]]] = {
    "softmax VJP (8)": (softmax_np, jax.nn.softmax, Z, softmax_vjp),
    "Jacobian of A tanh(x) (4x6)": (
        lambda x: A @ np.tanh(x),
        lambda x: A @ jnp.tanh(x),
        X,
        lambda x, c, rel: c @ jacobian(x, rel),
    ),
}
JVP, HESSIAN, CUSTOM = "tanh JVP (6)", "logistic Hessian (20x5)", "custom_vjp log-sum-exp (8)"


def gradcheck_flags(name: str, rel: float) -> bool:
    if name == JVP:
        return check_jvp(jnp.tanh, lambda p, t: tanh_jvp(p[0], t[0], rel), T).verdict == "mismatch"
    if name == HESSIAN:
        hess = lambda w, *_: logistic_hessian(w, rel)  # noqa: E731
        return check_hessian(logistic_loss, hess, W, XS, YS).verdict == "mismatch"
    if name == CUSTOM:
        return check_custom_rule(logsumexp_rule(rel), L).verdict == "mismatch"
    _, f, x, vjp = CASES[name]
    if name.startswith("softmax"):
        return check_vjp(f, lambda p, c: (vjp(p[0], c, rel),), x).verdict == "mismatch"
    return check_jacobian(f, lambda x: jacobian(x, rel), x).verdict == "mismatch"


def torch_flags(name: str, rel: float, *, fast_mode: bool = False) -> bool:
    import torch

    if name == JVP:
        return torch_jvp_flags(rel, fast_mode)
    if name == HESSIAN:
        return torch_hessian_flags(rel, fast_mode)
    if name == CUSTOM:
        return torch_custom_flags(rel, fast_mode)
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


def torch_jvp_flags(rel: float, fast_mode: bool) -> bool:
    import torch

    class Hand(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
            ctx.save_for_forward(t)
            return torch.from_numpy(np.tanh(t.detach().numpy()))

        @staticmethod
        def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
            (t,) = ctx.saved_tensors
            return torch.from_numpy(tanh_jvp(t.detach().numpy(), tangent.detach().numpy(), rel))

    t = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    return not torch.autograd.gradcheck(
        Hand.apply,
        (t,),
        check_forward_ad=True,
        check_backward_ad=False,
        check_undefined_grad=False,
        fast_mode=fast_mode,
        raise_exception=False,
    )


def torch_hessian_flags(rel: float, fast_mode: bool) -> bool:
    import torch

    class Gradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(w)
            return torch.from_numpy(logistic_gradient(w.detach().numpy()))

        @staticmethod
        def backward(ctx: Any, v: torch.Tensor) -> torch.Tensor:
            (w,) = ctx.saved_tensors
            return torch.from_numpy(logistic_hessian(w.detach().numpy(), rel).T @ v.detach().numpy())

    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(w)
            z = XS @ w.detach().numpy()
            return torch.tensor(np.mean(np.logaddexp(0, z) - YS * z), dtype=torch.float64)

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
            (w,) = ctx.saved_tensors
            return grad_output * Gradient.apply(w)  # differentiable: double backward goes through Gradient's

    w = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    return not torch.autograd.gradgradcheck(Loss.apply, (w,), fast_mode=fast_mode, raise_exception=False)


def torch_custom_flags(rel: float, fast_mode: bool) -> bool:
    import torch

    class LogSumExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return torch.logsumexp(x, dim=0)

        @staticmethod
        def backward(ctx: Any, c: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            s = torch.softmax(x, dim=0)
            return c * s * (1 + rel * (torch.arange(x.numel()) == torch.argmax(s)))

    x = torch.tensor(L, dtype=torch.float64, requires_grad=True)
    return not torch.autograd.gradcheck(LogSumExp.apply, (x,), fast_mode=fast_mode, raise_exception=False)


def jax_flags(name: str, rel: float) -> bool:
    from jax.test_util import check_grads

    if name in (JVP, HESSIAN, CUSTOM):
        fn, point, order, modes = jax_function(name, rel)
        with jax.enable_x64(True):
            try:
                check_grads(fn, (jnp.asarray(point),), order=order, modes=modes)
            except AssertionError:
                return True
        return False
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


def jax_function(name: str, rel: float) -> tuple[Callable[..., Any], np.ndarray, int, list[str]]:
    """The function check_grads checks for the JVP, Hessian and custom-rule cases: (f, point, order, modes)."""
    if name == CUSTOM:
        return logsumexp_rule(rel), L, 1, ["rev"]
    if name == JVP:

        @jax.custom_jvp
        def tanh(t: Any) -> Any:
            return jnp.tanh(t)

        @tanh.defjvp
        def _(primals: Any, tangents: Any) -> Any:
            (t,), (dt,) = primals, tangents
            shape = jax.ShapeDtypeStruct(t.shape, t.dtype)
            return tanh(t), jax.pure_callback(lambda t, dt: tanh_jvp(np.asarray(t), np.asarray(dt), rel), shape, t, dt)

        return tanh, T, 1, ["fwd"]

    @jax.custom_vjp
    def gradient(w: Any) -> Any:
        return jax.pure_callback(lambda w: logistic_gradient(np.asarray(w)), jax.ShapeDtypeStruct(w.shape, w.dtype), w)

    def gradient_fwd(w: Any) -> Any:
        return gradient(w), w

    def gradient_bwd(w: Any, v: Any) -> Any:  # the hand-written Hessian-vector product
        shape = jax.ShapeDtypeStruct(w.shape, w.dtype)
        return (jax.pure_callback(lambda w, v: logistic_hessian(np.asarray(w), rel).T @ np.asarray(v), shape, w, v),)

    gradient.defvjp(gradient_fwd, gradient_bwd)

    @jax.custom_vjp
    def loss(w: Any) -> Any:
        return logistic_loss(w, XS, YS)

    loss.defvjp(lambda w: (loss(w), w), lambda w, c: (c * gradient(w),))
    return loss, W, 2, ["rev"]


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
    for name in (*CASES, JVP, HESSIAN, CUSTOM):
        for tool, flags in tools.items():
            check = lambda rel, flags=flags, name=name: flags(name, rel)  # noqa: E731
            shown = tool.replace("gradcheck", "gradgradcheck") if name == HESSIAN and tool.startswith("torch") else tool
            rows.append((name, shown, f"{median_ms(check, args.repeats):.2f}", smallest_flagged(check)))
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
