"""The instructor's losses for `gradcheck check --loss`, written with jax.numpy.

Each is ``loss(params, *args) -> scalar``: gradcheck differentiates it with
JAX in float64 and by finite differences, and grades the students' gradients
against both (docs/guides/autograding.md, "Any loss").
"""

import jax.numpy as jnp


def logistic(params, X, y):
    """Logistic regression's mean log loss: params {"w": (D,), "b": ()}, X (N, D), targets y (N,).

    log(1 + e^z) - y z is the log loss of sigmoid(z) against y, written
    without overflow for large |z|.
    """
    z = X @ params["w"] + params["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - y * z)


def softmax_cross_entropy(W, X, labels):
    """Softmax regression's mean cross-entropy: weights W (D, K), X (N, D), integer labels (N,) in [0, K)."""
    logits = X @ W
    picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return jnp.mean(jnp.log(jnp.sum(jnp.exp(logits - logits.max(1, keepdims=True)), 1)) + logits.max(1) - picked)
