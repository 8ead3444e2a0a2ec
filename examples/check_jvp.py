"""A hand-written JVP checked: an elementwise function's forward-mode rule, right and with the wrong derivative.

Run: python examples/check_jvp.py
"""

import jax
import numpy as np

from gradcheck import check_jvp


def softplus_jvp(primals, tangents):
    """d softplus(x) = sigmoid(x) dx, element by element."""
    (x,), (t,) = primals, tangents
    return t / (1 + np.exp(-x))


def softplus_jvp_wrong_derivative(primals, tangents):
    """sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) where sigmoid(x) belongs: one derivative too many."""
    (x,), (t,) = primals, tangents
    s = 1 / (1 + np.exp(-x))
    return s * (1 - s) * t


x = np.random.default_rng(0).normal(size=5)
for jvp_fn in (softplus_jvp, softplus_jvp_wrong_derivative):
    report = check_jvp(jax.nn.softplus, jvp_fn, x)
    print(f"== {jvp_fn.__name__}: {report.verdict}")
    print(report)
