"""A hand-written VJP checked: softmax's backward pass, right and with the normaliser's term forgotten.

Run: python examples/check_vjp.py
"""

import jax
import numpy as np

from gradcheck import check_vjp


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_vjp(primals, c):
    """ds_i/dz_j = s_i (delta_ij - s_j), so the VJP is J^T c = s * (c - <c, s>), row by row."""
    (z,) = primals
    s = softmax(z)
    return (s * (c - (c * s).sum(axis=-1, keepdims=True)),)


def softmax_vjp_diagonal_only(primals, c):
    """The diagonal s_i delta_ij alone: the - s_i s_j that the normaliser adds is forgotten."""
    return (softmax(primals[0]) * c,)


z = np.random.default_rng(0).normal(size=(2, 4))  # a batch of 2 rows of 4 logits
for vjp_fn in (softmax_vjp, softmax_vjp_diagonal_only):
    report = check_vjp(lambda z: jax.nn.softmax(z, axis=-1), vjp_fn, z)
    print(f"== {vjp_fn.__name__}: {report.verdict}")
    print(report)
