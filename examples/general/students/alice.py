"""Alice's gradients: right for both losses (examples/general/losses.py)."""

import numpy as np
from numerics import sigmoid, softmax


def logistic_grad(params, X, y):
    # dL/dz = (sigmoid(z) - y) / N for each sample; z = X w + b.
    residual = (sigmoid(X @ params["w"] + params["b"]) - y) / len(y)
    return {"w": X.T @ residual, "b": residual.sum()}


def softmax_grad(W, X, labels):
    # dL/dlogits = (softmax - onehot(labels)) / N; logits = X W.
    delta = softmax(X @ W)
    delta[np.arange(len(labels)), labels] -= 1.0
    return X.T @ delta / len(labels)
