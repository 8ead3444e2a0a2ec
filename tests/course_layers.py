"""A course's layers, as students write them: NumPy forward passes that return ``(out, cache)`` and
hand-written ``backward(dout, cache)`` passes, with the mistakes people make in them.

Our own ports of the layers a deep-learning course assigns (the convention of Stanford's CS231n
assignments: ``out, cache = layer_forward(...)``, ``dx, ... = layer_backward(dout, cache)``), written
for these tests and released with gradcheck under its licence (MIT). Each `Layer` pairs the right
backward pass with wrong ones; `check` runs one through `gradcheck.check_vjp` the way the error
message for a course backward tells a user to (`_derivative_calls._course_backward`): the forward's
output as f, and ``backward(dout, forward(*primals)[1])`` as the VJP.

`tests/test_course_layers.py` holds every mistake caught and every right pass passing;
`benchmarks/diagnoses.py --course` counts the mistakes whose diagnosis names them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck import Report, check_vjp

Backward = Callable[[np.ndarray, Any], tuple[np.ndarray, ...]]

# --- affine: out = x w + b --------------------------------------------------------------------------


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Any]:
    return x @ w + b, (x, w, b)


def affine_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    x, w, _ = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_bias_mean(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """db as the mean over the batch: the bias is added to every sample, so its gradient is their sum."""
    dx, dw, _ = affine_backward(dout, cache)
    return dx, dw, dout.mean(axis=0)


def affine_backward_dw_transposed(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """dw = dout^T x: the outer product the wrong way round."""
    x, w, _ = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


# --- relu ------------------------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
    return np.maximum(x, 0.0), x


def relu_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    return (dout * (cache > 0),)


def relu_backward_mask_inverted(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """The mask written x <= 0."""
    return (dout * (cache <= 0),)


def relu_backward_times_x(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """dout * max(x, 0): the output where the mask belongs."""
    return (dout * np.maximum(cache, 0.0),)


# --- sigmoid ---------------------------------------------------------------------------------------


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
    out = 1.0 / (1.0 + np.exp(-x))
    return out, out


def sigmoid_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    return (dout * cache * (1.0 - cache),)


def sigmoid_backward_half_slope(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """sigma'(x) written sigma(x): the (1 - sigma) forgotten."""
    return (dout * cache,)


# --- batch norm (training mode) --------------------------------------------------------------------

EPS = 1e-5


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, Any]:
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + EPS)
    return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + EPS))


def batchnorm_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_no_mean_term(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """The batch mean's dependence on x forgotten: - mean(dxhat) missing."""
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_no_variance_term(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """The batch variance's dependence on x forgotten: - xhat mean(dxhat xhat) missing."""
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward_dgamma_without_xhat(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """dgamma = sum(dout): gamma multiplies xhat, so its gradient is sum(dout xhat)."""
    dx, _, dbeta = batchnorm_backward(dout, cache)
    return dx, dout.sum(axis=0), dbeta


# --- layer norm ------------------------------------------------------------------------------------


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, Any]:
    mu = x.mean(axis=1, keepdims=True)
    std = np.sqrt(x.var(axis=1, keepdims=True) + EPS)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (xhat, gamma, std)


def layernorm_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_backward_no_mean_term(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """The mean over the features forgotten: - mean(dxhat) missing."""
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - xhat * (dxhat * xhat).mean(axis=1, keepdims=True)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_backward_batch_axis(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """Batch norm's backward pasted in: the means taken over the batch (axis 0), not the features."""
    xhat, gamma, std = cache
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / std
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


# --- an RNN step, and a short sequence -------------------------------------------------------------


def rnn_step_forward(
    x: np.ndarray, prev_h: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, Any]:
    next_h = np.tanh(x @ wx + prev_h @ wh + b)
    return next_h, (x, prev_h, wx, wh, next_h)


def rnn_step_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    x, prev_h, wx, wh, next_h = cache
    da = dout * (1.0 - next_h**2)
    return da @ wx.T, da @ wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_step_backward_unsquared(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, ...]:
    """tanh' written 1 - tanh: the square forgotten."""
    x, prev_h, wx, wh, next_h = cache
    da = dout * (1.0 - next_h)
    return da @ wx.T, da @ wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x: np.ndarray, h0: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Any]:
    """x (N, T, D) -> h (N, T, H), one step after another."""
    h, caches, prev = [], [], h0
    for t in range(x.shape[1]):
        prev, cache = rnn_step_forward(x[:, t], prev, wx, wh, b)
        h.append(prev)
        caches.append(cache)
    return np.stack(h, axis=1), caches


def rnn_backward(dout: np.ndarray, caches: Any) -> tuple[np.ndarray, ...]:
    dx = np.zeros((dout.shape[0], dout.shape[1], caches[0][0].shape[1]))
    dwx, dwh, db = (np.zeros_like(caches[0][k]) for k in (2, 3, 2))
    db = np.zeros(caches[0][3].shape[1])
    dprev = np.zeros_like(dout[:, 0])
    for t in reversed(range(dout.shape[1])):
        dx[:, t], dprev, gx, gh, gb = rnn_step_backward(dout[:, t] + dprev, caches[t])
        dwx, dwh, db = dwx + gx, dwh + gh, db + gb
    return dx, dprev, dwx, dwh, db


def rnn_backward_no_carry(dout: np.ndarray, caches: Any) -> tuple[np.ndarray, ...]:
    """Each step's upstream gradient taken alone: the gradient flowing back through h from later steps
    (the recurrence's accumulation) dropped."""
    dx = np.zeros((dout.shape[0], dout.shape[1], caches[0][0].shape[1]))
    dwx, dwh = np.zeros_like(caches[0][2]), np.zeros_like(caches[0][3])
    db = np.zeros(caches[0][3].shape[1])
    dprev = np.zeros_like(dout[:, 0])
    for t in reversed(range(dout.shape[1])):
        dx[:, t], dprev, gx, gh, gb = rnn_step_backward(dout[:, t], caches[t])
        dwx, dwh, db = dwx + gx, dwh + gh, db + gb
    return dx, dprev, dwx, dwh, db


# --- the layers, with their mistakes ---------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A layer's forward pass, its right backward pass, its wrong ones, and how to draw its inputs."""

    forward: Callable[..., tuple[np.ndarray, Any]]
    backward: Backward
    #: Each wrong backward pass, with words its diagnosis holds where it names the mistake (None: it does
    #: not yet; the mistake is caught all the same).
    mistakes: dict[Backward, str | None]
    #: Inputs at a generic point, from a seeded generator (entries away from ReLU's kink).
    inputs: Callable[[np.random.Generator], tuple[np.ndarray, ...]]


def _away_from_zero(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


LAYERS: dict[str, Layer] = {
    "affine": Layer(
        affine_forward,
        affine_backward,
        {affine_backward_bias_mean: "factor", affine_backward_dw_transposed: "transposed"},
        lambda rng: (rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)),
    ),
    "relu": Layer(
        relu_forward,
        relu_backward,
        {relu_backward_mask_inverted: "mask inverted", relu_backward_times_x: "entries wrong"},
        lambda rng: (_away_from_zero(rng, 4, 3),),
    ),
    "sigmoid": Layer(
        sigmoid_forward,
        sigmoid_backward,
        {sigmoid_backward_half_slope: "own factor"},
        lambda rng: (rng.standard_normal((4, 3)),),
    ),
    "batchnorm": Layer(
        batchnorm_forward,
        batchnorm_backward,
        {
            batchnorm_backward_no_mean_term: "a missing term",
            batchnorm_backward_no_variance_term: "a missing term",
            batchnorm_backward_dgamma_without_xhat: "swapped",
        },
        lambda rng: (rng.standard_normal((5, 3)), rng.uniform(0.5, 2.0, 3), rng.standard_normal(3)),
    ),
    "layernorm": Layer(
        layernorm_forward,
        layernorm_backward,
        {layernorm_backward_no_mean_term: "a missing term", layernorm_backward_batch_axis: None},
        lambda rng: (rng.standard_normal((5, 4)), rng.uniform(0.5, 2.0, 4), rng.standard_normal(4)),
    ),
    "rnn_step": Layer(
        rnn_step_forward,
        rnn_step_backward,
        {rnn_step_backward_unsquared: None},  # tanh' inside the layer: no elementwise factor on any input
        lambda rng: (
            rng.standard_normal((3, 2)),
            rng.standard_normal((3, 4)),
            0.5 * rng.standard_normal((2, 4)),
            0.5 * rng.standard_normal((4, 4)),
            rng.standard_normal(4),
        ),
    ),
    "rnn": Layer(
        rnn_forward,
        rnn_backward,
        {rnn_backward_no_carry: "carried back"},
        lambda rng: (
            rng.standard_normal((2, 3, 2)),
            rng.standard_normal((2, 3)),
            0.5 * rng.standard_normal((2, 3)),
            0.5 * rng.standard_normal((3, 3)),
            rng.standard_normal(3),
        ),
    ),
}


def check(layer: Layer, backward: Backward, seed: int = 0) -> Report:
    """`check_vjp` on the layer's output, with `backward` as the VJP, as the course-backward message says."""
    inputs = layer.inputs(np.random.default_rng([seed, 0xC0]))
    return check_vjp(
        lambda *xs: layer.forward(*xs)[0],
        lambda primals, dout: backward(dout, layer.forward(*primals)[1]),
        *inputs,
        seed=seed,
    )
