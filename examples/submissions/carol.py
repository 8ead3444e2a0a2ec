"""A submission that fails to load: a quick test left at the bottom of the file runs on import.

`params`, `x` and `y` were defined in the notebook where she tried it, not here,
so importing the file raises NameError before `grads` can be checked.
"""

import numpy as np


def grads(params, x, y, *, task):
    w1, b1, w2, b2 = params
    z1 = x @ w1.T + b1
    a1 = 1 / (1 + np.exp(-np.clip(z1, -500, 500)))
    z2 = a1 @ w2[0] + b2[0]
    a2 = z2 if task == "regression" else 1 / (1 + np.exp(-np.clip(z2, -500, 500)))
    d2 = a2 - y
    d1 = d2[:, None] * w2 * a1 * (1 - a1)
    n = len(y)
    return {"w1": d1.T @ x / n, "b1": d1.mean(0), "w2": (d2 @ a1)[None] / n, "b2": np.array([d2.mean()])}


print(grads(params, x, y, task="regression"))
