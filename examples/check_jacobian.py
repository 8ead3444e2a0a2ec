"""A hand-written Jacobian checked: A tanh(x), right, transposed, and with tanh's slope forgotten.

Run: python examples/check_jacobian.py
"""

import jax.numpy as jnp
import numpy as np

from gradcheck import check_jacobian

rng = np.random.default_rng(0)
a, x = rng.normal(size=(3, 2)), rng.normal(size=2)


def f(x):
    return a @ jnp.tanh(x)


def jacobian(x):
    """J[i, j] = A[i, j] sech^2(x_j): jax.jacrev's layout, outputs by inputs (3, 2)."""
    return a * (1 - np.tanh(x) ** 2)


def jacobian_transposed(x):
    """Inputs by outputs (2, 3): the layout of the matrix a VJP multiplies by."""
    return jacobian(x).T


def jacobian_without_slope(x):
    """A alone: the chain rule's sech^2(x) forgotten."""
    return a


for jac_fn in (jacobian, jacobian_transposed, jacobian_without_slope):
    report = check_jacobian(f, jac_fn, x)
    print(f"== {jac_fn.__name__}: {report.verdict}")
    print(report)
