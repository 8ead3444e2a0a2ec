"""Hand-written derivatives beyond a scalar loss's gradient, checked: a VJP, a Jacobian, a Hessian, a custom rule.

Run: python examples/beyond_scalar.py    (exit code 1: the last two are wrong on purpose)
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import check_custom_rule, check_hessian, check_jacobian, check_vjp


def softmax_vjp(primals, c):
    """The softmax's VJP, s * (c - <c, s>), as derived by hand."""
    (z,) = primals
    s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    return (s * (c - np.dot(c, s)),)


def logistic_loss(w, x, y):
    z = x @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def logistic_hessian_without_mean(w, x, y):
    """X^T diag(s (1 - s)) X, with the 1/N of the mean forgotten."""
    s = 1 / (1 + np.exp(-x @ w))
    return x.T @ (x * (s * (1 - s))[:, None])


@jax.custom_vjp
def logsumexp(x):
    m = jnp.max(x)
    return m + jnp.log(jnp.sum(jnp.exp(x - m)))


def _fwd(x):
    return logsumexp(x), x


def _bwd(x, g):
    return (g * jnp.exp(x - jnp.max(x)),)  # forgets to normalise: softmax is exp(x - m) / sum


logsumexp.defvjp(_fwd, _bwd)

rng = np.random.default_rng(0)
z, x, y, w = rng.normal(size=4), rng.normal(size=(6, 2)), (rng.random(6) > 0.5) * 1.0, rng.normal(size=2)
a = rng.normal(size=(3, 2))
reports = {
    "softmax VJP": check_vjp(lambda z: jax.nn.softmax(z), softmax_vjp, z),
    "Jacobian of A tanh(x)": check_jacobian(lambda v: a @ jnp.tanh(v), lambda v: a * (1 - np.tanh(v) ** 2), w),
    "logistic-regression Hessian": check_hessian(logistic_loss, logistic_hessian_without_mean, w, x, y),
    "custom_vjp logsumexp": check_custom_rule(lambda v: 2.0 * logsumexp(v), z),
}
for name, report in reports.items():
    print(f"== {name}: {report.verdict}")
    if not report.ok:
        print(report)
sys.exit(0 if all(r.ok for r in reports.values()) else 1)
