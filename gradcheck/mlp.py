"""The seed network: x (inputs) -> sigmoid hidden layer -> one output.

One definition serves NumPy and JAX. Every function here takes its array
namespace from its arguments (`jax.numpy` when any argument is a JAX array or
tracer, `numpy` otherwise), so the loss that JAX differentiates and the forward
pass that the NumPy closed form reuses are the same lines of code.

Shapes (``...`` is an optional leading axis of independent problems)::

    w1 (..., H, I)   b1 (..., H)   w2 (..., 1, H)   b2 (..., 1)
    x  (..., N, I)   y  (..., N)
    z1, a1 (..., N, H)             z2, a2, delta2 (..., N)

The derivation is in ``docs/derivation.md``; `closed_form_gradients` is that
page in code.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Literal, NamedTuple

import numpy as np

from gradcheck import _validate, activations, heads, network
from gradcheck.activations import sigmoid, softplus

__all__ = [
    "HEAD_OF_TASK",
    "TASKS",
    "Activations",
    "Params",
    "Task",
    "backward",
    "closed_form_gradients",
    "forward",
    "init_params",
    "loss",
    "network_for",
    "output_activation",
    "per_sample_loss",
    "sigmoid",
    "softplus",
    "validate_problem",
]

Task = Literal["regression", "classification"]
TASKS: tuple[Task, ...] = ("regression", "classification")


class Params(NamedTuple):
    """Parameters of the seed network (a JAX pytree as it is)."""

    w1: Any  # (H, I)  hidden weights
    b1: Any  # (H,)    hidden biases
    w2: Any  # (1, H)  output weights
    b2: Any  # (1,)    output bias


class Activations(NamedTuple):
    """The forward pass's intermediate values, kept for the backward pass."""

    z1: Any  # (..., N, H)  hidden pre-activation
    a1: Any  # (..., N, H)  hidden activation sigma(z1)
    z2: Any  # (..., N)     output pre-activation (the logit)
    a2: Any  # (..., N)     output activation: z2 (regression) or sigma(z2)


#: The seed network's head for each task (``gradcheck.heads``).
HEAD_OF_TASK: dict[Task, str] = {"regression": "identity", "classification": "sigmoid"}


def _xp(*arrays: Any) -> ModuleType:
    return activations.xp(*arrays)


@functools.lru_cache(maxsize=256)  # `forward` asks on every call; a Network validates itself when built
def network_for(task: Task, *, inputs: int = 2, hidden: int = 3) -> network.Network:
    """The seed network as a general `network.Network`: sigmoid hidden layer, one output."""
    return network.Network((inputs, hidden, 1), activation="sigmoid", head=HEAD_OF_TASK[task])


def output_activation(z2: Any, *, task: Task) -> Any:
    """a2 = z2 for regression (linear output), sigma(z2) for classification."""
    return heads.HEADS[HEAD_OF_TASK[task]].activation(z2)


def per_sample_loss(z2: Any, y: Any, *, task: Task) -> Any:
    """Per-sample loss from the logit z2, shape (..., N).

    - regression: ``1/2 (y - a2)^2`` with ``a2 = z2``;
    - classification: ``-[y log a2 + (1 - y) log(1 - a2)]`` with
      ``a2 = sigma(z2)``, computed as ``softplus(z2) - y z2``, which is the same
      function but never takes the log of a rounded-to-zero probability.

    Both are the general heads' losses (``gradcheck.heads``) with one output.
    """
    return heads.HEADS[HEAD_OF_TASK[task]].per_sample_loss(z2[..., None], y[..., None])


def forward(params: Params, x: Any, *, task: Task) -> Activations:
    """The forward pass, batched over N samples (and any leading axes).

    It is `network.forward` for layers (I, H, 1), with the output axis dropped.
    """
    w1, b1, w2, b2 = params
    # The forward pass reads only the activation, the head and the depth from the
    # architecture; every size comes from the arrays (symbolic ones too, when traced).
    net = network_for(task)
    hidden, output = network.forward({"w1": w1, "b1": b1, "w2": w2, "b2": b2}, x, net=net)
    # The one output unit's axis dropped: a squeeze, which JAX traces without a gather.
    return Activations(hidden.z, hidden.a, output.z.squeeze(-1), output.a.squeeze(-1))


def loss(params: Params, x: Any, y: Any, *, task: Task) -> Any:
    """Mean loss over the N samples; traceable by JAX, and plain NumPy too."""
    z2 = forward(params, x, task=task).z2
    return _xp(z2).mean(per_sample_loss(z2, y, task=task), axis=-1)


def backward(params: Params, x: Any, a1: Any, delta2: Any) -> Params:
    """The shared backward pass, fed by the output error ``delta2 = dL_n/dz2``.

    Both tasks call this with ``delta2 = a2 - y``; it knows nothing of the
    task. The loss is the mean over N samples, so each sample's gradient is
    divided by N.
    """
    n = x.shape[-2]
    # dL/dW2 = delta2 a1^T, summed over samples:  (1, N) @ (N, H) -> (1, H)
    dw2 = delta2[..., None, :] @ a1 / n
    # dL/db2 = delta2, since dz2/db2 = 1:        (N,) -> (1,)
    db2 = delta2.mean(axis=-1, keepdims=True)
    # delta1 = dL/dz1 = (W2^T delta2) * sigma'(z1), with sigma'(z1) = a1 (1 - a1)
    #   (N, 1) * (1, H) * (N, H) -> (N, H)
    delta1 = delta2[..., :, None] * params.w2 * a1 * (1.0 - a1)
    # dL/dW1 = delta1 x^T, summed over samples:  (H, N) @ (N, I) -> (H, I)
    dw1 = _mT(delta1) @ x / n
    # dL/db1 = delta1, since dz1/db1 = 1:        (N, H) -> (H,)
    db1 = delta1.mean(axis=-2)
    return Params(dw1, db1, dw2, db2)


def closed_form_gradients(params: Params, x: Any, y: Any, *, task: Task) -> Params:
    """The hand derivation of dL/d(w1, b1, w2, b2), in NumPy.

    For both tasks the output error is ``delta2 = dL/dz2 = a2 - y`` (see
    ``docs/derivation.md``), so one backward pass serves both.

    Examples:
        >>> import numpy as np
        >>> from gradcheck import mlp
        >>> p = mlp.init_params(0)
        >>> x, y = np.array([[0.5, -1.0]]), np.array([1.0])
        >>> g = mlp.closed_form_gradients(p, x, y, task="classification")
        >>> [a.shape for a in g]
        [(3, 2), (3,), (1, 3), (1,)]
    """
    params, x, y = validate_problem(params, x, y, task=task)
    act = forward(params, x, task=task)
    delta2 = act.a2 - y  # (N,)  dL_n/dz2 = a2 - y, for both tasks
    return backward(params, x, act.a1, delta2)


def init_params(seed: int, *, inputs: int = 2, hidden: int = 3) -> Params:
    """Random float64 parameters: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2).

    Examples:
        >>> [a.shape for a in init_params(0, inputs=2, hidden=3)]
        [(3, 2), (3,), (1, 3), (1,)]
    """
    for name, value in (("inputs", inputs), ("hidden", hidden)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    rng = np.random.default_rng(seed)
    return Params(
        w1=rng.normal(0.0, 1.0 / np.sqrt(inputs), (hidden, inputs)),
        b1=rng.normal(0.0, 0.1, (hidden,)),
        w2=rng.normal(0.0, 1.0 / np.sqrt(hidden), (1, hidden)),
        b2=rng.normal(0.0, 0.1, (1,)),
    )


def validate_problem(params: Any, x: Any, y: Any, *, task: Any) -> tuple[Params, Any, Any]:
    """Check a problem for the seed network; raise ``ValueError`` naming the fault.

    Returns the params as `Params` of NumPy arrays and x, y as NumPy arrays.
    """
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}.")
    if isinstance(params, dict):
        missing = set(Params._fields) - set(params)
        if missing:
            raise ValueError(f"`params` is missing {sorted(missing)}; it needs keys {Params._fields}.")
        params = Params(**{k: params[k] for k in Params._fields})
    if not isinstance(params, tuple) or len(params) != 4:
        raise ValueError(f"`params` must be an `mlp.Params(w1, b1, w2, b2)`, got {type(params).__name__}.")
    params = Params(*(np.asarray(p) for p in params))
    x, y = np.asarray(x), np.asarray(y)
    if params.w1.ndim < 2:
        raise ValueError(f"`params.w1` must have shape (hidden, inputs), got {params.w1.shape}.")
    # Leading axes, if any, stack independent problems (as in `check_batch`).
    *lead, hidden, inputs = params.w1.shape
    batch = "".join(f"{k}, " for k in lead)
    for name, want in (("b1", (hidden,)), ("w2", (1, hidden)), ("b2", (1,))):
        got = getattr(params, name).shape
        if got != (*lead, *want):
            raise ValueError(f"`params.{name}` has shape {got} but expected {(*lead, *want)}.")
    if x.ndim != len(lead) + 2 or x.shape[:-2] != tuple(lead) or x.shape[-1] != inputs:
        raise ValueError(
            f"`x` has shape {x.shape} but expected ({batch}N, {inputs}): one row per sample, "
            f"one column per input of `params.w1`."
        )
    if x.shape[-2] < 1:
        raise ValueError("`x` has no samples (shape (0, ...)); pass at least one row.")
    if y.shape != x.shape[:-1]:
        raise ValueError(f"`y` has shape {y.shape} but expected ({batch}{x.shape[-2]},): one target per row of `x`.")
    for name, value in (*zip(("params." + f for f in Params._fields), params), ("x", x), ("y", y)):
        _validate.real_finite(name, value)
    if task == "classification" and ((y < 0) | (y > 1)).any():
        bad = y[(y < 0) | (y > 1)][0].item()
        raise ValueError(
            f"`y` must lie in [0, 1] for task='classification' (labels or probabilities), "
            f"got {bad!r}; use task='regression' for unbounded targets."
        )
    return params, x, y


def _mT(a: Any) -> Any:
    """Swap the last two axes (matrix transpose over any leading axes)."""
    return a.swapaxes(-1, -2)
