"""Hidden-layer activations, each with the derivative the closed form uses.

One definition serves NumPy and JAX: the array namespace comes from the
argument. The derivative is written the way a hand derivation writes it, from
the forward pass's values (``sigma' = a (1 - a)``, ``tanh' = 1 - a^2``,
``relu' = 1[z > 0]``), so the backward pass needs no extra forward work.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ACTIVATIONS", "Activation", "relu", "sigmoid", "softplus", "tanh", "xp"]


def xp(*arrays: Any) -> ModuleType:
    """The array namespace of the arguments: `jax.numpy` if any is a JAX array or tracer."""
    if any(isinstance(a, jax.Array) for a in jax.tree_util.tree_leaves(arrays)):
        return jnp
    return np


def sigmoid(z: Any) -> Any:
    """Logistic function, accurate for every finite `z` in NumPy and JAX.

    Both branches use ``e = exp(-|z|) <= 1``, so nothing overflows, and the
    branch for ``z >= 0`` is written with ``where`` rather than ``abs`` so that
    autodiff gets the right slope (1/4) at exactly ``z = 0``.

    Examples:
        >>> float(sigmoid(0.0)), float(sigmoid(-800.0))
        (0.5, 0.0)
    """
    np_ = xp(z)
    positive = z >= 0
    e = np_.exp(np_.where(positive, -z, z))  # exp(-|z|), in (0, 1]
    return np_.where(positive, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(z: Any) -> Any:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    np_ = xp(z)
    positive = z >= 0
    return np_.where(positive, z, 0.0) + np_.log1p(np_.exp(np_.where(positive, -z, z)))


def tanh(z: Any) -> Any:
    """Hyperbolic tangent (the library's, which is accurate and never overflows)."""
    return xp(z).tanh(z)


def relu(z: Any) -> Any:
    """``max(z, 0)``, written with ``where`` so that autodiff's slope at 0 is 0.

    (``maximum`` would give autodiff a slope of 1/2 at the kink.) The closed
    form's derivative ``1[z > 0]`` makes the same choice.
    """
    return xp(z).where(z > 0, z, 0.0)


class Activation(NamedTuple):
    """A hidden activation ``a = f(z)`` and its derivative ``f'(z)`` from ``(z, a)``."""

    name: str
    f: Callable[[Any], Any]
    derivative: Callable[[Any, Any], Any]  # (z, a) -> f'(z), elementwise


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("sigmoid", sigmoid, lambda z, a: a * (1.0 - a)),  # a (1 - a)
        Activation("tanh", tanh, lambda z, a: 1.0 - a * a),  # 1 - a^2
        Activation("relu", relu, lambda z, a: (z > 0).astype(z.dtype)),  # 1[z > 0]
    )
}
