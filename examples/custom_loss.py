"""Any loss, any gradient: a softmax classifier with weight decay, checked with the generic API.

`loss_fn(params, *args)` is written once with `jax.numpy` (gradcheck differentiates
it in float64 and takes finite differences of it); `grad_fn(params, *args)` is the
hand-written NumPy gradient under test, returning the same structure as `params`
(here a dict). Run: python examples/custom_loss.py
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gradcheck import GradientMismatch, assert_gradients, check_gradients

DECAY = 1e-3  # L2 weight decay on W (not on b)


def loss_fn(params, x, labels):
    """Mean cross-entropy of softmax(x W^T + b) plus DECAY/2 ||W||^2."""
    logits = x @ params["W"].T + params["b"]  # (N, C)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - jnp.log(jnp.exp(shifted).sum(axis=1, keepdims=True))
    picked = jnp.take_along_axis(log_probs, labels[:, None], axis=1)
    return -picked.mean() + 0.5 * DECAY * (params["W"] ** 2).sum()


def grad_fn(params, x, labels):
    """By hand: dL/dlogits = (softmax - one_hot) / N, then the chain rule to W and b."""
    logits = x @ params["W"].T + params["b"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0  # softmax - one_hot
    delta = p / len(labels)  # (N, C)
    return {"W": delta.T @ x + DECAY * params["W"], "b": delta.sum(axis=0)}


def grad_fn_without_decay(params, x, labels):
    """A realistic slip: the weight decay term forgotten in the gradient."""
    g = grad_fn(params, x, labels)
    return {"W": g["W"] - DECAY * params["W"], "b": g["b"]}


def main() -> None:
    rng = np.random.default_rng(0)
    classes, features, samples = 3, 4, 16
    params = {"W": rng.normal(size=(classes, features)), "b": rng.normal(size=classes)}
    x = rng.normal(size=(samples, features))
    labels = rng.integers(0, classes, size=samples)  # integer data is passed through as is

    report = assert_gradients(loss_fn, grad_fn, params, x, labels)  # raises unless it passes
    print("== hand-written softmax gradient")
    print(report)
    print()

    print("== the same without the weight decay term")
    print(check_gradients(loss_fn, grad_fn_without_decay, params, x, labels))
    try:
        assert_gradients(loss_fn, grad_fn_without_decay, params, x, labels)
    except GradientMismatch:
        print("assert_gradients raised GradientMismatch, as a test would")


if __name__ == "__main__":
    main()
