"""Output heads: the output activation, the loss, and the output error δ = ∂L/∂z.

A head pairs an output activation ``a = f(z)`` with a per-sample loss. When
``f`` is the inverse of the *canonical link* of the loss's exponential family
(identity for a Gaussian, sigmoid for a Bernoulli, softmax for a categorical,
exp for a Poisson), the output error is ``δ = a - y`` whatever the family:
the derivation of the seed network's two tasks is one instance. The
non-canonical pairs are here too, with their correct (longer) δ, because a
checker must catch the student who writes ``a - y`` for them.

Shapes (``...`` is any leading axes)::

    z, a, y, δ (..., N, K)     per-sample loss (..., N)

Losses are computed from the logits ``z``, never from a rounded ``a``:
``softplus(z) - y z`` for the sigmoid, log-sum-exp for the softmax.
See ``docs/canonical.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from gradcheck.activations import sigmoid, softplus, xp

__all__ = ["CANONICAL", "HEADS", "Head", "canonical_error", "log_softmax", "softmax"]


def softmax(z: Any) -> Any:
    """``exp(z) / sum(exp(z))`` over the last axis, shifted by the max so nothing overflows."""
    np_ = xp(z)
    e = np_.exp(z - _max(z))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z: Any) -> Any:
    """``z - logsumexp(z)`` over the last axis, stably."""
    np_ = xp(z)
    shifted = z - _max(z)
    return shifted - np_.log(np_.exp(shifted).sum(axis=-1, keepdims=True))


def _max(z: Any) -> Any:
    """The row max as a constant shift: its gradient cancels exactly, so autodiff should not see it."""
    m = z.max(axis=-1, keepdims=True)
    return jax.lax.stop_gradient(m) if xp(z) is not np else m


def canonical_error(z: Any, a: Any, y: Any) -> Any:
    """δ = a - y: the output error of every canonical head."""
    return a - y


def _sigmoid_mse_error(z: Any, a: Any, y: Any) -> Any:
    # δ = (a - y) σ'(z), with σ'(z) = a (1 - a). Here 1 - a is written σ(-z):
    # the same number, without the cancellation of 1 - a when a rounds near 1.
    return (a - y) * a * sigmoid(-z)


def _softmax_mse_error(z: Any, a: Any, y: Any) -> Any:
    # δ = J^T (a - y), with the softmax Jacobian J = diag(a) - a a^T:
    #   δ_k = a_k [(a_k - y_k) - Σ_j a_j (a_j - y_j)]
    r = a - y
    return a * (r - (a * r).sum(axis=-1, keepdims=True))


def _nonnegative(y: np.ndarray) -> str | None:
    return "must be >= 0 (counts or rates)" if (y < 0).any() else None


def _probabilities(y: np.ndarray) -> str | None:
    return "must lie in [0, 1] (labels or probabilities)" if ((y < 0) | (y > 1)).any() else None


#: Softmax targets must sum to 1 per row; δ = a - y assumes it. Sums within
#: this many ulps per class are what normalising in float64 leaves.
SUM_ULPS = 4


def _distributions(y: np.ndarray) -> str | None:
    if (y < 0).any():
        return "must be >= 0 (one-hot rows or probability vectors)"
    gap = np.abs(y.sum(axis=-1) - 1.0)
    if (gap > SUM_ULPS * y.shape[-1] * np.finfo(np.float64).eps).any():
        return (
            "rows must sum to 1 within a few float64 ulps (one-hot or probability vectors); normalise in float64: "
            "y = np.asarray(y, np.float64); y = y / y.sum(-1, keepdims=True)"
        )
    return None


class Head(NamedTuple):
    """An output activation, a loss from the logits, and the closed-form output error."""

    name: str
    activation: Callable[[Any], Any]  # z (..., N, K) -> a
    per_sample_loss: Callable[[Any, Any], Any]  # (z, y) -> (..., N)
    output_error: Callable[[Any, Any, Any], Any]  # (z, a, y) -> δ = dL_n/dz, the closed form
    canonical: bool
    targets: Callable[[np.ndarray], str | None]  # what is wrong with y, or None
    formulas: tuple[str, str, str]  # a, L and δ as written in a derivation


HEADS: dict[str, Head] = {
    h.name: h
    for h in (
        Head(
            "identity",
            lambda z: z,
            lambda z, y: 0.5 * ((y - z) ** 2).sum(axis=-1),
            canonical_error,
            True,
            lambda y: None,
            ("a = z", "L = ½ Σ_k (y_k − a_k)²", "δ = a − y"),
        ),
        Head(
            "sigmoid",
            sigmoid,
            lambda z, y: (softplus(z) - y * z).sum(axis=-1),
            canonical_error,
            True,
            _probabilities,
            ("a = σ(z)", "L = −Σ_k [y_k log a_k + (1 − y_k) log(1 − a_k)]", "δ = a − y"),
        ),
        Head(
            "softmax",
            softmax,
            lambda z, y: -(y * log_softmax(z)).sum(axis=-1),
            canonical_error,
            True,
            _distributions,
            ("a = softmax(z)", "L = −Σ_k y_k log a_k", "δ = a − y"),
        ),
        Head(
            "poisson",
            lambda z: xp(z).exp(z),
            lambda z, y: (xp(z).exp(z) - y * z).sum(axis=-1),
            canonical_error,
            True,
            _nonnegative,
            ("a = exp(z)", "L = Σ_k [a_k − y_k log a_k]  (+ log y_k!, constant)", "δ = a − y"),
        ),
        Head(
            "sigmoid-mse",
            sigmoid,
            lambda z, y: 0.5 * ((y - sigmoid(z)) ** 2).sum(axis=-1),
            _sigmoid_mse_error,
            False,
            _probabilities,
            ("a = σ(z)", "L = ½ Σ_k (y_k − a_k)²", "δ = (a − y) a (1 − a)"),
        ),
        Head(
            "softmax-mse",
            softmax,
            lambda z, y: 0.5 * ((y - softmax(z)) ** 2).sum(axis=-1),
            _softmax_mse_error,
            False,
            _distributions,
            ("a = softmax(z)", "L = ½ Σ_k (y_k − a_k)²", "δ_k = a_k [(a_k − y_k) − Σ_j a_j (a_j − y_j)]"),
        ),
    )
}

#: The heads whose output error is a - y.
CANONICAL: tuple[str, ...] = tuple(name for name, h in HEADS.items() if h.canonical)
