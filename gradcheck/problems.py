"""Problems for the seed network, in the numerical regimes a checker must survive.

A regime is a deterministic transformation of a base problem, defined once
here. The seeded NumPy sampler (the CLI's main job) and the Hypothesis
strategies (`gradcheck.strategies`) both draw a base problem and hand it to
`make_problem`, so they agree on what "saturated" or "perfect fit" means.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np

from gradcheck import mlp, network

Regime = Literal[
    "typical",
    "saturated",
    "tiny",
    "zero_inputs",
    "duplicated",
    "large_batch",
    "soft_labels",
    "large_targets",
    "perfect_fit",
    "perfect_fit_scaled",
    "confident",
    "confident_sweep",
]
REGIMES: tuple[Regime, ...] = Regime.__args__  # type: ignore[attr-defined]

#: Hidden bias magnitude in the saturated regime: z1 = +-40 + w1 x, and
#: sigma'(40) = 4e-18, far below float64 resolution of sigma(40) = 1.
SATURATION = 40.0
#: Parameter scale in the tiny regime.
TINY = 1e-7
#: Target scale in the large-targets regime.
LARGE_TARGET = 1e3
#: Output-weight scale in the scaled perfect fit.
OUTPUT_SCALE = 1e3
#: |z2| in the confident regime: [CONFIDENT - 5, CONFIDENT + 5].
CONFIDENT = 35.0
#: |z2| in the confident sweep, each sample's label agreeing with its prediction: where the
#: closed form's a2 - y cancels (a2 near y), from mild (4) to complete (40: sigma(40) rounds to 1).
CONFIDENT_SWEEP = (4.0, 40.0)
#: Batch size in the large-batch regime.
LARGE_BATCH = 2048


class Problem(NamedTuple):
    """One point at which to check the gradient: params, data and the task."""

    params: mlp.Params
    x: np.ndarray  # (N, I)
    y: np.ndarray  # (N,)
    task: mlp.Task
    regime: Regime = "typical"

    def describe(self) -> str:
        """A short, reproducible description (for counterexamples)."""
        h, i = self.params.w1.shape
        return f"task={self.task} regime={self.regime} inputs={i} hidden={h} batch={self.x.shape[0]}"

    def arrays(self) -> dict[str, np.ndarray]:
        """The problem's arrays by name (w1, b1, w2, b2, x, y), as a counterexample shows them."""
        return {**{k: np.asarray(v) for k, v in self.params._asdict().items()}, "x": self.x, "y": self.y}


def make_problem(params: mlp.Params, x: Any, u: Any, *, task: mlp.Task, regime: Regime) -> Problem:
    """Build a problem from base draws: `params`, inputs `x` (N, I) and `u` (N,) in [0, 1].

    `u` becomes the targets: hard labels ``u > 1/2`` (classification) or
    ``4 (u - 1/2)`` (regression), then the regime transforms the whole problem.
    """
    if regime not in REGIMES:
        raise ValueError(f"`regime` must be one of {REGIMES}, got {regime!r}.")
    if task not in mlp.TASKS:
        raise ValueError(f"`task` must be one of {mlp.TASKS}, got {task!r}.")
    p = mlp.Params(*(np.array(a, dtype=np.float64) for a in params))
    x = np.array(x, dtype=np.float64)
    u = np.array(u, dtype=np.float64)
    y = (u > 0.5).astype(np.float64) if task == "classification" else 4.0 * (u - 0.5)

    if regime == "saturated":
        # Push every hidden unit's bias to +-40; the weights still move z1 around it.
        sign = np.where(p.b1 < 0, -1.0, 1.0)
        p = p._replace(b1=sign * SATURATION)
    elif regime == "tiny":
        p = mlp.Params(*(a * TINY for a in p))
    elif regime == "zero_inputs":
        x = np.zeros_like(x)
    elif regime == "duplicated":
        x, y = np.broadcast_to(x[:1], x.shape).copy(), np.full_like(y, y[0])
    elif regime == "soft_labels":
        y = u if task == "classification" else y
    elif regime == "large_targets" and task == "regression":
        y = y * np.float64(LARGE_TARGET)
    elif regime in ("perfect_fit", "perfect_fit_scaled"):
        if regime == "perfect_fit_scaled":
            p = p._replace(w2=p.w2 * OUTPUT_SCALE)
        y = np.asarray(mlp.forward(p, x, task=task).a2, dtype=np.float64)
    elif regime == "confident_sweep":
        # Output logits about +-t for t in CONFIDENT_SWEEP (from the first draw of u),
        # hidden contributions within +-1 of it, and every label agreeing with its prediction.
        lo, hi = CONFIDENT_SWEEP
        t = lo + (hi - lo) * float(u[0])
        a1 = mlp.forward(p, x, task=task).a1
        spread = float(np.abs(a1 @ p.w2.T).max())
        w2 = p.w2 * (1.0 / spread) if spread > 1.0 else p.w2
        side = 1.0 if p.b2[0] >= 0 else -1.0
        p = p._replace(w2=w2, b2=np.array([side * t]))
        y = (mlp.forward(p, x, task=task).z2 > 0).astype(np.float64)
    elif regime == "confident":
        a1 = mlp.forward(p, x, task=task).a1
        spread = float(np.abs(a1 @ p.w2.T).max())
        w2 = p.w2 * (5.0 / spread) if spread > 5.0 else p.w2
        side = 1.0 if p.b2[0] >= 0 else -1.0
        p = p._replace(w2=w2, b2=np.array([side * CONFIDENT]))
        y = np.full_like(y, 1.0 if side > 0 else 0.0)
    return Problem(p, x, y, task, regime)


def sample(
    rng: np.random.Generator,
    *,
    task: mlp.Task,
    regime: Regime = "typical",
    inputs: int = 2,
    hidden: int = 3,
    batch: int = 8,
) -> Problem:
    """Draw one problem with a NumPy generator (the CLI's sampler).

    Weights are N(0, 1/fan_in), biases N(0, 1/4), inputs N(0, 1).
    """
    n = LARGE_BATCH if regime == "large_batch" else batch
    params = mlp.Params(
        w1=rng.normal(0.0, 1.0 / np.sqrt(inputs), (hidden, inputs)),
        b1=rng.normal(0.0, 0.5, (hidden,)),
        w2=rng.normal(0.0, 1.0 / np.sqrt(hidden), (1, hidden)),
        b2=rng.normal(0.0, 0.5, (1,)),
    )
    return make_problem(params, rng.normal(size=(n, inputs)), rng.random(n), task=task, regime=regime)


# --- the general network ------------------------------------------------------

NetRegime = Literal[
    "typical",
    "saturated",
    "tiny",
    "zero_inputs",
    "duplicated",
    "soft_labels",
    "large_targets",
    "perfect_fit",
    "confident",
    "kink",
]
NET_REGIMES: tuple[NetRegime, ...] = NetRegime.__args__  # type: ignore[attr-defined]

#: Heads whose targets are class labels (one per output) or one-hot rows.
_LABEL_HEADS = ("sigmoid", "sigmoid-mse")
_ONE_HOT_HEADS = ("softmax", "softmax-mse")
#: Largest count drawn for the Poisson head.
MAX_COUNT = 5


class NetProblem(NamedTuple):
    """One point at which to check a general network's gradient."""

    net: network.Network
    params: dict[str, np.ndarray]
    x: np.ndarray  # (N, K0)
    y: np.ndarray  # (N, KL)
    regime: NetRegime = "typical"

    def describe(self) -> str:
        return f"{self.net.describe()} regime={self.regime} batch={self.x.shape[0]}"


def _targets(head: str, u: np.ndarray, *, soft: bool) -> np.ndarray:
    """Targets from uniform draws `u` (N, K) in [0, 1], in the form `head` expects."""
    if head in _LABEL_HEADS:
        return u.copy() if soft else (u > 0.5).astype(np.float64)
    if head in _ONE_HOT_HEADS:
        if soft:  # probability rows; an all-zero draw becomes the uniform distribution
            total = u.sum(axis=-1, keepdims=True)
            return np.where(total > 0, u / np.where(total > 0, total, 1.0), 1.0 / u.shape[-1])
        one_hot: np.ndarray = np.eye(u.shape[-1])[np.argmax(u, axis=-1)]
        return one_hot
    if head == "poisson":
        return MAX_COUNT * u if soft else np.floor(MAX_COUNT * u)
    return 4.0 * (u - 0.5)


def make_net_problem(net: network.Network, params: dict[str, Any], x: Any, u: Any, *, regime: NetRegime) -> NetProblem:
    """Build a general network's problem from base draws, as `make_problem` does for the seed.

    `u` (N, KL) in [0, 1] becomes the targets in the head's form: labels,
    one-hot rows, counts or reals. Regimes that do not apply to a network
    (``confident`` for a head that is not a classifier, ``kink`` without ReLU)
    leave the problem typical.
    """
    if regime not in NET_REGIMES:
        raise ValueError(f"`regime` must be one of {NET_REGIMES}, got {regime!r}.")
    p = {k: np.array(params[k], dtype=np.float64) for k in net.param_names}
    x = np.array(x, dtype=np.float64)
    u = np.array(u, dtype=np.float64)
    y = _targets(net.head, u, soft=regime == "soft_labels")
    hidden_biases = [f"b{layer}" for layer in range(1, net.depth)]

    if regime == "saturated":
        for b in hidden_biases:  # every hidden unit at +-40: flat sigmoid and tanh, dead or linear ReLU
            p[b] = np.where(p[b] < 0, -1.0, 1.0) * SATURATION
    elif regime == "tiny":
        p = {k: v * TINY for k, v in p.items()}
    elif regime == "zero_inputs":
        x = np.zeros_like(x)
    elif regime == "duplicated":
        x, y = np.broadcast_to(x[:1], x.shape).copy(), np.broadcast_to(y[:1], y.shape).copy()
    elif regime == "large_targets" and net.head in ("identity", "poisson"):
        y = y * LARGE_TARGET
    elif regime == "perfect_fit":
        y = np.asarray(network.forward(p, x, net=net)[-1].a, dtype=np.float64)
    elif regime == "confident" and net.head in (*_LABEL_HEADS, *_ONE_HOT_HEADS):
        # Output logits near +-35 (one class far ahead), and targets that agree.
        last = f"w{net.depth}"
        a_prev = network.forward(p, x, net=net)[-2].a if net.depth > 1 else x
        spread = float(np.abs(a_prev @ p[last].T).max())
        p[last] = p[last] * (5.0 / spread) if spread > 5.0 else p[last]
        winner = int(np.argmax(u[0]))
        k = net.layers[-1]
        if net.head in _ONE_HOT_HEADS:
            p[f"b{net.depth}"] = np.where(np.arange(k) == winner, CONFIDENT, 0.0)
            y = np.broadcast_to(np.eye(k)[winner], y.shape).copy()
        else:
            p[f"b{net.depth}"] = np.full(k, CONFIDENT)
            y = np.ones_like(y)
    elif regime == "kink" and net.activation == "relu" and hidden_biases:
        # Sample 0 has zero inputs, and unit 0 a zero bias: z1[0, 0] = 0 exactly, on the kink.
        x[0] = 0.0
        p["b1"][0] = 0.0
    return NetProblem(net, p, x, y, regime)


def sample_net(
    rng: np.random.Generator, net: network.Network, *, regime: NetRegime = "typical", batch: int = 8
) -> NetProblem:
    """Draw one problem for `net` with a NumPy generator (the CLI's sampler).

    Weights are N(0, 1/fan_in), biases N(0, 1/4), inputs N(0, 1).
    """
    params = {
        name: rng.normal(0.0, 1.0 / np.sqrt(shape[1]) if name.startswith("w") else 0.5, shape)
        for name, shape in net.shapes.items()
    }
    x = rng.normal(size=(batch, net.layers[0]))
    return make_net_problem(net, params, x, rng.random((batch, net.layers[-1])), regime=regime)
