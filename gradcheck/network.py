"""A fully connected network of any depth, with any hidden activation and output head.

The seed network is the instance ``layers=(2, 3, 1)``, sigmoid hidden units
and the "identity" (regression) or "sigmoid" (classification) head;
`gradcheck.mlp` is that instance with its own names.

One definition serves NumPy and JAX, as in `gradcheck.mlp`. Shapes, for
layers ``(K0, K1, ..., KL)`` (``...`` is an optional leading axis of
independent problems)::

    w_l (..., K_l, K_{l-1})     b_l (..., K_l)          l = 1 .. L
    x = a_0 (..., N, K0)        z_l, a_l (..., N, K_l)
    y, delta_L (..., N, KL)

Parameters are a dict ``{"w1", "b1", ..., "wL", "bL"}``, a JAX pytree.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from gradcheck import _validate
from gradcheck.activations import ACTIVATIONS, xp
from gradcheck.heads import HEADS

__all__ = [
    "Layer",
    "Network",
    "backward",
    "closed_form_gradients",
    "forward",
    "init_params",
    "loss",
    "validate_problem",
]


@dataclasses.dataclass(frozen=True)
class Network:
    """The architecture: layer sizes, hidden activation and output head.

    - `layers`: ``(inputs, hidden_1, ..., hidden_k, outputs)``, at least two sizes.
    - `activation`: one of ``activations.ACTIVATIONS`` (sigmoid, tanh, relu).
    - `head`: one of ``heads.HEADS`` (identity, sigmoid, softmax, poisson, and
      the non-canonical sigmoid-mse and softmax-mse).

    Examples:
        >>> Network((4, 16, 3), activation="tanh", head="softmax").param_names
        ('w1', 'b1', 'w2', 'b2')
    """

    layers: tuple[int, ...]
    activation: str = "sigmoid"
    head: str = "identity"

    def __post_init__(self) -> None:
        layers = tuple(self.layers) if isinstance(self.layers, (tuple, list)) else None
        if (
            layers is None
            or len(layers) < 2
            or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in layers)
        ):
            raise ValueError(
                f"`layers` must be a list of at least two positive integers (inputs, ..., outputs), "
                f"got {self.layers!r}; for example (2, 3, 1)."
            )
        object.__setattr__(self, "layers", tuple(int(k) for k in layers))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"`activation` must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}.")
        if self.head not in HEADS:
            raise ValueError(f"`head` must be one of {tuple(HEADS)}, got {self.head!r}.")
        if self.head.startswith("softmax") and self.layers[-1] < 2:
            raise ValueError(
                f"head={self.head!r} needs at least 2 outputs (a softmax over one class is constant), got "
                f"layers={self.layers!r}; end `layers` with the number of classes."
            )

    @property
    def depth(self) -> int:
        """L, the number of weight layers."""
        return len(self.layers) - 1

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(f"{kind}{layer}" for layer in range(1, self.depth + 1) for kind in "wb")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        sizes = self.layers
        out: dict[str, tuple[int, ...]] = {}
        for layer in range(1, self.depth + 1):
            out[f"w{layer}"] = (sizes[layer], sizes[layer - 1])
            out[f"b{layer}"] = (sizes[layer],)
        return out

    def describe(self) -> str:
        return f"layers={','.join(map(str, self.layers))} activation={self.activation} head={self.head}"


class Layer(NamedTuple):
    """One layer's values in the forward pass."""

    z: Any  # (..., N, K_l)  pre-activation
    a: Any  # (..., N, K_l)  activation


def forward(params: dict[str, Any], x: Any, *, net: Network) -> list[Layer]:
    """The forward pass: ``z_l = a_{l-1} W_l^T + b_l``, ``a_l = f(z_l)``; the last f is the head's."""
    hidden, head = ACTIVATIONS[net.activation].f, HEADS[net.head].activation
    a = x
    out = []
    for layer in range(1, net.depth + 1):
        w, b = params[f"w{layer}"], params[f"b{layer}"]
        z = a @ _mT(w) + b[..., None, :]  # (N, K_{l-1}) @ (K_{l-1}, K_l) + (K_l,) -> (N, K_l)
        a = head(z) if layer == net.depth else hidden(z)
        out.append(Layer(z, a))
    return out


def loss(params: dict[str, Any], x: Any, y: Any, *, net: Network) -> Any:
    """Mean over the N samples of the head's loss, from the output logits z_L."""
    z = forward(params, x, net=net)[-1].z
    return xp(z).mean(HEADS[net.head].per_sample_loss(z, y), axis=-1)


def backward(params: dict[str, Any], x: Any, layers: list[Layer], delta: Any, *, net: Network) -> dict[str, Any]:
    """The shared backward pass, fed by the output error ``delta = dL_n/dz_L``.

    Every canonical head feeds it ``delta = a_L - y``; it knows nothing of the
    head. The loss is a mean over N samples, so sample gradients are divided by N.
    """
    derivative = ACTIVATIONS[net.activation].derivative
    n = x.shape[-2]
    grads: dict[str, Any] = {}
    for layer in range(net.depth, 0, -1):
        a_prev = layers[layer - 2].a if layer > 1 else x  # (N, K_{l-1})
        # dL/dW_l = delta_l^T a_{l-1}, summed over samples:  (K_l, N) @ (N, K_{l-1})
        grads[f"w{layer}"] = _mT(delta) @ a_prev / n
        # dL/db_l = delta_l, since dz_l/db_l = 1:              (N, K_l) -> (K_l,)
        grads[f"b{layer}"] = delta.mean(axis=-2)
        if layer > 1:
            below = layers[layer - 2]
            # delta_{l-1} = (delta_l W_l) * f'(z_{l-1}):  (N, K_l) @ (K_l, K_{l-1}) * (N, K_{l-1})
            delta = (delta @ params[f"w{layer}"]) * derivative(below.z, below.a)
    return {name: grads[name] for name in net.param_names}


def closed_form_gradients(params: dict[str, Any], x: Any, y: Any, *, net: Network) -> dict[str, Any]:
    """The hand derivation of dL/d(w_l, b_l) for every layer, in NumPy.

    The head supplies the output error: ``delta_L = a_L - y`` for every
    canonical head (see ``docs/canonical.md``), the longer chain-rule form for
    the others. One backward pass serves them all.

    Examples:
        >>> import numpy as np
        >>> net = Network((2, 4, 3), activation="relu", head="softmax")
        >>> p = init_params(net, 0)
        >>> x, y = np.array([[0.5, -1.0]]), np.array([[0.0, 1.0, 0.0]])
        >>> {k: v.shape for k, v in closed_form_gradients(p, x, y, net=net).items()}
        {'w1': (4, 2), 'b1': (4,), 'w2': (3, 4), 'b2': (3,)}
    """
    params, x, y = validate_problem(params, x, y, net=net)
    layers = forward(params, x, net=net)
    delta = HEADS[net.head].output_error(layers[-1].z, layers[-1].a, y)  # (N, KL)  dL_n/dz_L
    return backward(params, x, layers, delta, net=net)


def init_params(net: Network, seed: int) -> dict[str, np.ndarray]:
    """Random float64 parameters: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1^2).

    Examples:
        >>> {k: v.shape for k, v in init_params(Network((2, 3, 1)), 0).items()}
        {'w1': (3, 2), 'b1': (3,), 'w2': (1, 3), 'b2': (1,)}
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in net.shapes.items():
        scale = 1.0 / np.sqrt(shape[1]) if name.startswith("w") else 0.1
        out[name] = rng.normal(0.0, scale, shape)
    return out


def validate_problem(params: Any, x: Any, y: Any, *, net: Network) -> tuple[dict[str, np.ndarray], Any, Any]:
    """Check a problem for `net`; raise ``ValueError`` naming the fault.

    Returns the params as a dict of NumPy arrays and x, y as NumPy arrays.
    """
    if not isinstance(net, Network):
        raise ValueError(f"`net` must be a `network.Network`, got {type(net).__name__}.")
    if not isinstance(params, dict):
        raise ValueError(f"`params` must be a dict with keys {net.param_names}, got {type(params).__name__}.")
    missing = [k for k in net.param_names if k not in params]
    if missing:
        raise ValueError(f"`params` is missing {missing}; {net.describe()} needs keys {net.param_names}.")
    params = {k: np.asarray(params[k]) for k in net.param_names}
    # Leading axes, if any, stack independent problems (as in `check_batch`).
    lead = params["w1"].shape[:-2]
    for name, want in net.shapes.items():
        if params[name].shape != (*lead, *want):
            raise ValueError(
                f"`params['{name}']` has shape {params[name].shape} but {net.describe()} needs {(*lead, *want)}."
            )
    x, y = np.asarray(x), np.asarray(y)
    inputs, outputs = net.layers[0], net.layers[-1]
    batch = "".join(f"{k}, " for k in lead)
    if x.ndim != len(lead) + 2 or x.shape[:-2] != lead or x.shape[-1] != inputs or x.shape[-2] < 1:
        raise ValueError(f"`x` has shape {x.shape} but expected ({batch}N, {inputs}) with N >= 1: one row per sample.")
    if y.shape != (*x.shape[:-1], outputs):
        raise ValueError(
            f"`y` has shape {y.shape} but expected ({batch}{x.shape[-2]}, {outputs}): one row of {outputs} targets "
            f"per row of `x`."
        )
    for name, value in (*((f"params['{k}']", v) for k, v in params.items()), ("x", x), ("y", y)):
        _validate.real_finite(name, value)
    problem = HEADS[net.head].targets(y)
    if problem:
        raise ValueError(f"`y` {problem} for head={net.head!r}.")
    return params, x, y


def _mT(a: Any) -> Any:
    """Swap the last two axes (matrix transpose over any leading axes)."""
    return a.swapaxes(-1, -2)
