"""A hand-written Hessian checked: logistic regression's, right, without the mean's 1/N, and one triangle only.

Run: python examples/check_hessian.py
"""

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import check_hessian


def loss(w, x, y):
    """The mean log loss of logistic regression, sum_n softplus(x_n w) - y_n x_n w, over N."""
    z = x @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def hessian(w, x, y):
    """X^T diag(s (1 - s)) X / N, with s = sigmoid(X w)."""
    s = 1 / (1 + np.exp(-x @ w))
    return x.T @ (x * (s * (1 - s))[:, None]) / len(y)


def hessian_without_mean(w, x, y):
    """The 1/N of the mean forgotten."""
    return hessian(w, x, y) * len(y)


def hessian_upper_triangle(w, x, y):
    """Filled in by a loop over j >= i, and never mirrored."""
    return np.triu(hessian(w, x, y))


rng = np.random.default_rng(0)
x, w = rng.normal(size=(6, 3)), rng.normal(size=3)
y = (rng.random(6) > 0.5).astype(float)
for hess_fn in (hessian, hessian_without_mean, hessian_upper_triangle):
    report = check_hessian(loss, hess_fn, w, x, y)
    print(f"== {hess_fn.__name__}: {report.verdict}")
    print(report)
