"""Your derivation as a property test, with the pytest plugin that installing gradcheck registers.

The fixture `gradcheck_property(grad_fn, task=..., examples=..., seed=...)` lets
Hypothesis search problems in every numerical regime and fails the test with
`GradientMismatch` (an `AssertionError` showing the minimal counterexample, the
report and the likely mistake) if `grad_fn` is wrong on any of them.

Run: pytest examples/test_with_plugin.py
"""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import GradientMismatch


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def my_grads(params, x, y, *, task):
    """Backpropagation for the seed network; the loss is the mean over the batch."""
    w1, b1, w2, b2 = params
    a1 = sigmoid(x @ w1.T + b1)
    z2 = a1 @ w2[0] + b2[0]
    a2 = z2 if task == "regression" else sigmoid(z2)
    d2 = a2 - y  # dL/dz2 for both tasks
    d1 = d2[:, None] * w2 * a1 * (1 - a1)
    n = len(y)
    return {"w1": d1.T @ x / n, "b1": d1.mean(0), "w2": (d2 @ a1)[None] / n, "b2": np.array([d2.mean()])}


def my_grads_summed(params, x, y, *, task):
    """A common slip: the batch sum where the loss takes the mean."""
    return {name: g * len(y) for name, g in my_grads(params, x, y, task=task).items()}


def test_my_derivation(gradcheck_property):
    gradcheck_property(my_grads, task="both", examples=10)


def test_a_wrong_derivation_is_caught(gradcheck_property):
    with pytest.raises(GradientMismatch, match="a sum where a mean belongs"):
        gradcheck_property(my_grads_summed, task="regression", examples=10)
