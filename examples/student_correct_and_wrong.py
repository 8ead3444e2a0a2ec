"""A student's gradients for the seed network, one right and one wrong, checked with `check_gradients`.

The wrong one forgets the sigmoid's slope sigma'(z1) = a1 (1 - a1) in the hidden
error, the most common slip in a hand derivation. Run: python examples/student_correct_and_wrong.py
"""

from __future__ import annotations

from functools import partial

import numpy as np

from gradcheck import check_gradients, mlp


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def correct_grads(params, x, y):
    """Backpropagation for binary classification with the log loss (mean over the batch)."""
    w1, b1, w2, b2 = params
    a1 = sigmoid(x @ w1.T + b1)  # (N, H)
    a2 = sigmoid(a1 @ w2[0] + b2[0])  # (N,)
    d2 = a2 - y  # dL/dz2: the sigmoid's slope cancels the log loss's denominator
    d1 = d2[:, None] * w2 * a1 * (1 - a1)  # dL/dz1 = (W2^T d2) * sigma'(z1)
    n = len(y)
    return mlp.Params(w1=d1.T @ x / n, b1=d1.mean(0), w2=(d2 @ a1)[None] / n, b2=np.array([d2.mean()]))


def wrong_grads(params, x, y):
    """The same, but the hidden error misses the factor sigma'(z1)."""
    w1, b1, w2, b2 = params
    a1 = sigmoid(x @ w1.T + b1)
    a2 = sigmoid(a1 @ w2[0] + b2[0])
    d2 = a2 - y
    d1 = d2[:, None] * w2  # forgot * a1 * (1 - a1)
    n = len(y)
    return mlp.Params(w1=d1.T @ x / n, b1=d1.mean(0), w2=(d2 @ a1)[None] / n, b2=np.array([d2.mean()]))


def main() -> None:
    rng = np.random.default_rng(0)
    params = mlp.init_params(0, inputs=2, hidden=3)
    x = rng.normal(size=(8, 2))
    y = (rng.uniform(size=8) > 0.5).astype(float)
    loss = partial(mlp.loss, task="classification")
    for name, grads in (("correct", correct_grads), ("wrong", wrong_grads)):
        report = check_gradients(loss, grads, params, x, y)
        print(f"== {name} derivation: verdict {report.verdict}")
        print(report)
        print()


if __name__ == "__main__":
    main()
